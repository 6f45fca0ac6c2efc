-- name: pl_current
-- symbol: PL_SQL_CURRENT_PLAIN
-- params: text, text
-- param-format: binary
-- result-format: binary
-- class: point
-- The same answer without its boundary: for reads that fill no cache.
-- "Now" is the entity's now (migration 11): never before its last
-- transaction time.
SELECT c.id, c.entity_id, c.field_name, c.new_value, c.old_value, c.transaction_time,
c.valid_time_start, c.valid_time_end, c.source_type, c.change_reason, c.metadata, c.erased_at
FROM @S@.provenance_current c
CROSS JOIN (SELECT greatest(now(), (SELECT h.last_tt FROM @S@.entity_head h WHERE h.entity_id = $1)) AS t) n
WHERE c.entity_id = $1 AND c.field_name = $2 AND c.valid_time_start <= n.t
AND c.valid_time_end > n.t
ORDER BY c.transaction_time DESC, c.id DESC LIMIT 1
