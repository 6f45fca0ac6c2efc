-- name: pl_cache_secret
-- symbol: PL_SQL_CACHE_SECRET
-- params: none
-- param-format: binary
-- result-format: binary
-- class: point
-- The key that authenticates cached answers (003_cache_secret.sql).
SELECT @S@.pl_cache_secret()
