-- description: cache MAC key, cache epoch markers
-- The key that authenticates every cached answer. It never goes to
-- Redis; only roles that may run pl_cache_secret() read it.
CREATE TABLE @S@.cache_secret (
  id      integer PRIMARY KEY CHECK (id = 1),
  mac_key bytea NOT NULL CHECK (length(mac_key) = 32)
);
-- gen_random_uuid() draws from pg_strong_random(): 2 x 122 random bits.
INSERT INTO @S@.cache_secret VALUES (1, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text,
  '-', ''), 'hex'));
REVOKE ALL ON @S@.cache_secret FROM PUBLIC;
CREATE TRIGGER cache_secret_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.cache_secret
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
CREATE FUNCTION @S@.pl_cache_secret() RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT s.mac_key FROM @S@.cache_secret s WHERE s.id = 1
$fn$;
-- Per Redis database and key prefix, the epoch whose marker key some
-- process set there (confirmed: the SET succeeded). A marker missing
-- after it was confirmed means Redis lost the epoch's data.
CREATE TABLE @S@.cache_marks (
  binding   text COLLATE "C" PRIMARY KEY,
  epoch     bigint NOT NULL,
  confirmed boolean NOT NULL
);
CREATE TRIGGER cache_marks_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON @S@.cache_marks
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
-- A process found Redis in a state it cannot trust: another run_id, or
-- the epoch's marker missing under p_binding. p_action 0 asks: returns 1
-- when the caller should set the marker (never confirmed), 2 when it
-- was confirmed (look again: a marker missing now means data was lost),
-- else 0 (nothing to do; after another run_id, the epoch was moved).
-- p_action 1 records that the caller set it. p_action 2 moves the epoch
-- if its marker is still the confirmed one. Moving means a new epoch
-- that no process uses until every write intent placed before has run
-- out (p_window_ms).
CREATE FUNCTION @S@.pl_cache_recover(p_run_id text, p_epoch bigint, p_window_ms integer,
                                     p_binding text, p_action integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  s @S@.cache_state;
  m @S@.cache_marks;
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  SELECT * INTO s FROM @S@.cache_state c WHERE c.id = 1 FOR UPDATE;
  SELECT * INTO m FROM @S@.cache_marks k WHERE k.binding = p_binding;
  IF p_action = 1 THEN
    UPDATE @S@.cache_marks k SET confirmed = true WHERE k.binding = p_binding AND k.epoch = p_epoch;
    RETURN 1;
  END IF;
-- Never bound: nobody can have placed an intent in it yet.
  IF s.redis_run_id IS NULL THEN
    UPDATE @S@.cache_state c SET epoch = c.epoch + 1, redis_run_id = p_run_id WHERE c.id = 1;
    RETURN 0;
  END IF;
  IF s.redis_run_id IS DISTINCT FROM p_run_id OR
     (p_action = 2 AND s.epoch = p_epoch AND m.epoch = p_epoch AND m.confirmed) THEN
    UPDATE @S@.cache_state c SET epoch = c.epoch + 1, redis_run_id = p_run_id,
      disabled_since = CASE WHEN c.disabled_until > now() THEN c.disabled_since ELSE now() END,
      disabled_until = greatest(c.disabled_until, now() + p_window_ms * interval '1 millisecond')
     WHERE c.id = 1;
    RETURN 0;
  END IF;
  IF p_action = 0 AND s.epoch = p_epoch AND s.disabled_until <= now() THEN
    IF m.epoch = p_epoch AND m.confirmed THEN
      RETURN 2;
    END IF;
    INSERT INTO @S@.cache_marks AS k VALUES (p_binding, p_epoch, false)
      ON CONFLICT (binding) DO UPDATE SET epoch = EXCLUDED.epoch, confirmed = false
      WHERE k.epoch <> EXCLUDED.epoch;
    RETURN 1;
  END IF;
  RETURN 0;
END $fn$;
REVOKE EXECUTE ON FUNCTION @S@.pl_cache_secret(), @S@.pl_cache_recover(text, bigint, integer, text, integer)
  FROM PUBLIC;
