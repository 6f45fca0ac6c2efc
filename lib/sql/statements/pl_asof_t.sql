-- name: pl_asof_t
-- symbol: PL_SQL_ASOF_T
-- params: text, text, timestamptz
-- param-format: binary
-- result-format: binary
-- class: point
-- The first columns are PL_RECORD_COLUMNS (result.h), in its order.
SELECT id, entity_id, field_name, new_value, old_value, transaction_time, valid_time_start,
valid_time_end, source_type, change_reason, metadata, erased_at
FROM @S@.pl_read_asof($1, $2, $3, NULL, true)
