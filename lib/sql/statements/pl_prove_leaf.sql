-- name: pl_prove_leaf
-- symbol: PL_SQL_PROVE_LEAF
-- params: int8
-- param-format: binary
-- result-format: binary
-- class: point
-- Where record $1 sits in the log.
SELECT leaf_index, leaf_hash FROM @S@.log_leaf WHERE kind = 1 AND item_id = $1
