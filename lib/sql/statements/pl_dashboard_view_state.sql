-- name: pl_dashboard_view_state
-- symbol: PL_SQL_DASHBOARD_VIEW_STATE
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- One row when provenance_daily_stats holds a successful refresh.
SELECT 1 FROM @S@.mv_refresh_log g JOIN pg_catalog.pg_class c ON c.oid = '@S@.provenance_daily_stats'::regclass
AND c.relispopulated WHERE g.view_name = 'provenance_daily_stats'
AND g.last_success_end IS NOT NULL
