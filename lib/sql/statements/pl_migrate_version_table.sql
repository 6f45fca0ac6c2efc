-- name: pl_migrate_version_table
-- symbol: PL_SQL_MIGRATE_VERSION_TABLE
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- Which migrations the schema has had.
CREATE TABLE IF NOT EXISTS @S@.schema_version (version integer PRIMARY KEY,
description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
