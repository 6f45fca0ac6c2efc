-- name: pl_cache_lease
-- symbol: PL_SQL_CACHE_LEASE
-- params: int8
-- param-format: binary
-- result-format: binary
-- class: write
-- The cache's shared state (see cache.c for the protocol). It may raise
-- the longest lease recorded: a write. The lease travels as int8.
SELECT epoch, redis_run_id, disabled, server_now, ledger_id
FROM @S@.pl_cache_lease($1::int4)
