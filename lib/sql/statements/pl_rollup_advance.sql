-- name: pl_rollup_advance
-- symbol: PL_SQL_ROLLUP_ADVANCE
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- Moves the dashboards' rollup to every committed record (migration 7);
-- the records it added.
SELECT @S@.pl_rollup_advance()
