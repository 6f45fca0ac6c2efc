-- name: pl_search_setup_all
-- symbol: PL_SQL_SEARCH_SETUP_ALL
-- params: none
-- param-format: text
-- result-format: text
-- class: heavy
-- pl_search_setup for the query {}: it matches everything, newest first by
-- time is right then, so it runs with the planner's choice.
SET LOCAL cursor_tuple_fraction = 1.0
