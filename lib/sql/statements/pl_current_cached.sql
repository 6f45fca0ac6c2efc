-- name: pl_current_cached
-- symbol: PL_SQL_CURRENT
-- params: text, text
-- param-format: binary
-- result-format: binary
-- class: point
-- The answer, and the next instant it can change: its own end, or the
-- start of a later-starting candidate (both found by index, so a hot
-- field with many recent candidates stays one short scan). "Now" is the
-- entity's now (migration 11): never before its last transaction time;
-- the boundary is still compared with the clock (lib/cache/cache.c), as
-- the entity's now reaches it exactly when the clock does (no write can
-- move it without invalidating the entry).
SELECT c.id, c.entity_id, c.field_name, c.new_value, c.old_value, c.transaction_time,
c.valid_time_start, c.valid_time_end, c.source_type, c.change_reason, c.metadata, c.erased_at,
least(c.valid_time_end, (SELECT min(p.valid_time_start) FROM @S@.provenance_current p WHERE p.entity_id = $1 AND p.field_name = $2 AND p.valid_time_start > n.t))
FROM (SELECT greatest(now(), (SELECT h.last_tt FROM @S@.entity_head h WHERE h.entity_id = $1)) AS t) n
LEFT JOIN LATERAL (SELECT *
FROM @S@.provenance_current
WHERE entity_id = $1 AND field_name = $2 AND valid_time_start <= n.t
AND valid_time_end > n.t
ORDER BY transaction_time DESC, id DESC LIMIT 1) c ON true
