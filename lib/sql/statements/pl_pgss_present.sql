-- name: pl_pgss_present
-- symbol: pl_sql_pgss_present
-- params: none
-- param-format: text
-- result-format: text
-- class: point
SELECT EXISTS (SELECT 1
FROM pg_catalog.pg_extension
WHERE extname = 'pg_stat_statements')
