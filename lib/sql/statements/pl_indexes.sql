-- name: pl_indexes
-- symbol: PL_SQL_INDEXES
-- params: text
-- param-format: text
-- result-format: text
-- class: point
-- $1: the bare schema name.
SELECT s.indexrelname::text AS name, s.relname::text AS table_name, s.idx_scan AS scans,
pg_relation_size(s.indexrelid) AS size_bytes
FROM pg_catalog.pg_stat_user_indexes s
WHERE s.schemaname = $1::text
ORDER BY s.relname, s.indexrelname
