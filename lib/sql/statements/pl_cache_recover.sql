-- name: pl_cache_recover
-- symbol: PL_SQL_CACHE_RECOVER
-- params: text, int8, int8, text, int8
-- param-format: binary
-- result-format: binary
-- class: write
-- Recovery after Redis lost data; the actions are explained at
-- pl_cache_recover in 003_cache_secret.sql.
SELECT @S@.pl_cache_recover($1, $2, $3::int4, $4, $5::int4)
