-- name: pl_audit
-- symbol: PL_SQL_AUDIT
-- params: timestamptz, timestamptz, text
-- param-format: text
-- result-format: binary
-- class: heavy
-- Opened as a binary cursor.
-- The first columns are PL_RECORD_COLUMNS (result.h), in its order.
-- The window is [$1, $2) on transaction time; NULL leaves an end open.
-- $3: one source, or NULL for all.
SELECT id, entity_id, field_name, new_value, old_value, transaction_time, valid_time_start,
valid_time_end, source_type, change_reason, metadata, erased_at
FROM @S@.provenance_ledger
WHERE transaction_time >= coalesce($1::timestamptz, '-infinity')
AND transaction_time < coalesce($2::timestamptz, 'infinity')
AND ($3::text IS NULL OR source_type = $3::text)
ORDER BY transaction_time, id
