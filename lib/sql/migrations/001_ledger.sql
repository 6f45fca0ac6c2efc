-- description: ledger, latest state, entity heads, idempotency, cache state
-- Append-only guard: ledger tables refuse UPDATE, DELETE and TRUNCATE
-- from anyone; derived tables accept them only from our functions.
CREATE FUNCTION @S@.pl_reject_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'PLA01',
    MESSAGE = format('%s on %I.%I is not allowed: the provenance ledger is append-only',
                     TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);
END $fn$;
-- "Our own functions are running": they run as the ledger's owner
-- (SECURITY DEFINER) and set the flag; the flag alone proves nothing,
-- since any session can set it.
-- plpgsql, not SQL: its plans stay cached across calls, and it runs
-- on every insert.
CREATE FUNCTION @S@.pl_is_internal() RETURNS boolean LANGUAGE plpgsql STABLE AS $fn$
BEGIN
  IF coalesce(current_setting('provledger.internal', true), '') <> 'on' THEN RETURN false; END IF;
  RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles a ON a.oid = c.relowner
                  WHERE c.oid = '@S@.entity_head'::regclass AND a.rolname = current_user);
END $fn$;
CREATE FUNCTION @S@.pl_guard_derived() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF NOT @S@.pl_is_internal() THEN
    RAISE EXCEPTION USING ERRCODE = 'PLA01',
      MESSAGE = format('%s on %I.%I is not allowed: it is maintained by libprovledger',
                       TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);
  END IF;
  RETURN NULL;
END $fn$;
CREATE SEQUENCE @S@.provenance_ledger_id_seq AS bigint;
CREATE TABLE @S@.provenance_ledger (
  id               bigint NOT NULL DEFAULT nextval('@S@.provenance_ledger_id_seq'),
  entity_id        text COLLATE "C" NOT NULL,
  field_name       text COLLATE "C" NOT NULL,
  old_value        jsonb,
  new_value        jsonb NOT NULL,
  transaction_time timestamptz NOT NULL DEFAULT clock_timestamp(),
  valid_time_start timestamptz NOT NULL,
  valid_time_end   timestamptz NOT NULL DEFAULT 'infinity',
  source_type      text COLLATE "C" NOT NULL,
  change_reason    text,
  metadata         jsonb NOT NULL DEFAULT '{}',
  idempotency_key  text COLLATE "C",
  CONSTRAINT provenance_ledger_pkey PRIMARY KEY (id, transaction_time),
  CONSTRAINT provenance_valid_interval CHECK (valid_time_start < valid_time_end),
  CONSTRAINT provenance_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
  CONSTRAINT provenance_nonempty CHECK (entity_id <> '' AND field_name <> '' AND source_type <> '')
) PARTITION BY RANGE (transaction_time);
CREATE INDEX idx_prov_tt ON @S@.provenance_ledger
  (entity_id, field_name, transaction_time DESC, id DESC) INCLUDE (valid_time_start, valid_time_end);
CREATE INDEX idx_prov_vt ON @S@.provenance_ledger
  (entity_id, field_name, valid_time_start, valid_time_end) INCLUDE (transaction_time);
