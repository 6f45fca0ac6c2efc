-- name: pl_cursor_close
-- symbol: PL_SQL_CURSOR_CLOSE
-- params: none
-- param-format: text
-- result-format: text
-- class: heavy
-- Ends the cursor pl_cursor_declare opened, so the session can declare another.
CLOSE pl_cursor
