-- name: pl_export_log
-- symbol: PL_SQL_EXPORT_LOG
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- Opened as a binary cursor: the leaves in order.
SELECT leaf_index, kind, item_id, leaf_hash, nodes FROM @S@.log_leaf ORDER BY leaf_index