CREATE INDEX idx_prov_metadata ON @S@.provenance_ledger USING gin (metadata jsonb_path_ops);
CREATE TRIGGER provenance_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.provenance_ledger
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_reject_change();
-- One row per entity: the lock that orders its writers, and the last
-- transaction time handed out (times strictly increase per entity).
CREATE TABLE @S@.entity_head (
  entity_id    text COLLATE "C" PRIMARY KEY,
  last_tt      timestamptz NOT NULL,
  record_count bigint NOT NULL
);
-- The exact latest-state table: every record that is, or may become,
-- the current answer of its field from ten seconds ago onwards.
CREATE TABLE @S@.provenance_current (
  entity_id        text COLLATE "C" NOT NULL,
  field_name       text COLLATE "C" NOT NULL,
  transaction_time timestamptz NOT NULL,
  id               bigint NOT NULL,
  valid_time_start timestamptz NOT NULL,
  valid_time_end   timestamptz NOT NULL,
  new_value        jsonb NOT NULL,
  old_value        jsonb,
  source_type      text COLLATE "C" NOT NULL,
  change_reason    text,
  metadata         jsonb NOT NULL,
  PRIMARY KEY (entity_id, field_name, transaction_time, id)
);
CREATE INDEX provenance_current_starts ON @S@.provenance_current (entity_id, field_name, valid_time_start);
CREATE TABLE @S@.provenance_idempotency (
  idempotency_key  text COLLATE "C" PRIMARY KEY,
  id               bigint NOT NULL,
  transaction_time timestamptz NOT NULL,
  content_hash     text NOT NULL
);
CREATE TRIGGER idempotency_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.provenance_idempotency
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_reject_change();
CREATE TABLE @S@.ledger_meta (
  id integer PRIMARY KEY CHECK (id = 1),
  partitions_until timestamptz NOT NULL
);
INSERT INTO @S@.ledger_meta VALUES (1, '-infinity');
-- Shared cache state: this ledger's identity in Redis keys, the key
-- epoch, the Redis instance it is bound to, a window in which no
-- process may use the cache, and the longest lease any process takes.
CREATE TABLE @S@.cache_state (
  id             integer PRIMARY KEY CHECK (id = 1),
  ledger_id      text NOT NULL,
  epoch          bigint NOT NULL,
  redis_run_id   text,
  disabled_since timestamptz,
  disabled_until timestamptz NOT NULL,
  lease_ms       integer NOT NULL
);
INSERT INTO @S@.cache_state VALUES
  (1, md5(random()::text || clock_timestamp()::text || '@s@'), 1, NULL, NULL, '-infinity', 0);
CREATE TRIGGER entity_head_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.entity_head
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
CREATE TRIGGER provenance_current_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.provenance_current
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
CREATE TRIGGER ledger_meta_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.ledger_meta
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
CREATE TRIGGER cache_state_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.cache_state
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
-- Monthly partitions (UTC months), created on demand and ahead.
CREATE FUNCTION @S@.pl_ensure_partition(p_at timestamptz) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC' AS $fn$
DECLARE
  v_start timestamptz := date_trunc('month', p_at);
  v_name  text := 'provenance_ledger_' || to_char(v_start, 'YYYY_MM');
BEGIN
  IF to_regclass(format('%I.%I', '@s@', v_name)) IS NOT NULL THEN RETURN false; END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.provenance_partitions', 0));
  IF to_regclass(format('%I.%I', '@s@', v_name)) IS NOT NULL THEN RETURN false; END IF;
-- Another session may have created it a moment ago without our
-- catalog cache knowing yet: that is success, not an error.
  BEGIN
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.provenance_ledger FOR VALUES FROM (%L) TO (%L)',
                   '@s@', v_name, '@s@', v_start, v_start + interval '1 month');
  EXCEPTION WHEN duplicate_table THEN
    RETURN false;
  END;
  EXECUTE format('CREATE TRIGGER provenance_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %I.%I '
                 'FOR EACH STATEMENT EXECUTE FUNCTION %I.pl_reject_change()', '@s@', v_name, '@s@');
  RETURN true;
