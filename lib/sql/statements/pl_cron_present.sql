-- name: pl_cron_present
-- symbol: PL_SQL_CRON_PRESENT
-- params: none
-- param-format: text
-- result-format: text
-- class: point
SELECT EXISTS (SELECT 1
FROM pg_catalog.pg_extension
WHERE extname = 'pg_cron')
