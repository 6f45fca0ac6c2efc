-- name: pl_seal_candidates
-- symbol: PL_SQL_SEAL_CANDIDATES
-- params: text, text
-- param-format: text
-- result-format: binary
-- class: maintenance
-- Opened as a binary cursor. What the seal appends: records and erasures
-- of transactions in [$1, $2) (horizon to the oldest running one; every
-- transaction before this migration when $1 is NULL), not yet sealed, in
-- (transaction time, kind, id) order.
SELECT 1::int2 AS kind, p.id, p.entity_id, p.field_name, p.transaction_time, p.valid_time_start,
p.valid_time_end, p.source_type, p.change_reason, p.old_value, p.new_value, p.metadata,
p.erased_at IS NOT NULL AS erased, e.commitments
FROM @S@.provenance_ledger p
LEFT JOIN @S@.log_erased e ON e.record_id = p.id
WHERE (p.xid IS NULL OR p.xid < $2::xid8) AND ($1::xid8 IS NULL OR p.xid >= $1::xid8)
AND NOT EXISTS (SELECT 1 FROM @S@.log_leaf l WHERE l.kind = 1 AND l.item_id = p.id)
UNION ALL
SELECT 2::int2, r.id, r.entity_id, NULL, r.erased_at, NULL, NULL, NULL, r.reason, NULL, NULL, NULL,
false, NULL
FROM @S@.erasure r
WHERE r.xid < $2::xid8 AND ($1::xid8 IS NULL OR r.xid >= $1::xid8)
AND NOT EXISTS (SELECT 1 FROM @S@.log_leaf l WHERE l.kind = 2 AND l.item_id = r.id)
ORDER BY 5, 1, 2
