-- name: pl_search_next
-- symbol: PL_SQL_SEARCH_NEXT
-- params: jsonb, int8, timestamptz, int8
-- param-format: text
-- result-format: binary
-- class: heavy
-- pl_search_first after the record ($3 transaction time, $4 id) that ended
-- the previous page.
SELECT CASE WHEN s.rn <= $2::int8 THEN s.id END AS id, s.entity_id, s.field_name,
s.new_value, s.old_value, s.transaction_time, s.valid_time_start, s.valid_time_end,
s.source_type, s.change_reason, s.metadata, s.erased_at
FROM (SELECT p.*, row_number() OVER (ORDER BY p.transaction_time DESC, p.id DESC) AS rn
FROM (SELECT id, entity_id, field_name, new_value, old_value, transaction_time, valid_time_start,
valid_time_end, source_type, change_reason, metadata, erased_at
FROM @S@.provenance_ledger
WHERE metadata @> $1::jsonb AND transaction_time <= $3::timestamptz
AND (transaction_time, id) < ($3::timestamptz, $4::int8)
ORDER BY transaction_time DESC, id DESC LIMIT $2::int8 + 1) p) s
ORDER BY s.rn
