-- description: the cache's epoch moves when PostgreSQL's timeline changes (a failover)
-- Migration 9 (issue 15). A standby promoted to primary starts a new
-- timeline. With asynchronous replication the old primary may have
-- committed writes the new one never received, and Redis may hold answers
-- derived from them, under the epoch the shared cache state names, or
-- under a later epoch the old primary moved to in a commit that was lost
-- too. So the state records the timeline its epoch belongs to, and the
-- first lease taken on another timeline (every process takes one at least
-- every cache_lease_ms, on the primary) moves the epoch past any the old
-- primary can have used (by 2^32: far more moves than a lifetime makes)
-- and disables the cache for the window of lease.c's disable_window_ms,
-- so that no process uses the new epoch before every lease taken from the
-- old primary has run out. No key of an old epoch is ever read again.
-- A failover with synchronous replication loses nothing; it still moves
-- the epoch: the cache is cold for one window after it.
ALTER TABLE @S@.cache_state ADD COLUMN timeline bigint;
-- The timeline this server writes WAL on (a primary; the name of its
-- current WAL segment begins with it in hex).
CREATE FUNCTION @S@.pl_timeline() RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
$fn$;
CREATE OR REPLACE FUNCTION @S@.pl_cache_lease(p_lease_ms integer)
RETURNS TABLE (ledger_id text, epoch bigint, redis_run_id text, disabled integer, server_now timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_timeline bigint := @S@.pl_timeline();
BEGIN
  IF (SELECT s.lease_ms FROM @S@.cache_state s WHERE s.id = 1) < p_lease_ms THEN
    PERFORM set_config('provledger.internal', 'on', true);
    UPDATE @S@.cache_state s SET lease_ms = p_lease_ms WHERE s.id = 1 AND s.lease_ms < p_lease_ms;
  END IF;
  IF (SELECT s.timeline FROM @S@.cache_state s WHERE s.id = 1) IS DISTINCT FROM v_timeline THEN
    PERFORM set_config('provledger.internal', 'on', true);
    -- The first timeline recorded (a new ledger, or one migrated to this
    -- version) is the one its epoch has been used on: nothing to move.
    UPDATE @S@.cache_state s SET timeline = v_timeline,
      epoch = CASE WHEN s.timeline IS NULL THEN s.epoch ELSE s.epoch + 4294967296 END,
      disabled_since = CASE WHEN s.timeline IS NULL OR s.disabled_until > now() THEN s.disabled_since
                            ELSE now() END,
      disabled_until = CASE WHEN s.timeline IS NULL THEN s.disabled_until
                            ELSE greatest(s.disabled_until, now() + greatest(4 * s.lease_ms, 4000 + 2 * s.lease_ms)
                                          * interval '1 millisecond') END
     WHERE s.id = 1 AND s.timeline IS DISTINCT FROM v_timeline;
  END IF;
  RETURN QUERY SELECT s.ledger_id, s.epoch, coalesce(s.redis_run_id, ''),
    (s.disabled_until > now())::int4, now() FROM @S@.cache_state s WHERE s.id = 1;
END $fn$;
