-- name: pl_erase_lock
-- symbol: PL_SQL_ERASE_LOCK
-- params: text, bytea
-- param-format: binary
-- result-format: text
-- class: maintenance
-- Holds the entity's head against writers until the erasure commits, and
-- gives it a commitment key ($2) if it has none.
SELECT (SELECT count(*) FROM (SELECT 1 FROM @S@.entity_head WHERE entity_id = $1 FOR UPDATE) h),
(SELECT count(*) FROM @S@.pl_seal_keys(ARRAY[$1], ARRAY[$2]))
