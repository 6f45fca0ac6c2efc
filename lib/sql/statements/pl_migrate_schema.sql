-- name: pl_migrate_schema
-- symbol: PL_SQL_MIGRATE_SCHEMA
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- The ledger's schema, before its first migration.
CREATE SCHEMA IF NOT EXISTS @S@
