-- name: pl_corrections
-- symbol: PL_SQL_CORRECTIONS
-- params: timestamptz, timestamptz
-- param-format: text
-- result-format: text
-- class: heavy
-- Records whose valid time starts before their transaction time, per
-- entity type and field, over [$1, $2) of transaction time.
SELECT c.entity_type, c.field_name, c.corrections
FROM (SELECT coalesce(metadata->>'entity_type', substring(entity_id FROM '^[^_:]*')) COLLATE "C" AS entity_type,
field_name, count(*) AS corrections
FROM @S@.provenance_ledger
WHERE transaction_time >= coalesce($1::timestamptz, '-infinity')
AND transaction_time < coalesce($2::timestamptz, 'infinity')
AND valid_time_start < transaction_time
GROUP BY 1, 2) c ORDER BY c.corrections DESC, c.entity_type, c.field_name
