-- name: pl_refresh_errors
-- symbol: PL_SQL_REFRESH_ERRORS
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- What the last failed refreshes said, one text.
SELECT string_agg(view_name || ': ' || coalesce(last_error, 'unknown error'), '; ' ORDER BY view_name)
FROM @S@.mv_refresh_log
WHERE NOT last_refresh_success
