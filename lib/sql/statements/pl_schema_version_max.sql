-- name: pl_schema_version_max
-- symbol: PL_SQL_SCHEMA_VERSION_MAX
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- The schema's version (after pl_schema_version_exists).
SELECT coalesce(max(version), 0) FROM @S@.schema_version
