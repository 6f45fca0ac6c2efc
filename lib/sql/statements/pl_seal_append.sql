-- name: pl_seal_append
-- symbol: PL_SQL_SEAL_APPEND
-- params: int8[], int2[], int8[], bytea[], bytea[]
-- param-format: binary
-- result-format: text
-- class: maintenance
-- One chunk of leaves (the entities' sealed times move once, at the end:
-- pl_seal_entities).
SELECT @S@.pl_seal_append_leaves($1, $2, $3, $4, $5)
