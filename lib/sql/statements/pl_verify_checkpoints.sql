-- name: pl_verify_checkpoints
-- symbol: PL_SQL_VERIFY_CHECKPOINTS
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- Every stored checkpoint, smallest tree first.
SELECT id, tree_size, root_hash, note, sealed_at FROM @S@.log_checkpoint ORDER BY tree_size, id
