-- name: pl_refresh_errors
-- symbol: pl_sql_refresh_errors
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- What the last failed refreshes said, one text.
SELECT string_agg(view_name || ': ' || coalesce(last_error, 'unknown error'), '; ' ORDER BY view_name)
FROM @S@.mv_refresh_log
WHERE NOT last_refresh_success
