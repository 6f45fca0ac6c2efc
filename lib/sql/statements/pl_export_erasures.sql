-- name: pl_export_erasures
-- symbol: PL_SQL_EXPORT_ERASURES
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- Every erasure.
SELECT id, entity_id, erased_at, reason FROM @S@.erasure ORDER BY id
