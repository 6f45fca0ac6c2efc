-- name: pl_corrections_rollup
-- symbol: PL_SQL_CORRECTIONS_ROLLUP
-- params: timestamptz, timestamptz
-- param-format: text
-- result-format: text
-- class: point
-- Corrections per entity type and field over [$1, $2) of transaction
-- time, exact, in one snapshot, as pl_dashboard_rollup reads changes: the
-- rollup's rows, the tail at or above its horizon, and the edge days whose
-- rolled records are not all inside the window from the base table. The
-- first row (NULL entity type) says whether the rollup can answer and
-- when its horizon was set; when it cannot, it is the only row.
WITH att AS (SELECT i.inhrelid AS part FROM pg_catalog.pg_inherits i
WHERE i.inhparent = '@S@.provenance_ledger'::regclass),
st AS (SELECT s.horizon, s.advanced_at FROM @S@.rollup_state s WHERE s.id = 1 AND s.horizon IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM att WHERE NOT EXISTS (SELECT 1 FROM @S@.rollup_partition r WHERE r.part = att.part))),
live AS (SELECT DISTINCT d.day FROM @S@.rollup_day d
WHERE EXISTS (SELECT 1 FROM st) AND d.part IN (SELECT att.part FROM att)
AND d.day > coalesce($1::timestamptz, '-infinity') - interval '24 hours'
AND d.day < coalesce($2::timestamptz, 'infinity')
AND (d.min_tt < coalesce($1::timestamptz, '-infinity') OR d.max_tt >= coalesce($2::timestamptz, 'infinity'))),
agg AS (SELECT r.entity_type, r.field_name, r.corrections FROM @S@.rollup_corrections r
WHERE EXISTS (SELECT 1 FROM st) AND r.part IN (SELECT att.part FROM att)
AND r.day > coalesce($1::timestamptz, '-infinity') - interval '24 hours'
AND r.day < coalesce($2::timestamptz, 'infinity') AND r.day NOT IN (SELECT live.day FROM live)
UNION ALL
SELECT coalesce(p.metadata->>'entity_type', substring(p.entity_id FROM '^[^_:]*')) COLLATE "C",
p.field_name, count(*) FROM @S@.provenance_ledger p
WHERE p.xid >= (SELECT st.horizon FROM st)
AND p.transaction_time >= coalesce($1::timestamptz, '-infinity')
AND p.transaction_time < coalesce($2::timestamptz, 'infinity')
AND p.valid_time_start < p.transaction_time
AND date_trunc('day', p.transaction_time, 'UTC') NOT IN (SELECT live.day FROM live) GROUP BY 1, 2
UNION ALL
SELECT coalesce(p.metadata->>'entity_type', substring(p.entity_id FROM '^[^_:]*')) COLLATE "C",
p.field_name, count(*) FROM @S@.provenance_ledger p JOIN live l
ON p.transaction_time >= greatest(coalesce($1::timestamptz, '-infinity'), l.day)
AND p.transaction_time < least(coalesce($2::timestamptz, 'infinity'), l.day + interval '24 hours')
WHERE p.valid_time_start < p.transaction_time GROUP BY 1, 2)
SELECT NULL::text COLLATE "C" AS entity_type, NULL::text COLLATE "C" AS field_name, NULL::int8 AS corrections,
EXISTS (SELECT 1 FROM st) AS usable,
(SELECT (extract(epoch FROM st.advanced_at) * 1000000)::int8 FROM st) AS horizon
UNION ALL
SELECT c.entity_type, c.field_name, c.corrections, NULL, NULL
FROM (SELECT a.entity_type, a.field_name, sum(a.corrections)::int8 AS corrections FROM agg a
GROUP BY 1, 2 HAVING sum(a.corrections) > 0) c
ORDER BY 4 NULLS LAST, 3 DESC, 1, 2
