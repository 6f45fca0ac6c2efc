-- name: pl_append
-- symbol: PL_SQL_APPEND
-- params: text[], text[], jsonb[], jsonb[], timestamptz[], timestamptz[], text[], text[], jsonb[], text[], timestamptz[]
-- param-format: binary
-- result-format: binary
-- class: write
-- A whole batch in one call (pl_append in 001_ledger.sql): the columns of
-- the changes as parallel arrays.
SELECT ord, rec_id, rec_tt, cache_epoch, appended
FROM @S@.pl_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
