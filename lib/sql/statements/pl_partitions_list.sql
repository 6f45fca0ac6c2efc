-- name: pl_partitions_list
-- symbol: PL_SQL_PARTITIONS_LIST
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- Every partition, attached or detached; instants as int8 microseconds
-- since 1970 (extract is exact numeric).
SELECT p.name, (extract(epoch FROM p.range_from) * 1000000)::int8 AS range_from, (extract(epoch FROM p.range_to) * 1000000)::int8 AS range_to,
p.attached, p.est_rows AS rows, p.total_bytes
FROM @S@.pl_partitions() p
ORDER BY p.range_from, p.name
