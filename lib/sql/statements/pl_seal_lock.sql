-- name: pl_seal_lock
-- symbol: PL_SQL_SEAL_LOCK
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- Waits for any other sealer or eraser; returns the horizon (or NULL
-- before the first seal).
SELECT @S@.pl_seal_lock()::text
