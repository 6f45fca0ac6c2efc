-- name: pl_dashboard_view
-- symbol: PL_SQL_DASHBOARD_VIEW
-- params: timestamptz, timestamptz, text
-- param-format: text
-- result-format: text
-- class: point
-- The view's rows and, in the same snapshot, its age and whether it covers
-- the window ($1 is a UTC midnight). Rows with a NULL day are the
-- placeholder for "covered but empty" or "not covered".
WITH f AS (SELECT date_trunc('day', g.last_success_start, 'UTC') - interval '2160 hours' AS covers_from,
(extract(epoch FROM clock_timestamp() - g.last_success_start) * 1000000)::int8 AS stale_us
FROM @S@.mv_refresh_log g
WHERE g.view_name = 'provenance_daily_stats' AND g.last_success_end IS NOT NULL)
SELECT (extract(epoch FROM v.day) * 1000000)::int8 AS day, v.source_type, v.change_count AS changes,
v.affected_entities AS entities, f.stale_us, (f.covers_from <= $1::timestamptz) AS covers
FROM f LEFT JOIN @S@.provenance_daily_stats v ON f.covers_from <= $1::timestamptz
AND v.day >= $1::timestamptz AND v.day < coalesce($2::timestamptz, 'infinity')
AND ($3::text IS NULL OR v.source_type = $3::text)
ORDER BY v.day, v.source_type