END $fn$;
CREATE FUNCTION @S@.pl_ensure_partitions(p_from timestamptz, p_months integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC' AS $fn$
DECLARE
  v_start timestamptz := date_trunc('month', p_from);
  v_made integer := 0;
BEGIN
  FOR i IN 0 .. p_months - 1 LOOP
    IF @S@.pl_ensure_partition(v_start + i * interval '1 month') THEN v_made := v_made + 1; END IF;
  END LOOP;
  PERFORM set_config('provledger.internal', 'on', true);
  UPDATE @S@.ledger_meta SET partitions_until = greatest(partitions_until, v_start + p_months * interval '1 month')
   WHERE id = 1 AND v_start <= date_trunc('month', clock_timestamp());
  RETURN v_made;
END $fn$;
CREATE FUNCTION @S@.pl_invalid(p_message text) RETURNS timestamptz LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = p_message;
END $fn$;
-- What an idempotency key stands for: the request, not its outcome.
CREATE FUNCTION @S@.pl_change_hash(p_entity text, p_field text, p_new jsonb, p_old jsonb,
    p_vfrom timestamptz, p_vto timestamptz, p_source text, p_reason text, p_meta jsonb, p_tt timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
  SELECT md5(row(p_entity, p_field, p_new, p_old, extract(epoch FROM p_vfrom),
                 extract(epoch FROM p_vto), p_source, p_reason, p_meta, extract(epoch FROM p_tt))::text)
$fn$;
-- Rows written with plain SQL, not through pl_append: order them
-- after the entity's head (rejecting any that are not) and tell
-- listening caches. Runs as the inserting user, so it can tell.
CREATE FUNCTION @S@.pl_order_external(p_ids bigint[], p_tts timestamptz[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_bad record;
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  CREATE TEMP TABLE IF NOT EXISTS pl_external_rows (entity_id text, transaction_time timestamptz, id bigint)
    ON COMMIT DELETE ROWS;
  DELETE FROM pl_external_rows;
  INSERT INTO pl_external_rows SELECT l.entity_id, l.transaction_time, l.id
    FROM unnest(p_ids, p_tts) AS u(id, tt)
    JOIN @S@.provenance_ledger l ON l.id = u.id AND l.transaction_time = u.tt;
  PERFORM 1 FROM @S@.entity_head WHERE entity_id IN (SELECT entity_id FROM pl_external_rows)
    ORDER BY entity_id FOR NO KEY UPDATE;
  SELECT n.entity_id, n.transaction_time INTO v_bad
    FROM (SELECT entity_id, transaction_time,
                 lag(transaction_time) OVER (PARTITION BY entity_id ORDER BY transaction_time, id) AS prev
            FROM pl_external_rows) n
    LEFT JOIN @S@.entity_head h ON h.entity_id = n.entity_id
   WHERE n.transaction_time <= h.last_tt OR n.transaction_time = n.prev
      OR n.transaction_time > clock_timestamp()
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'PLC02', MESSAGE = format(
      'entity %s: transaction_time %s is not after the entity''s last one, or is in the future',
      v_bad.entity_id, v_bad.transaction_time);
  END IF;
  INSERT INTO @S@.entity_head AS h (entity_id, last_tt, record_count)
  SELECT entity_id, max(transaction_time), count(*) FROM pl_external_rows GROUP BY entity_id ORDER BY entity_id
  ON CONFLICT (entity_id) DO UPDATE
    SET last_tt = greatest(h.last_tt, EXCLUDED.last_tt), record_count = h.record_count + EXCLUDED.record_count;
  PERFORM pg_notify('@s@_external', entity_id) FROM (SELECT DISTINCT entity_id FROM pl_external_rows) s;
END $fn$;
CREATE FUNCTION @S@.pl_ledger_order_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF NOT @S@.pl_is_internal() THEN
    PERFORM @S@.pl_order_external(array_agg(id), array_agg(transaction_time)) FROM new_rows;
  END IF;
  RETURN NULL;
END $fn$;
-- Latest-state maintenance for every insert. The horizon keeps
-- superseded rows ten seconds, so a reader whose clock reading precedes
-- its snapshot by a little never misses its answer.
CREATE FUNCTION @S@.pl_ledger_after_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_horizon timestamptz := clock_timestamp() - interval '10 seconds';
  v_hash text := current_setting('enable_hashjoin');
  v_merge text := current_setting('enable_mergejoin');
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
-- New rows the next new row of the same field already covers from the
-- horizon on are left out (one ordered pass; a row kept needlessly is
-- harmless, the answer query picks the newest covering row).
  INSERT INTO @S@.provenance_current (entity_id, field_name, transaction_time, id, valid_time_start,
      valid_time_end, new_value, old_value, source_type, change_reason, metadata)
  SELECT n.entity_id, n.field_name, n.transaction_time, n.id, n.valid_time_start, n.valid_time_end,
         n.new_value, n.old_value, n.source_type, n.change_reason, n.metadata
    FROM (SELECT r.*,
                 lead(r.valid_time_start) OVER w AS next_start,
                 lead(r.valid_time_end) OVER w AS next_end
            FROM new_rows r
          WINDOW w AS (PARTITION BY r.entity_id, r.field_name ORDER BY r.transaction_time, r.id)) n
   WHERE n.valid_time_end > v_horizon
     AND NOT coalesce(n.next_start <= greatest(n.valid_time_start, v_horizon)
                      AND n.valid_time_end <= n.next_end, false);
-- Then drop, in every field written, the candidates that have ended or
-- that a newer candidate covers from the horizon on: live writes prune
-- what earlier writes left. A transition table has no statistics; probe
-- the latest-state table by its key, never scan it whole.
  PERFORM set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true);
  DELETE FROM @S@.provenance_current c
   USING (SELECT x.entity_id, x.field_name, x.transaction_time, x.id
            FROM (SELECT p.entity_id, p.field_name, p.transaction_time, p.id, p.valid_time_start,
                         p.valid_time_end, lead(p.valid_time_start) OVER w AS next_start,
                         lead(p.valid_time_end) OVER w AS next_end
                    FROM @S@.provenance_current p
                    JOIN (SELECT DISTINCT entity_id, field_name FROM new_rows) t
                      ON p.entity_id = t.entity_id AND p.field_name = t.field_name
                  WINDOW w AS (PARTITION BY p.entity_id, p.field_name ORDER BY p.transaction_time, p.id)) x
           WHERE x.valid_time_end <= v_horizon
              OR (x.next_start <= greatest(x.valid_time_start, v_horizon)
                  AND x.valid_time_end <= x.next_end)) d
   WHERE c.entity_id = d.entity_id AND c.field_name = d.field_name
     AND c.transaction_time = d.transaction_time AND c.id = d.id;
  PERFORM set_config('enable_hashjoin', v_hash, true), set_config('enable_mergejoin', v_merge, true);
  RETURN NULL;
END $fn$;
-- Triggers fire in name order: ordering first, then maintenance.
CREATE TRIGGER provenance_after_insert_1_order AFTER INSERT ON @S@.provenance_ledger
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_ledger_order_insert();
CREATE TRIGGER provenance_after_insert_2_current AFTER INSERT ON @S@.provenance_ledger
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_ledger_after_insert();
-- Settled reads: a read about an explicit past transaction time first
-- waits for the writers of that entity still in flight (they hold the
-- entity's settle lock from before their time is taken until commit),
-- so its answer never changes afterwards. 1024 lock buckets bound the
-- locks one batch takes.
CREATE FUNCTION @S@.pl_settle(p_entity text) RETURNS void LANGUAGE sql AS $fn$
  SELECT pg_advisory_xact_lock_shared(hashtext('@s@.settle'), (hashtextextended(p_entity, 0) & 1023)::int4)
$fn$;
-- The sort key is an expression on purpose: ordered by the bare column,
-- the planner may walk a time-ordered index of the whole month backwards
-- hoping to meet this entity soon; this way it finds the entity's few
-- rows by idx_prov_tt and sorts them.
CREATE FUNCTION @S@.pl_read_asof(p_entity text, p_field text, p_tt timestamptz, p_vt timestamptz,
    p_any_valid boolean) RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_tt <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;
  IF p_any_valid THEN
    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field
      AND transaction_time <= p_tt ORDER BY transaction_time + interval '0' DESC, id DESC LIMIT 1;
  ELSE
    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field
      AND transaction_time <= p_tt AND valid_time_start <= coalesce(p_vt, now())
      AND valid_time_end > coalesce(p_vt, now()) ORDER BY transaction_time + interval '0' DESC, id DESC
      LIMIT 1;
  END IF;
END $fn$;
CREATE FUNCTION @S@.pl_read_snapshot(p_entity text, p_tt timestamptz, p_vt timestamptz,
    p_any_valid boolean) RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_tt <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;
  IF p_any_valid THEN
    RETURN QUERY SELECT DISTINCT ON (field_name) * FROM @S@.provenance_ledger WHERE entity_id = p_entity
      AND transaction_time <= p_tt ORDER BY field_name, transaction_time DESC, id DESC;
  ELSE
    RETURN QUERY SELECT DISTINCT ON (field_name) * FROM @S@.provenance_ledger WHERE entity_id = p_entity
      AND transaction_time <= p_tt AND valid_time_start <= coalesce(p_vt, now())
      AND valid_time_end > coalesce(p_vt, now()) ORDER BY field_name, transaction_time DESC, id DESC;
  END IF;
END $fn$;
CREATE FUNCTION @S@.pl_read_range(p_entity text, p_field text, p_from timestamptz, p_to timestamptz)
RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_to IS NOT NULL AND p_to <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;
  IF p_field IS NULL THEN
    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity
      AND transaction_time >= coalesce(p_from, now()) AND transaction_time < coalesce(p_to, now())
      ORDER BY transaction_time, id;
  ELSE
    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field
      AND transaction_time >= coalesce(p_from, now()) AND transaction_time < coalesce(p_to, now())
      ORDER BY transaction_time, id;
  END IF;
END $fn$;
-- The library's append: one call appends a whole batch, all or nothing.
-- p_tt is NULL except for the opt-in history import.
CREATE FUNCTION @S@.pl_append(p_entity text[], p_field text[], p_new jsonb[], p_old jsonb[],
    p_vfrom timestamptz[], p_vto timestamptz[], p_source text[], p_reason text[], p_meta jsonb[],
    p_key text[], p_tt timestamptz[])
RETURNS TABLE (ord bigint, rec_id bigint, rec_tt timestamptz, cache_epoch bigint, appended boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_import boolean := p_tt IS NOT NULL;
  v_dup bigint[] := '{}';
  v_bad record;
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
-- Partitions first, before any entity lock is held.
  IF clock_timestamp() + interval '1 day' >= (SELECT partitions_until FROM @S@.ledger_meta WHERE id = 1) THEN
    PERFORM @S@.pl_ensure_partitions(clock_timestamp(), 4);
  END IF;
  IF v_import THEN
    PERFORM @S@.pl_ensure_partition(m) FROM (SELECT DISTINCT date_trunc('month', t, 'UTC') AS m
                                              FROM unnest(p_tt) t WHERE t IS NOT NULL) s;
  END IF;
-- Settle locks before any time is taken (see pl_settle), then the
-- existing heads, both in key order: writers of one entity queue here,
-- and batches cannot deadlock on each other.
  IF NOT v_import THEN
    PERFORM pg_advisory_xact_lock(hashtext('@s@.settle'), b)
       FROM (SELECT DISTINCT (hashtextextended(e, 0) & 1023)::int4 AS b FROM unnest(p_entity) e ORDER BY 1) s;
  END IF;
  PERFORM 1 FROM @S@.entity_head WHERE entity_id = ANY (p_entity) ORDER BY entity_id FOR NO KEY UPDATE;
  IF EXISTS (SELECT 1 FROM unnest(p_key) k WHERE k IS NOT NULL) THEN
    PERFORM pg_advisory_xact_lock(hashtextextended(k, 1))
       FROM (SELECT DISTINCT k FROM unnest(p_key) k WHERE k IS NOT NULL ORDER BY 1) s;
    SELECT u.idem_key INTO v_bad
      FROM unnest(p_entity, p_field, p_new, p_old, p_vfrom, p_vto, p_source, p_reason, p_meta, p_key, p_tt)
           AS u(entity_id, field_name, new_value, old_value, vfrom, vto, source_type, change_reason,
                metadata, idem_key, tt_in)
      JOIN @S@.provenance_idempotency i ON i.idempotency_key = u.idem_key
     WHERE i.content_hash <> @S@.pl_change_hash(u.entity_id, u.field_name, u.new_value, u.old_value,
             u.vfrom, u.vto, u.source_type, u.change_reason, u.metadata, u.tt_in)
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'PLC01',
        MESSAGE = format('idempotency key %s was already used for a different change', v_bad.idem_key);
    END IF;
    SELECT coalesce(array_agg(u.ord), '{}') INTO v_dup
      FROM unnest(p_key) WITH ORDINALITY AS u(idem_key, ord)
      JOIN @S@.provenance_idempotency i ON i.idempotency_key = u.idem_key;
    RETURN QUERY SELECT u.ord, i.id, i.transaction_time, (SELECT s.epoch FROM @S@.cache_state s WHERE s.id = 1), false
      FROM unnest(p_key) WITH ORDINALITY AS u(idem_key, ord)
      JOIN @S@.provenance_idempotency i ON i.idempotency_key = u.idem_key;
  END IF;
  IF v_import THEN
    SELECT x.entity_id, x.tt_in INTO v_bad
      FROM (SELECT u.entity_id, u.tt_in,
                   lag(u.tt_in) OVER (PARTITION BY u.entity_id ORDER BY u.ord) AS prev
              FROM unnest(p_entity, p_tt) WITH ORDINALITY AS u(entity_id, tt_in, ord)
             WHERE u.ord <> ALL (v_dup)) x
      LEFT JOIN @S@.entity_head h ON h.entity_id = x.entity_id
     WHERE x.tt_in IS NULL OR x.tt_in > clock_timestamp() OR x.tt_in <= x.prev OR x.tt_in <= h.last_tt
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'PLC02', MESSAGE = format(
        'entity %s: imported transaction_time %s is not after the entity''s previous one, or is in the future',
        v_bad.entity_id, v_bad.tt_in);
    END IF;
  END IF;
  RETURN QUERY
  WITH input AS MATERIALIZED (
    SELECT u.*, nextval('@S@.provenance_ledger_id_seq') AS new_id,
           row_number() OVER (PARTITION BY u.entity_id ORDER BY u.ord) AS rank,
           count(*) OVER (PARTITION BY u.entity_id) AS n
      FROM unnest(p_entity, p_field, p_new, p_old, p_vfrom, p_vto, p_source, p_reason, p_meta, p_key, p_tt)
           WITH ORDINALITY AS u(entity_id, field_name, new_value, old_value, vfrom, vto, source_type,
                                change_reason, metadata, idem_key, tt_in, ord)
     WHERE u.ord <> ALL (v_dup)
  ), per_entity AS (
    SELECT i.entity_id, count(*) AS n, max(i.tt_in) AS max_tt FROM input i GROUP BY i.entity_id
  ), heads AS (
    INSERT INTO @S@.entity_head AS h (entity_id, last_tt, record_count)
    SELECT p.entity_id,
           CASE WHEN v_import THEN p.max_tt
                ELSE clock_timestamp() + (p.n - 1) * interval '1 microsecond' END,
           p.n
      FROM per_entity p ORDER BY p.entity_id
    ON CONFLICT (entity_id) DO UPDATE SET
      last_tt = CASE WHEN v_import THEN EXCLUDED.last_tt
                     ELSE greatest(clock_timestamp(), h.last_tt + interval '1 microsecond')
                          + (EXCLUDED.record_count - 1) * interval '1 microsecond' END,
      record_count = h.record_count + EXCLUDED.record_count
    RETURNING h.entity_id, h.last_tt
  ), rows AS (
    SELECT i.*, CASE WHEN v_import THEN i.tt_in
                     ELSE hd.last_tt - (i.n - i.rank) * interval '1 microsecond' END AS tt
      FROM input i JOIN heads hd ON hd.entity_id = i.entity_id
  ), ins AS (
    INSERT INTO @S@.provenance_ledger (id, entity_id, field_name, old_value, new_value, transaction_time,
        valid_time_start, valid_time_end, source_type, change_reason, metadata, idempotency_key)
    SELECT r.new_id, r.entity_id, r.field_name, r.old_value, r.new_value, r.tt, coalesce(r.vfrom, r.tt),
           CASE WHEN coalesce(r.vto, 'infinity') > coalesce(r.vfrom, r.tt) THEN coalesce(r.vto, 'infinity')
                ELSE @S@.pl_invalid(format('changes[%s].valid_to: must be after valid_from, which defaults '
                     'to the transaction time %s', r.ord - 1, r.tt)) END,
           r.source_type, r.change_reason, coalesce(r.metadata, '{}'), r.idem_key
      FROM rows r
    RETURNING 1
  ), idem AS (
    INSERT INTO @S@.provenance_idempotency (idempotency_key, id, transaction_time, content_hash)
    SELECT r.idem_key, r.new_id, r.tt,
           @S@.pl_change_hash(r.entity_id, r.field_name, r.new_value, r.old_value, r.vfrom, r.vto,
                              r.source_type, r.change_reason, r.metadata, r.tt_in)
      FROM rows r WHERE r.idem_key IS NOT NULL
    RETURNING 1
  )
  SELECT r.ord, r.new_id, r.tt, (SELECT s.epoch FROM @S@.cache_state s WHERE s.id = 1), true FROM rows r;
END $fn$;
-- The cache's shared state (see cache.c for the protocol).
CREATE FUNCTION @S@.pl_cache_lease(p_lease_ms integer)
RETURNS TABLE (ledger_id text, epoch bigint, redis_run_id text, disabled integer, server_now timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF (SELECT s.lease_ms FROM @S@.cache_state s WHERE s.id = 1) < p_lease_ms THEN
    PERFORM set_config('provledger.internal', 'on', true);
    UPDATE @S@.cache_state s SET lease_ms = p_lease_ms WHERE s.id = 1 AND s.lease_ms < p_lease_ms;
  END IF;
  RETURN QUERY SELECT s.ledger_id, s.epoch, coalesce(s.redis_run_id, ''),
    (s.disabled_until > now())::int4, now() FROM @S@.cache_state s WHERE s.id = 1;
END $fn$;
CREATE FUNCTION @S@.pl_cache_disable(p_ms integer)
RETURNS TABLE (epoch bigint, disabled_for_us bigint, disabled_until timestamptz, lease_ms integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  RETURN QUERY
  UPDATE @S@.cache_state s SET
    epoch = CASE WHEN s.disabled_until > now() THEN s.epoch ELSE s.epoch + 1 END,
    disabled_since = CASE WHEN s.disabled_until > now() THEN s.disabled_since ELSE now() END,
    disabled_until = greatest(s.disabled_until, now() + p_ms * interval '1 millisecond')
  WHERE s.id = 1
  RETURNING s.epoch, (extract(epoch FROM now() - s.disabled_since) * 1000000)::bigint, s.disabled_until,
            s.lease_ms;
END $fn$;
CREATE FUNCTION @S@.pl_cache_bind(p_run_id text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  UPDATE @S@.cache_state SET epoch = epoch + 1, redis_run_id = p_run_id
   WHERE id = 1 AND redis_run_id IS DISTINCT FROM p_run_id;
  RETURN (SELECT epoch FROM @S@.cache_state WHERE id = 1);
END $fn$;
-- Functions that run with the owner's rights are for roles the owner
-- grants them to (README: "Roles and grants"), not for PUBLIC.
REVOKE EXECUTE ON FUNCTION
  @S@.pl_append(text[], text[], jsonb[], jsonb[], timestamptz[], timestamptz[], text[], text[], jsonb[],
                text[], timestamptz[]),
  @S@.pl_cache_lease(integer), @S@.pl_cache_disable(integer), @S@.pl_cache_bind(text),
  @S@.pl_ensure_partition(timestamptz), @S@.pl_ensure_partitions(timestamptz, integer),
  @S@.pl_order_external(bigint[], timestamptz[]), @S@.pl_ledger_after_insert()
FROM PUBLIC;
