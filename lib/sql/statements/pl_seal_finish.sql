-- name: pl_seal_finish
-- symbol: PL_SQL_SEAL_FINISH
-- params: int8, bytea, text, text, bytea, text
-- param-format: binary
-- result-format: binary
-- class: maintenance
-- The checkpoint ($4 NULL: none, the tree did not change) and the
-- horizon; returns the seal's time.
SELECT @S@.pl_seal_finish($1, $2, $3, $4, $5, $6::xid8)
