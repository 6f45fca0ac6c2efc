-- name: pl_dashboard_base
-- symbol: PL_SQL_DASHBOARD_BASE
-- params: timestamptz, timestamptz, text
-- param-format: text
-- result-format: text
-- class: heavy
-- Changes and entities per UTC day and source over [$1, $2) of transaction
-- time ($3: one source or NULL), from the base table.
SELECT (extract(epoch FROM d.day) * 1000000)::int8 AS day, d.source_type, d.changes,
d.entities FROM (SELECT date_trunc('day', transaction_time, 'UTC') AS day, source_type,
count(*) AS changes, count(DISTINCT entity_id) AS entities
FROM @S@.provenance_ledger
WHERE transaction_time >= coalesce($1::timestamptz, '-infinity')
AND transaction_time < coalesce($2::timestamptz, 'infinity')
AND ($3::text IS NULL OR source_type = $3::text)
GROUP BY 1, 2) d ORDER BY d.day, d.source_type
