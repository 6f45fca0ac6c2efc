-- name: pl_replica_lag
-- symbol: PL_SQL_REPLICA_LAG
-- params: none
-- param-format: binary
-- result-format: binary
-- class: point
-- How far a replica's replay is behind, in microseconds (0 on the primary).
SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0
WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
ELSE coalesce((extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000000)::int8, 0) END
