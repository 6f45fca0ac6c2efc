-- name: pl_partitions_detach
-- symbol: PL_SQL_PARTITIONS_DETACH
-- params: timestamptz
-- param-format: text
-- result-format: text
-- class: maintenance
-- Detaches partitions ending at or before $1 (never drops them).
SELECT @S@.pl_detach_partitions($1::timestamptz)
