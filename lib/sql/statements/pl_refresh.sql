-- name: pl_refresh
-- symbol: PL_SQL_REFRESH
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- Refreshes every materialized view; false when one failed.
SELECT @S@.pl_refresh_views()
