-- name: pl_search_setup
-- symbol: PL_SQL_SEARCH_SETUP
-- params: none
-- param-format: text
-- result-format: text
-- class: heavy
-- Run first in the search's transaction (simple protocol: three statements).
-- Through the GIN index, whatever the planner guesses of the matches (it
-- cannot estimate containment: 1% by default): reading the newest rows by
-- time and filtering them is fast when matches are dense but a scan of the
-- whole ledger when they are rare, and so is a sequential scan; the GIN
-- index costs O(matches) always. The page is read whole (no fast start).
SET LOCAL cursor_tuple_fraction = 1.0;
SET LOCAL enable_indexscan = off;
SET LOCAL enable_seqscan = off
