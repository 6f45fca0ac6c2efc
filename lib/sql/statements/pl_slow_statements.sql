-- name: pl_slow_statements
-- symbol: PL_SQL_SLOW_STATEMENTS
-- params: int4
-- param-format: text
-- result-format: text
-- class: point
-- The $1 slowest statements on this schema (pl_slow_statements in
-- 002_views_partitions.sql).
SELECT query, calls, round(mean_ms::numeric, 3) AS mean_ms, round(max_ms::numeric, 3) AS max_ms,
round(total_ms::numeric, 3) AS total_ms
FROM @S@.pl_slow_statements($1::int4)
