-- name: pl_tx_commit
-- symbol: PL_SQL_TX_COMMIT
-- params: none
-- param-format: text
-- result-format: text
-- class: heavy
-- Ends a session's transaction.
COMMIT
