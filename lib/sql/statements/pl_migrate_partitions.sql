-- name: pl_migrate_partitions
-- symbol: PL_SQL_MIGRATE_PARTITIONS
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- Monthly partitions from this month to three months ahead.
SELECT @S@.pl_ensure_partitions(clock_timestamp(), 4)
