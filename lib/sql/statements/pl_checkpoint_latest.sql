-- name: pl_checkpoint_latest
-- symbol: PL_SQL_CHECKPOINT_LATEST
-- params: none
-- param-format: text
-- result-format: binary
-- class: point
-- The latest checkpoint with its frontier, the stored leaves' count, and
-- the ledger's id (for a default origin). One row; NULLs before the first
-- seal.
SELECT c.tree_size, c.root_hash, c.origin, c.note, c.frontier, c.sealed_at,
(SELECT coalesce(max(l.leaf_index) + 1, 0) FROM @S@.log_leaf l),
(SELECT s.ledger_id FROM @S@.cache_state s WHERE s.id = 1)
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (SELECT * FROM @S@.log_checkpoint
ORDER BY tree_size DESC, id DESC LIMIT 1) c ON true
