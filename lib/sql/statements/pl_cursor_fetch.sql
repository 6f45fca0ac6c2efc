-- name: pl_cursor_fetch
-- symbol: PL_SQL_CURSOR_FETCH
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- The next chunk of an open cursor (PL_ITER_CHUNK rows, iter.c); binary, as the cursor was declared.
FETCH FORWARD 1000 FROM pl_cursor
