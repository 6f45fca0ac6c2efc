-- name: pl_schema_version_record
-- symbol: PL_SQL_SCHEMA_VERSION_RECORD
-- params: int4, text
-- param-format: text
-- result-format: text
-- class: maintenance
-- Records a migration as applied.
INSERT INTO @S@.schema_version (version, description) VALUES ($1, $2)
