-- name: pl_prove_hashes
-- symbol: PL_SQL_PROVE_HASHES
-- params: int8[]
-- param-format: binary
-- result-format: binary
-- class: point
-- The leaves a proof reads: their hashes, and the interior hashes they
-- complete.
SELECT leaf_index, leaf_hash, nodes FROM @S@.log_leaf WHERE leaf_index = ANY ($1)
