-- name: pl_history_field
-- symbol: PL_SQL_HISTORY_FIELD
-- params: text, text
-- param-format: binary
-- result-format: binary
-- class: point
-- The first columns are PL_RECORD_COLUMNS (result.h), in its order.
SELECT id, entity_id, field_name, new_value, old_value, transaction_time, valid_time_start,
valid_time_end, source_type, change_reason, metadata, erased_at
FROM @S@.provenance_ledger
WHERE entity_id = $1 AND field_name = $2
ORDER BY transaction_time, id
