-- name: pl_dashboard_rollup
-- symbol: PL_SQL_DASHBOARD_ROLLUP
-- params: timestamptz, timestamptz, text
-- param-format: text
-- result-format: text
-- class: point
-- Changes and entities per UTC day and source over [$1, $2) of transaction
-- time ($3: one source or NULL), exact, in one snapshot: the rollup's rows
-- (migration 7), plus the tail (records at or above its horizon, each
-- entity counted for its day and source only when no rolled record has
-- it), except on edge days whose rolled records are not all inside the
-- window (live): those are read from the base table. The first row (NULL
-- day) says whether the rollup can answer (it has a horizon and every
-- attached partition is registered) and when its horizon was set; when it
-- cannot, it is the only row.
WITH att AS (SELECT i.inhrelid AS part FROM pg_catalog.pg_inherits i
WHERE i.inhparent = '@S@.provenance_ledger'::regclass),
st AS (SELECT s.horizon, s.advanced_at FROM @S@.rollup_state s WHERE s.id = 1 AND s.horizon IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM att WHERE NOT EXISTS (SELECT 1 FROM @S@.rollup_partition r WHERE r.part = att.part))),
live AS (SELECT DISTINCT d.day FROM @S@.rollup_day d
WHERE EXISTS (SELECT 1 FROM st) AND d.part IN (SELECT att.part FROM att)
AND d.day > coalesce($1::timestamptz, '-infinity') - interval '24 hours'
AND d.day < coalesce($2::timestamptz, 'infinity')
AND (d.min_tt < coalesce($1::timestamptz, '-infinity') OR d.max_tt >= coalesce($2::timestamptz, 'infinity'))),
tail AS (SELECT date_trunc('day', p.transaction_time, 'UTC') AS day, p.source_type, p.entity_id,
NOT EXISTS (SELECT 1 FROM @S@.provenance_ledger q WHERE q.entity_id = p.entity_id
AND q.transaction_time >= date_trunc('day', p.transaction_time, 'UTC')
AND q.transaction_time < date_trunc('day', p.transaction_time, 'UTC') + interval '24 hours'
AND q.source_type = p.source_type AND (q.xid < (SELECT st.horizon FROM st) OR q.xid IS NULL)) AS new_entity
FROM @S@.provenance_ledger p
WHERE p.xid >= (SELECT st.horizon FROM st)
AND p.transaction_time >= coalesce($1::timestamptz, '-infinity')
AND p.transaction_time < coalesce($2::timestamptz, 'infinity')
AND ($3::text IS NULL OR p.source_type = $3::text)),
agg AS (SELECT r.day, r.source_type, r.changes, r.entities FROM @S@.rollup_changes r
WHERE EXISTS (SELECT 1 FROM st) AND r.part IN (SELECT att.part FROM att)
AND r.day > coalesce($1::timestamptz, '-infinity') - interval '24 hours'
AND r.day < coalesce($2::timestamptz, 'infinity')
AND ($3::text IS NULL OR r.source_type = $3::text) AND r.day NOT IN (SELECT live.day FROM live)
UNION ALL
SELECT t.day, t.source_type, count(*), count(DISTINCT t.entity_id) FILTER (WHERE t.new_entity) FROM tail t
WHERE t.day NOT IN (SELECT live.day FROM live) GROUP BY 1, 2
UNION ALL
SELECT date_trunc('day', p.transaction_time, 'UTC'), p.source_type, count(*), count(DISTINCT p.entity_id)
FROM @S@.provenance_ledger p JOIN live l
ON p.transaction_time >= greatest(coalesce($1::timestamptz, '-infinity'), l.day)
AND p.transaction_time < least(coalesce($2::timestamptz, 'infinity'), l.day + interval '24 hours')
WHERE ($3::text IS NULL OR p.source_type = $3::text) GROUP BY 1, 2)
SELECT NULL::int8 AS day, NULL::text COLLATE "C" AS source_type, NULL::int8 AS changes, NULL::int8 AS entities,
EXISTS (SELECT 1 FROM st) AS usable,
(SELECT (extract(epoch FROM st.advanced_at) * 1000000)::int8 FROM st) AS horizon
UNION ALL
SELECT (extract(epoch FROM a.day) * 1000000)::int8, a.source_type, sum(a.changes)::int8,
sum(a.entities)::int8, NULL, NULL FROM agg a GROUP BY a.day, a.source_type
ORDER BY 5 NULLS LAST, 1, 2
