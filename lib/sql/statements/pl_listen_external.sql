-- name: pl_listen_external
-- symbol: PL_SQL_LISTEN_EXTERNAL
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- The channel pl_order_external notifies with the entity of each row written
-- with plain SQL (001_ledger.sql); run on the cache listener's own connection.
LISTEN "@s@_external"
