-- name: pl_export_keys
-- symbol: PL_SQL_EXPORT_KEYS
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- Opened as a binary cursor: the commitment keys there are.
SELECT entity_id, value_key FROM @S@.log_entity WHERE value_key IS NOT NULL ORDER BY entity_id
