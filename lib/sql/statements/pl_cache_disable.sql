-- name: pl_cache_disable
-- symbol: PL_SQL_CACHE_DISABLE
-- params: int8
-- param-format: binary
-- result-format: binary
-- class: write
-- Moves the epoch and disables the cache for $1 ms (see cache.c).
SELECT epoch, disabled_for_us, disabled_until, now(), lease_ms
FROM @S@.pl_cache_disable($1::int4)
