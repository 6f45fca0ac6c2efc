-- name: pl_export_records
-- symbol: PL_SQL_EXPORT_RECORDS
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- Opened as a binary cursor: every record, sealed ones first in leaf
-- order (so a verifier reads the export in step with its leaves).
SELECT l.leaf_index, p.id, p.entity_id, p.field_name, p.transaction_time, p.valid_time_start,
p.valid_time_end, p.source_type, p.change_reason, p.old_value, p.new_value, p.metadata,
p.erased_at IS NOT NULL, e.commitments
FROM @S@.provenance_ledger p
LEFT JOIN @S@.log_leaf l ON l.kind = 1 AND l.item_id = p.id
LEFT JOIN @S@.log_erased e ON e.record_id = p.id
ORDER BY l.leaf_index NULLS LAST, p.id
