-- name: pl_tx_read_snapshot
-- symbol: PL_SQL_TX_READ_SNAPSHOT
-- params: none
-- param-format: text
-- result-format: text
-- class: heavy
-- A cursor's transaction: one snapshot for every chunk it fetches.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY
