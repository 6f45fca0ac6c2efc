-- name: pl_partition_attach
-- symbol: PL_SQL_PARTITION_ATTACH
-- params: text
-- param-format: text
-- result-format: text
-- class: maintenance
-- Attaches the detached partition named $1 again.
SELECT @S@.pl_attach_partition($1::text)
