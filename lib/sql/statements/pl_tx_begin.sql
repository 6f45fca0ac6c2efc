-- name: pl_tx_begin
-- symbol: PL_SQL_TX_BEGIN
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- A migration's transaction.
BEGIN
