-- name: pl_partition_attach
-- symbol: pl_sql_partition_attach
-- params: text
-- param-format: text
-- result-format: text
-- class: maintenance
-- Attaches the detached partition named $1 again.
SELECT @S@.pl_attach_partition($1::text)
