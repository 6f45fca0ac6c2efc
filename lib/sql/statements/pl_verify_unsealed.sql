-- name: pl_verify_unsealed
-- symbol: PL_SQL_VERIFY_UNSEALED
-- params: none
-- param-format: text
-- result-format: binary
-- class: heavy
-- Opened as a binary cursor: records not in the log, each with whether a
-- sealed record of its entity is at or after its transaction time (then
-- no commit can have produced it: back-dated).
SELECT p.id, p.entity_id, p.transaction_time,
EXISTS (SELECT 1 FROM @S@.provenance_ledger q JOIN @S@.log_leaf l ON l.kind = 1 AND l.item_id = q.id
WHERE q.entity_id = p.entity_id AND q.transaction_time >= p.transaction_time AND q.id <> p.id)
FROM @S@.provenance_ledger p
WHERE NOT EXISTS (SELECT 1 FROM @S@.log_leaf l WHERE l.kind = 1 AND l.item_id = p.id)
ORDER BY p.id
