-- name: pl_rollup_lag
-- symbol: PL_SQL_ROLLUP_LAG
-- params: none
-- param-format: text
-- result-format: text
-- class: point
-- The rollup's state: when its horizon was set, the records it holds, the
-- records above it (the tail each dashboard adds) and the oldest of
-- their transaction times; lag_seconds is how old that oldest is (0 with
-- no tail), NULL before the first advance. Instants as int8 microseconds.
SELECT (extract(epoch FROM s.advanced_at) * 1000000)::int8 AS advanced_at, s.records,
t.tail_records, (extract(epoch FROM t.oldest) * 1000000)::int8 AS oldest_unrolled,
CASE WHEN s.horizon IS NULL THEN NULL
ELSE round(extract(epoch FROM greatest(clock_timestamp() - coalesce(t.oldest, clock_timestamp()), interval '0')), 6)
END AS lag_seconds
FROM @S@.rollup_state s
LEFT JOIN LATERAL (SELECT count(*) AS tail_records, min(p.transaction_time) AS oldest
FROM @S@.provenance_ledger p WHERE p.xid >= s.horizon) t ON true
WHERE s.id = 1
