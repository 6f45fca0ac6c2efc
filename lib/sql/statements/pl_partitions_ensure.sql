-- name: pl_partitions_ensure
-- symbol: PL_SQL_PARTITIONS_ENSURE
-- params: int4
-- param-format: text
-- result-format: text
-- class: maintenance
-- Creates the partitions of this month and the next $1 - 1 months.
SELECT @S@.pl_ensure_partitions(clock_timestamp(), $1::int4)
