-- name: pl_current
-- symbol: PL_SQL_CURRENT_PLAIN
-- params: text, text
-- param-format: binary
-- result-format: binary
-- class: point
-- The same answer without its boundary: for reads that fill no cache.
SELECT c.id, c.entity_id, c.field_name, c.new_value, c.old_value, c.transaction_time,
c.valid_time_start, c.valid_time_end, c.source_type, c.change_reason, c.metadata, c.erased_at
FROM @S@.provenance_current c
WHERE c.entity_id = $1 AND c.field_name = $2 AND c.valid_time_start <= now()
AND c.valid_time_end > now()
ORDER BY c.transaction_time DESC, c.id DESC LIMIT 1
