-- name: pl_verify_leaves
-- symbol: PL_SQL_VERIFY_LEAVES
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- Opened as a binary cursor: every leaf in order with what it covers,
-- joined by id alone (a changed time must not hide the row).
SELECT l.leaf_index, l.kind, l.item_id, l.leaf_hash, l.nodes,
p.id, p.entity_id, p.field_name, p.transaction_time, p.valid_time_start, p.valid_time_end,
p.source_type, p.change_reason, p.old_value, p.new_value, p.metadata, p.erased_at IS NOT NULL,
e.commitments, k.value_key,
r.id, r.entity_id, r.erased_at, r.reason
FROM @S@.log_leaf l
LEFT JOIN @S@.provenance_ledger p ON l.kind = 1 AND p.id = l.item_id
LEFT JOIN @S@.log_erased e ON l.kind = 1 AND e.record_id = l.item_id
LEFT JOIN @S@.log_entity k ON k.entity_id = p.entity_id
LEFT JOIN @S@.erasure r ON l.kind = 2 AND r.id = l.item_id
ORDER BY l.leaf_index
