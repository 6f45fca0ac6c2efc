-- name: pl_erase_read
-- symbol: PL_SQL_ERASE_READ
-- params: text
-- param-format: binary
-- result-format: binary
-- class: maintenance
-- An erasure's records (with the seal lock and the entity's head held)
-- and the entity's commitment key (NULL when it has none yet).
SELECT p.id, p.entity_id, p.field_name, p.transaction_time, p.valid_time_start, p.valid_time_end,
p.source_type, p.change_reason, p.old_value, p.new_value, p.metadata,
(SELECT k.value_key FROM @S@.log_entity k WHERE k.entity_id = $1)
FROM @S@.provenance_ledger p
WHERE p.entity_id = $1 AND p.erased_at IS NULL
ORDER BY p.id
