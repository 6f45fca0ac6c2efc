-- name: pl_seal_append
-- symbol: PL_SQL_SEAL_APPEND
-- params: int8[], int2[], int8[], bytea[], bytea[], text[], timestamptz[]
-- param-format: binary
-- result-format: text
-- class: maintenance
-- One chunk of leaves; with each record leaf its entity and time.
SELECT @S@.pl_seal_append($1, $2, $3, $4, $5, $6, $7)
