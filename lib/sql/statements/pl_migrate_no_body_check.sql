-- name: pl_migrate_no_body_check
-- symbol: PL_SQL_MIGRATE_NO_BODY_CHECK
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- Function bodies may name tables a later statement of the script creates.
SET LOCAL check_function_bodies = off
