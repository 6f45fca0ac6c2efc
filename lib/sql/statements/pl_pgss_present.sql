-- name: pl_pgss_present
-- symbol: PL_SQL_PGSS_PRESENT
-- params: none
-- param-format: text
-- result-format: text
-- class: point
SELECT EXISTS (SELECT 1
FROM pg_catalog.pg_extension
WHERE extname = 'pg_stat_statements')
