-- name: pl_snapshot_current
-- symbol: PL_SQL_SNAPSHOT_CURRENT
-- params: text
-- param-format: binary
-- result-format: binary
-- class: point
-- Every field of an entity now, and the next instant any can change.
WITH a AS (SELECT DISTINCT ON (field_name) *
FROM @S@.provenance_current
WHERE entity_id = $1 AND valid_time_start <= now() AND valid_time_end > now()
ORDER BY field_name, transaction_time DESC, id DESC)
SELECT a.id, a.entity_id, a.field_name, a.new_value, a.old_value, a.transaction_time,
a.valid_time_start, a.valid_time_end, a.source_type, a.change_reason, a.metadata, a.erased_at,
least((SELECT min(valid_time_end) FROM a), (SELECT min(p.valid_time_start) FROM @S@.provenance_current p WHERE p.entity_id = $1 AND p.valid_time_start > now()))
FROM (SELECT 1) AS one
LEFT JOIN a ON true ORDER BY a.field_name
