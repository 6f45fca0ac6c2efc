-- name: pl_snapshot_current
-- symbol: PL_SQL_SNAPSHOT_CURRENT
-- params: text
-- param-format: binary
-- result-format: binary
-- class: point
-- Every field of an entity now (the entity's now, migration 11), and the
-- next instant any can change.
WITH n AS (SELECT greatest(now(), (SELECT h.last_tt FROM @S@.entity_head h WHERE h.entity_id = $1)) AS t),
a AS (SELECT DISTINCT ON (field_name) c.*
FROM @S@.provenance_current c, n
WHERE c.entity_id = $1 AND c.valid_time_start <= n.t AND c.valid_time_end > n.t
ORDER BY c.field_name, c.transaction_time DESC, c.id DESC)
SELECT a.id, a.entity_id, a.field_name, a.new_value, a.old_value, a.transaction_time,
a.valid_time_start, a.valid_time_end, a.source_type, a.change_reason, a.metadata, a.erased_at,
least((SELECT min(valid_time_end) FROM a), (SELECT min(p.valid_time_start) FROM @S@.provenance_current p WHERE p.entity_id = $1 AND p.valid_time_start > (SELECT t FROM n)))
FROM (SELECT 1) AS one
LEFT JOIN a ON true ORDER BY a.field_name
