-- name: pl_tx_seal
-- symbol: PL_SQL_TX_SEAL
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- A seal's or an erasure's transaction. Read committed on purpose: the
-- seal lock comes first, and each later statement sees what committed
-- before it (seal.c).
BEGIN ISOLATION LEVEL READ COMMITTED
