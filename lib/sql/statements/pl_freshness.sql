-- name: pl_freshness
-- symbol: PL_SQL_FRESHNESS
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- Each view's last refresh; instants as int8 microseconds since 1970.
SELECT v.view_name, (extract(epoch FROM g.last_refresh_start) * 1000000)::int8 AS last_refresh_start,
(extract(epoch FROM g.last_refresh_end) * 1000000)::int8 AS last_refresh_end, g.last_refresh_success AS last_success,
g.last_error, round(extract(epoch FROM clock_timestamp() - g.last_success_end), 6) AS staleness_seconds
FROM (VALUES ('provenance_daily_stats'), ('provenance_latest')) AS v(view_name)
LEFT JOIN @S@.mv_refresh_log g ON g.view_name = v.view_name COLLATE "C"
ORDER BY v.view_name COLLATE "C"
