-- name: pl_cursor_fetch_all
-- symbol: PL_SQL_CURSOR_FETCH_ALL
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- The rest of an open cursor (a search page, at most its limit + 1 rows).
FETCH ALL FROM pl_cursor
