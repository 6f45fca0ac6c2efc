-- name: pl_schema_version_exists
-- symbol: PL_SQL_SCHEMA_VERSION_EXISTS
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- Two statements, not one: PostgreSQL resolves every table a statement names before running it, even in a CASE branch that never runs.
SELECT to_regclass('@S@.schema_version') IS NOT NULL
