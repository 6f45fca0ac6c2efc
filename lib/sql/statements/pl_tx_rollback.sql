-- name: pl_tx_rollback
-- symbol: PL_SQL_TX_ROLLBACK
-- params: none
-- param-format: text
-- result-format: text
-- class: heavy
-- Ends a session's transaction without keeping it.
ROLLBACK
