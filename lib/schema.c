/* The embedded SQL: migrations and named statements (see schema.h). */
#include "schema.h"

#include <stdlib.h>
#include <string.h>

#include "result.h"
#include "wire.h"

#define T PL_OID_TEXT
#define TS PL_OID_TIMESTAMPTZ

/* ------------------------------------------------------------------------ */
/* Migration 1: the ledger, its exact latest-state table and entity heads.   */
/* ------------------------------------------------------------------------ */
/* Split in parts: C11 guarantees string literals of 4095 bytes only. */
static const char *const migration_1[] = {
    /* Append-only guard: ledger tables refuse UPDATE, DELETE and TRUNCATE
     * from anyone; derived tables accept them only from our functions. */
    "CREATE FUNCTION @S@.pl_reject_change() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  RAISE EXCEPTION USING ERRCODE = 'PLA01',\n"
    "    MESSAGE = format('%s on %I.%I is not allowed: the provenance ledger is append-only',\n"
    "                     TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);\n"
    "END $fn$;\n"
    /* "Our own functions are running": they run as the ledger's owner
     * (SECURITY DEFINER) and set the flag; the flag alone proves nothing,
     * since any session can set it. */
    /* plpgsql, not SQL: its plans stay cached across calls, and it runs
     * on every insert. */
    "CREATE FUNCTION @S@.pl_is_internal() RETURNS boolean LANGUAGE plpgsql STABLE AS $fn$\n"
    "BEGIN\n"
    "  IF coalesce(current_setting('provledger.internal', true), '') <> 'on' THEN RETURN false; END IF;\n"
    "  RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles a ON a.oid = c.relowner\n"
    "                  WHERE c.oid = '@S@.entity_head'::regclass AND a.rolname = current_user);\n"
    "END $fn$;\n"
    "CREATE FUNCTION @S@.pl_guard_derived() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  IF NOT @S@.pl_is_internal() THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = 'PLA01',\n"
    "      MESSAGE = format('%s on %I.%I is not allowed: it is maintained by libprovledger',\n"
    "                       TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);\n"
    "  END IF;\n"
    "  RETURN NULL;\n"
    "END $fn$;\n"
    "CREATE SEQUENCE @S@.provenance_ledger_id_seq AS bigint;\n"
    "CREATE TABLE @S@.provenance_ledger (\n"
    "  id               bigint NOT NULL DEFAULT nextval('@S@.provenance_ledger_id_seq'),\n"
    "  entity_id        text COLLATE \"C\" NOT NULL,\n"
    "  field_name       text COLLATE \"C\" NOT NULL,\n"
    "  old_value        jsonb,\n"
    "  new_value        jsonb NOT NULL,\n"
    "  transaction_time timestamptz NOT NULL DEFAULT clock_timestamp(),\n"
    "  valid_time_start timestamptz NOT NULL,\n"
    "  valid_time_end   timestamptz NOT NULL DEFAULT 'infinity',\n"
    "  source_type      text COLLATE \"C\" NOT NULL,\n"
    "  change_reason    text,\n"
    "  metadata         jsonb NOT NULL DEFAULT '{}',\n"
    "  idempotency_key  text COLLATE \"C\",\n"
    "  CONSTRAINT provenance_ledger_pkey PRIMARY KEY (id, transaction_time),\n"
    "  CONSTRAINT provenance_valid_interval CHECK (valid_time_start < valid_time_end),\n"
    "  CONSTRAINT provenance_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),\n"
    "  CONSTRAINT provenance_nonempty CHECK (entity_id <> '' AND field_name <> '' AND source_type <> '')\n"
    ") PARTITION BY RANGE (transaction_time);\n"
    "CREATE INDEX idx_prov_tt ON @S@.provenance_ledger\n"
    "  (entity_id, field_name, transaction_time DESC, id DESC) INCLUDE (valid_time_start, valid_time_end);\n"
    "CREATE INDEX idx_prov_vt ON @S@.provenance_ledger\n"
    "  (entity_id, field_name, valid_time_start, valid_time_end) INCLUDE (transaction_time);\n"
    "CREATE INDEX idx_prov_metadata ON @S@.provenance_ledger USING gin (metadata jsonb_path_ops);\n"
    "CREATE TRIGGER provenance_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.provenance_ledger\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_reject_change();\n"
    /* One row per entity: the lock that orders its writers, and the last
     * transaction time handed out (times strictly increase per entity). */
    "CREATE TABLE @S@.entity_head (\n"
    "  entity_id    text COLLATE \"C\" PRIMARY KEY,\n"
    "  last_tt      timestamptz NOT NULL,\n"
    "  record_count bigint NOT NULL\n"
    ");\n"
    /* The exact latest-state table: every record that is, or may become,
     * the current answer of its field from ten seconds ago onwards. */
    "CREATE TABLE @S@.provenance_current (\n"
    "  entity_id        text COLLATE \"C\" NOT NULL,\n"
    "  field_name       text COLLATE \"C\" NOT NULL,\n"
    "  transaction_time timestamptz NOT NULL,\n"
    "  id               bigint NOT NULL,\n"
    "  valid_time_start timestamptz NOT NULL,\n"
    "  valid_time_end   timestamptz NOT NULL,\n"
    "  new_value        jsonb NOT NULL,\n"
    "  old_value        jsonb,\n"
    "  source_type      text COLLATE \"C\" NOT NULL,\n"
    "  change_reason    text,\n"
    "  metadata         jsonb NOT NULL,\n"
    "  PRIMARY KEY (entity_id, field_name, transaction_time, id)\n"
    ");\n"
    "CREATE INDEX provenance_current_starts ON @S@.provenance_current (entity_id, field_name, valid_time_start);\n",
    "CREATE TABLE @S@.provenance_idempotency (\n"
    "  idempotency_key  text COLLATE \"C\" PRIMARY KEY,\n"
    "  id               bigint NOT NULL,\n"
    "  transaction_time timestamptz NOT NULL,\n"
    "  content_hash     text NOT NULL\n"
    ");\n"
    "CREATE TRIGGER idempotency_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.provenance_idempotency\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_reject_change();\n"
    "CREATE TABLE @S@.ledger_meta (\n"
    "  id integer PRIMARY KEY CHECK (id = 1),\n"
    "  partitions_until timestamptz NOT NULL\n"
    ");\n"
    "INSERT INTO @S@.ledger_meta VALUES (1, '-infinity');\n"
    /* Shared cache state: this ledger's identity in Redis keys, the key
     * epoch, the Redis instance it is bound to, a window in which no
     * process may use the cache, and the longest lease any process takes. */
    "CREATE TABLE @S@.cache_state (\n"
    "  id             integer PRIMARY KEY CHECK (id = 1),\n"
    "  ledger_id      text NOT NULL,\n"
    "  epoch          bigint NOT NULL,\n"
    "  redis_run_id   text,\n"
    "  disabled_since timestamptz,\n"
    "  disabled_until timestamptz NOT NULL,\n"
    "  lease_ms       integer NOT NULL\n"
    ");\n"
    "INSERT INTO @S@.cache_state VALUES\n"
    "  (1, md5(random()::text || clock_timestamp()::text || '@s@'), 1, NULL, NULL, '-infinity', 0);\n"
    "CREATE TRIGGER entity_head_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.entity_head\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();\n"
    "CREATE TRIGGER provenance_current_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.provenance_current\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();\n"
    "CREATE TRIGGER ledger_meta_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.ledger_meta\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();\n"
    "CREATE TRIGGER cache_state_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.cache_state\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();\n"
    /* Monthly partitions (UTC months), created on demand and ahead. */
    "CREATE FUNCTION @S@.pl_ensure_partition(p_at timestamptz) RETURNS boolean\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC' AS $fn$\n"
    "DECLARE\n"
    "  v_start timestamptz := date_trunc('month', p_at);\n"
    "  v_name  text := 'provenance_ledger_' || to_char(v_start, 'YYYY_MM');\n"
    "BEGIN\n"
    "  IF to_regclass(format('%I.%I', '@s@', v_name)) IS NOT NULL THEN RETURN false; END IF;\n"
    "  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.provenance_partitions', 0));\n"
    "  IF to_regclass(format('%I.%I', '@s@', v_name)) IS NOT NULL THEN RETURN false; END IF;\n"
    /* Another session may have created it a moment ago without our
     * catalog cache knowing yet: that is success, not an error. */
    "  BEGIN\n"
    "    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.provenance_ledger FOR VALUES FROM (%L) TO (%L)',\n"
    "                   '@s@', v_name, '@s@', v_start, v_start + interval '1 month');\n"
    "  EXCEPTION WHEN duplicate_table THEN\n"
    "    RETURN false;\n"
    "  END;\n"
    "  EXECUTE format('CREATE TRIGGER provenance_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %I.%I '\n"
    "                 'FOR EACH STATEMENT EXECUTE FUNCTION %I.pl_reject_change()', '@s@', v_name, '@s@');\n"
    "  RETURN true;\n"
    "END $fn$;\n"
    "CREATE FUNCTION @S@.pl_ensure_partitions(p_from timestamptz, p_months integer) RETURNS integer\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC' AS $fn$\n"
    "DECLARE\n"
    "  v_start timestamptz := date_trunc('month', p_from);\n"
    "  v_made integer := 0;\n"
    "BEGIN\n"
    "  FOR i IN 0 .. p_months - 1 LOOP\n"
    "    IF @S@.pl_ensure_partition(v_start + i * interval '1 month') THEN v_made := v_made + 1; END IF;\n"
    "  END LOOP;\n"
    "  PERFORM set_config('provledger.internal', 'on', true);\n"
    "  UPDATE @S@.ledger_meta SET partitions_until = greatest(partitions_until, v_start + p_months * interval '1 month')\n"
    "   WHERE id = 1 AND v_start <= date_trunc('month', clock_timestamp());\n"
    "  RETURN v_made;\n"
    "END $fn$;\n"
    "CREATE FUNCTION @S@.pl_invalid(p_message text) RETURNS timestamptz LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n",
    "  RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = p_message;\n"
    "END $fn$;\n"
    /* What an idempotency key stands for: the request, not its outcome. */
    "CREATE FUNCTION @S@.pl_change_hash(p_entity text, p_field text, p_new jsonb, p_old jsonb,\n"
    "    p_vfrom timestamptz, p_vto timestamptz, p_source text, p_reason text, p_meta jsonb, p_tt timestamptz)\n"
    "RETURNS text LANGUAGE sql IMMUTABLE AS $fn$\n"
    "  SELECT md5(row(p_entity, p_field, p_new, p_old, extract(epoch FROM p_vfrom),\n"
    "                 extract(epoch FROM p_vto), p_source, p_reason, p_meta, extract(epoch FROM p_tt))::text)\n"
    "$fn$;\n"
    /* Rows written with plain SQL, not through pl_append: order them
     * after the entity's head (rejecting any that are not) and tell
     * listening caches. Runs as the inserting user, so it can tell. */
    "CREATE FUNCTION @S@.pl_order_external(p_ids bigint[], p_tts timestamptz[]) RETURNS void\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "DECLARE\n"
    "  v_bad record;\n"
    "BEGIN\n"
    "  PERFORM set_config('provledger.internal', 'on', true);\n"
    "  CREATE TEMP TABLE IF NOT EXISTS pl_external_rows (entity_id text, transaction_time timestamptz, id bigint)\n"
    "    ON COMMIT DELETE ROWS;\n"
    "  DELETE FROM pl_external_rows;\n"
    "  INSERT INTO pl_external_rows SELECT l.entity_id, l.transaction_time, l.id\n"
    "    FROM unnest(p_ids, p_tts) AS u(id, tt)\n"
    "    JOIN @S@.provenance_ledger l ON l.id = u.id AND l.transaction_time = u.tt;\n"
    "  PERFORM 1 FROM @S@.entity_head WHERE entity_id IN (SELECT entity_id FROM pl_external_rows)\n"
    "    ORDER BY entity_id FOR NO KEY UPDATE;\n"
    "  SELECT n.entity_id, n.transaction_time INTO v_bad\n"
    "    FROM (SELECT entity_id, transaction_time,\n"
    "                 lag(transaction_time) OVER (PARTITION BY entity_id ORDER BY transaction_time, id) AS prev\n"
    "            FROM pl_external_rows) n\n"
    "    LEFT JOIN @S@.entity_head h ON h.entity_id = n.entity_id\n"
    "   WHERE n.transaction_time <= h.last_tt OR n.transaction_time = n.prev\n"
    "      OR n.transaction_time > clock_timestamp()\n"
    "   LIMIT 1;\n"
    "  IF FOUND THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = 'PLC02', MESSAGE = format(\n"
    "      'entity %s: transaction_time %s is not after the entity''s last one, or is in the future',\n"
    "      v_bad.entity_id, v_bad.transaction_time);\n"
    "  END IF;\n"
    "  INSERT INTO @S@.entity_head AS h (entity_id, last_tt, record_count)\n"
    "  SELECT entity_id, max(transaction_time), count(*) FROM pl_external_rows GROUP BY entity_id ORDER BY entity_id\n"
    "  ON CONFLICT (entity_id) DO UPDATE\n"
    "    SET last_tt = greatest(h.last_tt, EXCLUDED.last_tt), record_count = h.record_count + EXCLUDED.record_count;\n"
    "  PERFORM pg_notify('@s@_external', entity_id) FROM (SELECT DISTINCT entity_id FROM pl_external_rows) s;\n"
    "END $fn$;\n"
    "CREATE FUNCTION @S@.pl_ledger_order_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  IF NOT @S@.pl_is_internal() THEN\n"
    "    PERFORM @S@.pl_order_external(array_agg(id), array_agg(transaction_time)) FROM new_rows;\n"
    "  END IF;\n"
    "  RETURN NULL;\n"
    "END $fn$;\n"
    /* Latest-state maintenance for every insert. The horizon keeps
     * superseded rows ten seconds, so a reader whose clock reading precedes
     * its snapshot by a little never misses its answer. */
    "CREATE FUNCTION @S@.pl_ledger_after_insert() RETURNS trigger\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "DECLARE\n"
    "  v_horizon timestamptz := clock_timestamp() - interval '10 seconds';\n"
    "  v_hash text := current_setting('enable_hashjoin');\n"
    "  v_merge text := current_setting('enable_mergejoin');\n"
    "BEGIN\n"
    "  PERFORM set_config('provledger.internal', 'on', true);\n"
    /* New rows the next new row of the same field already covers from the
     * horizon on are left out (one ordered pass; a row kept needlessly is
     * harmless, the answer query picks the newest covering row). */
    "  INSERT INTO @S@.provenance_current (entity_id, field_name, transaction_time, id, valid_time_start,\n"
    "      valid_time_end, new_value, old_value, source_type, change_reason, metadata)\n"
    "  SELECT n.entity_id, n.field_name, n.transaction_time, n.id, n.valid_time_start, n.valid_time_end,\n"
    "         n.new_value, n.old_value, n.source_type, n.change_reason, n.metadata\n"
    "    FROM (SELECT r.*,\n",
    "                 lead(r.valid_time_start) OVER w AS next_start,\n"
    "                 lead(r.valid_time_end) OVER w AS next_end\n"
    "            FROM new_rows r\n"
    "          WINDOW w AS (PARTITION BY r.entity_id, r.field_name ORDER BY r.transaction_time, r.id)) n\n"
    "   WHERE n.valid_time_end > v_horizon\n"
    "     AND NOT coalesce(n.next_start <= greatest(n.valid_time_start, v_horizon)\n"
    "                      AND n.valid_time_end <= n.next_end, false);\n"
    /* Then drop, in every field written, the candidates that have ended or
     * that a newer candidate covers from the horizon on: live writes prune
     * what earlier writes left. A transition table has no statistics; probe
     * the latest-state table by its key, never scan it whole. */
    "  PERFORM set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true);\n"
    "  DELETE FROM @S@.provenance_current c\n"
    "   USING (SELECT x.entity_id, x.field_name, x.transaction_time, x.id\n"
    "            FROM (SELECT p.entity_id, p.field_name, p.transaction_time, p.id, p.valid_time_start,\n"
    "                         p.valid_time_end, lead(p.valid_time_start) OVER w AS next_start,\n"
    "                         lead(p.valid_time_end) OVER w AS next_end\n"
    "                    FROM @S@.provenance_current p\n"
    "                    JOIN (SELECT DISTINCT entity_id, field_name FROM new_rows) t\n"
    "                      ON p.entity_id = t.entity_id AND p.field_name = t.field_name\n"
    "                  WINDOW w AS (PARTITION BY p.entity_id, p.field_name ORDER BY p.transaction_time, p.id)) x\n"
    "           WHERE x.valid_time_end <= v_horizon\n"
    "              OR (x.next_start <= greatest(x.valid_time_start, v_horizon)\n"
    "                  AND x.valid_time_end <= x.next_end)) d\n"
    "   WHERE c.entity_id = d.entity_id AND c.field_name = d.field_name\n"
    "     AND c.transaction_time = d.transaction_time AND c.id = d.id;\n"
    "  PERFORM set_config('enable_hashjoin', v_hash, true), set_config('enable_mergejoin', v_merge, true);\n"
    "  RETURN NULL;\n"
    "END $fn$;\n"
    /* Triggers fire in name order: ordering first, then maintenance. */
    "CREATE TRIGGER provenance_after_insert_1_order AFTER INSERT ON @S@.provenance_ledger\n"
    "  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_ledger_order_insert();\n"
    "CREATE TRIGGER provenance_after_insert_2_current AFTER INSERT ON @S@.provenance_ledger\n"
    "  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_ledger_after_insert();\n"
    /* Settled reads: a read about an explicit past transaction time first
     * waits for the writers of that entity still in flight (they hold the
     * entity's settle lock from before their time is taken until commit),
     * so its answer never changes afterwards. 1024 lock buckets bound the
     * locks one batch takes. */
    "CREATE FUNCTION @S@.pl_settle(p_entity text) RETURNS void LANGUAGE sql AS $fn$\n"
    "  SELECT pg_advisory_xact_lock_shared(hashtext('@s@.settle'), (hashtextextended(p_entity, 0) & 1023)::int4)\n"
    "$fn$;\n"
    /* The sort key is an expression on purpose: ordered by the bare column,
     * the planner may walk a time-ordered index of the whole month backwards
     * hoping to meet this entity soon; this way it finds the entity's few
     * rows by idx_prov_tt and sorts them. */
    "CREATE FUNCTION @S@.pl_read_asof(p_entity text, p_field text, p_tt timestamptz, p_vt timestamptz,\n"
    "    p_any_valid boolean) RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  IF p_tt <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;\n"
    "  IF p_any_valid THEN\n"
    "    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field\n"
    "      AND transaction_time <= p_tt ORDER BY transaction_time + interval '0' DESC, id DESC LIMIT 1;\n"
    "  ELSE\n"
    "    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field\n"
    "      AND transaction_time <= p_tt AND valid_time_start <= coalesce(p_vt, now())\n"
    "      AND valid_time_end > coalesce(p_vt, now()) ORDER BY transaction_time + interval '0' DESC, id DESC\n"
    "      LIMIT 1;\n"
    "  END IF;\n"
    "END $fn$;\n"
    "CREATE FUNCTION @S@.pl_read_snapshot(p_entity text, p_tt timestamptz, p_vt timestamptz,\n"
    "    p_any_valid boolean) RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  IF p_tt <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;\n"
    "  IF p_any_valid THEN\n"
    "    RETURN QUERY SELECT DISTINCT ON (field_name) * FROM @S@.provenance_ledger WHERE entity_id = p_entity\n",
    "      AND transaction_time <= p_tt ORDER BY field_name, transaction_time DESC, id DESC;\n"
    "  ELSE\n"
    "    RETURN QUERY SELECT DISTINCT ON (field_name) * FROM @S@.provenance_ledger WHERE entity_id = p_entity\n"
    "      AND transaction_time <= p_tt AND valid_time_start <= coalesce(p_vt, now())\n"
    "      AND valid_time_end > coalesce(p_vt, now()) ORDER BY field_name, transaction_time DESC, id DESC;\n"
    "  END IF;\n"
    "END $fn$;\n"
    "CREATE FUNCTION @S@.pl_read_range(p_entity text, p_field text, p_from timestamptz, p_to timestamptz)\n"
    "RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  IF p_to IS NOT NULL AND p_to <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;\n"
    "  IF p_field IS NULL THEN\n"
    "    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity\n"
    "      AND transaction_time >= coalesce(p_from, now()) AND transaction_time < coalesce(p_to, now())\n"
    "      ORDER BY transaction_time, id;\n"
    "  ELSE\n"
    "    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field\n"
    "      AND transaction_time >= coalesce(p_from, now()) AND transaction_time < coalesce(p_to, now())\n"
    "      ORDER BY transaction_time, id;\n"
    "  END IF;\n"
    "END $fn$;\n"
    /* The library's append: one call appends a whole batch, all or nothing.
     * p_tt is NULL except for the opt-in history import. */
    "CREATE FUNCTION @S@.pl_append(p_entity text[], p_field text[], p_new jsonb[], p_old jsonb[],\n"
    "    p_vfrom timestamptz[], p_vto timestamptz[], p_source text[], p_reason text[], p_meta jsonb[],\n"
    "    p_key text[], p_tt timestamptz[])\n"
    "RETURNS TABLE (ord bigint, rec_id bigint, rec_tt timestamptz, cache_epoch bigint, appended boolean)\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "DECLARE\n"
    "  v_import boolean := p_tt IS NOT NULL;\n"
    "  v_dup bigint[] := '{}';\n"
    "  v_bad record;\n"
    "BEGIN\n"
    "  PERFORM set_config('provledger.internal', 'on', true);\n"
    /* Partitions first, before any entity lock is held. */
    "  IF clock_timestamp() + interval '1 day' >= (SELECT partitions_until FROM @S@.ledger_meta WHERE id = 1) THEN\n"
    "    PERFORM @S@.pl_ensure_partitions(clock_timestamp(), 4);\n"
    "  END IF;\n"
    "  IF v_import THEN\n"
    "    PERFORM @S@.pl_ensure_partition(m) FROM (SELECT DISTINCT date_trunc('month', t, 'UTC') AS m\n"
    "                                              FROM unnest(p_tt) t WHERE t IS NOT NULL) s;\n"
    "  END IF;\n"
    /* Settle locks before any time is taken (see pl_settle), then the
     * existing heads, both in key order: writers of one entity queue here,
     * and batches cannot deadlock on each other. */
    "  IF NOT v_import THEN\n"
    "    PERFORM pg_advisory_xact_lock(hashtext('@s@.settle'), b)\n"
    "       FROM (SELECT DISTINCT (hashtextextended(e, 0) & 1023)::int4 AS b FROM unnest(p_entity) e ORDER BY 1) s;\n"
    "  END IF;\n"
    "  PERFORM 1 FROM @S@.entity_head WHERE entity_id = ANY (p_entity) ORDER BY entity_id FOR NO KEY UPDATE;\n"
    "  IF EXISTS (SELECT 1 FROM unnest(p_key) k WHERE k IS NOT NULL) THEN\n"
    "    PERFORM pg_advisory_xact_lock(hashtextextended(k, 1))\n"
    "       FROM (SELECT DISTINCT k FROM unnest(p_key) k WHERE k IS NOT NULL ORDER BY 1) s;\n"
    "    SELECT u.idem_key INTO v_bad\n"
    "      FROM unnest(p_entity, p_field, p_new, p_old, p_vfrom, p_vto, p_source, p_reason, p_meta, p_key, p_tt)\n"
    "           AS u(entity_id, field_name, new_value, old_value, vfrom, vto, source_type, change_reason,\n"
    "                metadata, idem_key, tt_in)\n"
    "      JOIN @S@.provenance_idempotency i ON i.idempotency_key = u.idem_key\n"
    "     WHERE i.content_hash <> @S@.pl_change_hash(u.entity_id, u.field_name, u.new_value, u.old_value,\n"
    "             u.vfrom, u.vto, u.source_type, u.change_reason, u.metadata, u.tt_in)\n"
    "     LIMIT 1;\n"
    "    IF FOUND THEN\n"
    "      RAISE EXCEPTION USING ERRCODE = 'PLC01',\n"
    "        MESSAGE = format('idempotency key %s was already used for a different change', v_bad.idem_key);\n"
    "    END IF;\n",
    "    SELECT coalesce(array_agg(u.ord), '{}') INTO v_dup\n"
    "      FROM unnest(p_key) WITH ORDINALITY AS u(idem_key, ord)\n"
    "      JOIN @S@.provenance_idempotency i ON i.idempotency_key = u.idem_key;\n"
    "    RETURN QUERY SELECT u.ord, i.id, i.transaction_time, (SELECT s.epoch FROM @S@.cache_state s WHERE s.id = 1), false\n"
    "      FROM unnest(p_key) WITH ORDINALITY AS u(idem_key, ord)\n"
    "      JOIN @S@.provenance_idempotency i ON i.idempotency_key = u.idem_key;\n"
    "  END IF;\n"
    "  IF v_import THEN\n"
    "    SELECT x.entity_id, x.tt_in INTO v_bad\n"
    "      FROM (SELECT u.entity_id, u.tt_in,\n"
    "                   lag(u.tt_in) OVER (PARTITION BY u.entity_id ORDER BY u.ord) AS prev\n"
    "              FROM unnest(p_entity, p_tt) WITH ORDINALITY AS u(entity_id, tt_in, ord)\n"
    "             WHERE u.ord <> ALL (v_dup)) x\n"
    "      LEFT JOIN @S@.entity_head h ON h.entity_id = x.entity_id\n"
    "     WHERE x.tt_in IS NULL OR x.tt_in > clock_timestamp() OR x.tt_in <= x.prev OR x.tt_in <= h.last_tt\n"
    "     LIMIT 1;\n"
    "    IF FOUND THEN\n"
    "      RAISE EXCEPTION USING ERRCODE = 'PLC02', MESSAGE = format(\n"
    "        'entity %s: imported transaction_time %s is not after the entity''s previous one, or is in the future',\n"
    "        v_bad.entity_id, v_bad.tt_in);\n"
    "    END IF;\n"
    "  END IF;\n"
    "  RETURN QUERY\n"
    "  WITH input AS MATERIALIZED (\n"
    "    SELECT u.*, nextval('@S@.provenance_ledger_id_seq') AS new_id,\n"
    "           row_number() OVER (PARTITION BY u.entity_id ORDER BY u.ord) AS rank,\n"
    "           count(*) OVER (PARTITION BY u.entity_id) AS n\n"
    "      FROM unnest(p_entity, p_field, p_new, p_old, p_vfrom, p_vto, p_source, p_reason, p_meta, p_key, p_tt)\n"
    "           WITH ORDINALITY AS u(entity_id, field_name, new_value, old_value, vfrom, vto, source_type,\n"
    "                                change_reason, metadata, idem_key, tt_in, ord)\n"
    "     WHERE u.ord <> ALL (v_dup)\n"
    "  ), per_entity AS (\n"
    "    SELECT i.entity_id, count(*) AS n, max(i.tt_in) AS max_tt FROM input i GROUP BY i.entity_id\n"
    "  ), heads AS (\n"
    "    INSERT INTO @S@.entity_head AS h (entity_id, last_tt, record_count)\n"
    "    SELECT p.entity_id,\n"
    "           CASE WHEN v_import THEN p.max_tt\n"
    "                ELSE clock_timestamp() + (p.n - 1) * interval '1 microsecond' END,\n"
    "           p.n\n"
    "      FROM per_entity p ORDER BY p.entity_id\n"
    "    ON CONFLICT (entity_id) DO UPDATE SET\n"
    "      last_tt = CASE WHEN v_import THEN EXCLUDED.last_tt\n"
    "                     ELSE greatest(clock_timestamp(), h.last_tt + interval '1 microsecond')\n"
    "                          + (EXCLUDED.record_count - 1) * interval '1 microsecond' END,\n"
    "      record_count = h.record_count + EXCLUDED.record_count\n"
    "    RETURNING h.entity_id, h.last_tt\n"
    "  ), rows AS (\n"
    "    SELECT i.*, CASE WHEN v_import THEN i.tt_in\n"
    "                     ELSE hd.last_tt - (i.n - i.rank) * interval '1 microsecond' END AS tt\n"
    "      FROM input i JOIN heads hd ON hd.entity_id = i.entity_id\n"
    "  ), ins AS (\n"
    "    INSERT INTO @S@.provenance_ledger (id, entity_id, field_name, old_value, new_value, transaction_time,\n"
    "        valid_time_start, valid_time_end, source_type, change_reason, metadata, idempotency_key)\n"
    "    SELECT r.new_id, r.entity_id, r.field_name, r.old_value, r.new_value, r.tt, coalesce(r.vfrom, r.tt),\n"
    "           CASE WHEN coalesce(r.vto, 'infinity') > coalesce(r.vfrom, r.tt) THEN coalesce(r.vto, 'infinity')\n"
    "                ELSE @S@.pl_invalid(format('changes[%s].valid_to: must be after valid_from, which defaults '\n"
    "                     'to the transaction time %s', r.ord - 1, r.tt)) END,\n",
    "           r.source_type, r.change_reason, coalesce(r.metadata, '{}'), r.idem_key\n"
    "      FROM rows r\n"
    "    RETURNING 1\n"
    "  ), idem AS (\n"
    "    INSERT INTO @S@.provenance_idempotency (idempotency_key, id, transaction_time, content_hash)\n"
    "    SELECT r.idem_key, r.new_id, r.tt,\n"
    "           @S@.pl_change_hash(r.entity_id, r.field_name, r.new_value, r.old_value, r.vfrom, r.vto,\n"
    "                              r.source_type, r.change_reason, r.metadata, r.tt_in)\n"
    "      FROM rows r WHERE r.idem_key IS NOT NULL\n"
    "    RETURNING 1\n"
    "  )\n"
    "  SELECT r.ord, r.new_id, r.tt, (SELECT s.epoch FROM @S@.cache_state s WHERE s.id = 1), true FROM rows r;\n"
    "END $fn$;\n"
    /* The cache's shared state (see cache.c for the protocol). */
    "CREATE FUNCTION @S@.pl_cache_lease(p_lease_ms integer)\n"
    "RETURNS TABLE (ledger_id text, epoch bigint, redis_run_id text, disabled integer, server_now timestamptz)\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "BEGIN\n"
    "  IF (SELECT s.lease_ms FROM @S@.cache_state s WHERE s.id = 1) < p_lease_ms THEN\n"
    "    PERFORM set_config('provledger.internal', 'on', true);\n"
    "    UPDATE @S@.cache_state s SET lease_ms = p_lease_ms WHERE s.id = 1 AND s.lease_ms < p_lease_ms;\n"
    "  END IF;\n"
    "  RETURN QUERY SELECT s.ledger_id, s.epoch, coalesce(s.redis_run_id, ''),\n"
    "    (s.disabled_until > now())::int4, now() FROM @S@.cache_state s WHERE s.id = 1;\n"
    "END $fn$;\n"
    "CREATE FUNCTION @S@.pl_cache_disable(p_ms integer)\n"
    "RETURNS TABLE (epoch bigint, disabled_for_us bigint, disabled_until timestamptz, lease_ms integer)\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "BEGIN\n"
    "  PERFORM set_config('provledger.internal', 'on', true);\n"
    "  RETURN QUERY\n"
    "  UPDATE @S@.cache_state s SET\n"
    "    epoch = CASE WHEN s.disabled_until > now() THEN s.epoch ELSE s.epoch + 1 END,\n"
    "    disabled_since = CASE WHEN s.disabled_until > now() THEN s.disabled_since ELSE now() END,\n"
    "    disabled_until = greatest(s.disabled_until, now() + p_ms * interval '1 millisecond')\n"
    "  WHERE s.id = 1\n"
    "  RETURNING s.epoch, (extract(epoch FROM now() - s.disabled_since) * 1000000)::bigint, s.disabled_until,\n"
    "            s.lease_ms;\n"
    "END $fn$;\n"
    "CREATE FUNCTION @S@.pl_cache_bind(p_run_id text) RETURNS bigint\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "BEGIN\n"
    "  PERFORM set_config('provledger.internal', 'on', true);\n"
    "  UPDATE @S@.cache_state SET epoch = epoch + 1, redis_run_id = p_run_id\n"
    "   WHERE id = 1 AND redis_run_id IS DISTINCT FROM p_run_id;\n"
    "  RETURN (SELECT epoch FROM @S@.cache_state WHERE id = 1);\n"
    "END $fn$;\n"
    /* Functions that run with the owner's rights are for roles the owner
     * grants them to (README: "Roles and grants"), not for PUBLIC. */
    "REVOKE EXECUTE ON FUNCTION\n"
    "  @S@.pl_append(text[], text[], jsonb[], jsonb[], timestamptz[], timestamptz[], text[], text[], jsonb[],\n"
    "                text[], timestamptz[]),\n"
    "  @S@.pl_cache_lease(integer), @S@.pl_cache_disable(integer), @S@.pl_cache_bind(text),\n"
    "  @S@.pl_ensure_partition(timestamptz), @S@.pl_ensure_partitions(timestamptz, integer),\n"
    "  @S@.pl_order_external(bigint[], timestamptz[]), @S@.pl_ledger_after_insert()\n"
    "FROM PUBLIC;\n",
    NULL,
};

/* Migration 3: the cache's MAC key and its recovery after Redis lost data. */
static const char *const migration_3[] = {
    /* The key that authenticates every cached answer. It never goes to
     * Redis; only roles that may run pl_cache_secret() read it. */
    "CREATE TABLE @S@.cache_secret (\n"
    "  id      integer PRIMARY KEY CHECK (id = 1),\n"
    "  mac_key bytea NOT NULL CHECK (length(mac_key) = 32)\n"
    ");\n"
    /* gen_random_uuid() draws from pg_strong_random(): 2 x 122 random bits. */
    "INSERT INTO @S@.cache_secret VALUES (1, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text,\n"
    "  '-', ''), 'hex'));\n"
    "REVOKE ALL ON @S@.cache_secret FROM PUBLIC;\n"
    "CREATE TRIGGER cache_secret_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.cache_secret\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();\n"
    "CREATE FUNCTION @S@.pl_cache_secret() RETURNS bytea\n"
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "  SELECT s.mac_key FROM @S@.cache_secret s WHERE s.id = 1\n"
    "$fn$;\n"
    /* Per Redis database and key prefix, the epoch whose marker key some
     * process set there (confirmed: the SET succeeded). A marker missing
     * after it was confirmed means Redis lost the epoch's data. */
    "CREATE TABLE @S@.cache_marks (\n"
    "  binding   text COLLATE \"C\" PRIMARY KEY,\n"
    "  epoch     bigint NOT NULL,\n"
    "  confirmed boolean NOT NULL\n"
    ");\n"
    "CREATE TRIGGER cache_marks_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON @S@.cache_marks\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();\n"
    /* A process found Redis in a state it cannot trust: another run_id, or
     * the epoch's marker missing under p_binding. p_action 0 asks: returns 1
     * when the caller should set the marker (never confirmed), 2 when it
     * was confirmed (look again: a marker missing now means data was lost),
     * else 0 (nothing to do; after another run_id, the epoch was moved).
     * p_action 1 records that the caller set it. p_action 2 moves the epoch
     * if its marker is still the confirmed one. Moving means a new epoch
     * that no process uses until every write intent placed before has run
     * out (p_window_ms). */
    "CREATE FUNCTION @S@.pl_cache_recover(p_run_id text, p_epoch bigint, p_window_ms integer,\n"
    "                                     p_binding text, p_action integer) RETURNS integer\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "DECLARE\n"
    "  s @S@.cache_state;\n"
    "  m @S@.cache_marks;\n"
    "BEGIN\n"
    "  PERFORM set_config('provledger.internal', 'on', true);\n"
    "  SELECT * INTO s FROM @S@.cache_state c WHERE c.id = 1 FOR UPDATE;\n"
    "  SELECT * INTO m FROM @S@.cache_marks k WHERE k.binding = p_binding;\n"
    "  IF p_action = 1 THEN\n"
    "    UPDATE @S@.cache_marks k SET confirmed = true WHERE k.binding = p_binding AND k.epoch = p_epoch;\n"
    "    RETURN 1;\n"
    "  END IF;\n"
    /* Never bound: nobody can have placed an intent in it yet. */
    "  IF s.redis_run_id IS NULL THEN\n"
    "    UPDATE @S@.cache_state c SET epoch = c.epoch + 1, redis_run_id = p_run_id WHERE c.id = 1;\n"
    "    RETURN 0;\n"
    "  END IF;\n"
    "  IF s.redis_run_id IS DISTINCT FROM p_run_id OR\n"
    "     (p_action = 2 AND s.epoch = p_epoch AND m.epoch = p_epoch AND m.confirmed) THEN\n"
    "    UPDATE @S@.cache_state c SET epoch = c.epoch + 1, redis_run_id = p_run_id,\n"
    "      disabled_since = CASE WHEN c.disabled_until > now() THEN c.disabled_since ELSE now() END,\n"
    "      disabled_until = greatest(c.disabled_until, now() + p_window_ms * interval '1 millisecond')\n"
    "     WHERE c.id = 1;\n"
    "    RETURN 0;\n"
    "  END IF;\n"
    "  IF p_action = 0 AND s.epoch = p_epoch AND s.disabled_until <= now() THEN\n"
    "    IF m.epoch = p_epoch AND m.confirmed THEN\n"
    "      RETURN 2;\n"
    "    END IF;\n"
    "    INSERT INTO @S@.cache_marks AS k VALUES (p_binding, p_epoch, false)\n"
    "      ON CONFLICT (binding) DO UPDATE SET epoch = EXCLUDED.epoch, confirmed = false\n"
    "      WHERE k.epoch <> EXCLUDED.epoch;\n"
    "    RETURN 1;\n"
    "  END IF;\n"
    "  RETURN 0;\n"
    "END $fn$;\n"
    "REVOKE EXECUTE ON FUNCTION @S@.pl_cache_secret(), @S@.pl_cache_recover(text, bigint, integer, text, integer)\n"
    "  FROM PUBLIC;\n",
    NULL,
};

extern const char *const pl_migration_2[];

const pl_migration pl_migrations[] = {
    {"ledger, latest state, entity heads, idempotency, cache state", migration_1},
    {"materialized views, refresh log, partition archival, analytics indexes", pl_migration_2},
    {"cache MAC key, cache epoch markers", migration_3},
};
const size_t pl_migration_count = sizeof pl_migrations / sizeof pl_migrations[0];

/* ------------------------------------------------------------------------ */
/* Statements                                                                */
/* ------------------------------------------------------------------------ */

#define COLS PL_RECORD_COLUMNS
const pl_stmt_def pl_stmt_defs[PL_STMT_COUNT] = {
    [PL_STMT_APPEND] = {"pl_append",
        "SELECT ord, rec_id, rec_tt, cache_epoch, appended FROM @S@.pl_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        11, {1009, 1009, 3807, 3807, 1185, 1185, 1009, 1009, 3807, 1009, 1185}},
    /* The answer, and the next instant it can change: its own end, or the
     * start of a later-starting candidate (both found by index, so a hot
     * field with many recent candidates stays one short scan). */
    [PL_STMT_CURRENT] = {"pl_current_cached",
        "SELECT c.id, c.entity_id, c.field_name, c.new_value, c.old_value, c.transaction_time, "
        "c.valid_time_start, c.valid_time_end, c.source_type, c.change_reason, c.metadata, "
        "least(c.valid_time_end, (SELECT min(p.valid_time_start) FROM @S@.provenance_current p "
        "WHERE p.entity_id = $1 AND p.field_name = $2 AND p.valid_time_start > now())) "
        "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT * FROM @S@.provenance_current "
        "WHERE entity_id = $1 AND field_name = $2 AND valid_time_start <= now() AND valid_time_end > now() "
        "ORDER BY transaction_time DESC, id DESC LIMIT 1) c ON true",
        2, {T, T}},
    /* The same answer without its boundary: for reads that fill no cache. */
    [PL_STMT_CURRENT_PLAIN] = {"pl_current",
        "SELECT c.id, c.entity_id, c.field_name, c.new_value, c.old_value, c.transaction_time, "
        "c.valid_time_start, c.valid_time_end, c.source_type, c.change_reason, c.metadata "
        "FROM @S@.provenance_current c WHERE c.entity_id = $1 AND c.field_name = $2 "
        "AND c.valid_time_start <= now() AND c.valid_time_end > now() "
        "ORDER BY c.transaction_time DESC, c.id DESC LIMIT 1",
        2, {T, T}},
    [PL_STMT_SNAPSHOT_CURRENT] = {"pl_snapshot_current",
        "WITH a AS (SELECT DISTINCT ON (field_name) * FROM @S@.provenance_current "
        "WHERE entity_id = $1 AND valid_time_start <= now() AND valid_time_end > now() "
        "ORDER BY field_name, transaction_time DESC, id DESC) "
        "SELECT a.id, a.entity_id, a.field_name, a.new_value, a.old_value, a.transaction_time, "
        "a.valid_time_start, a.valid_time_end, a.source_type, a.change_reason, a.metadata, "
        "least((SELECT min(valid_time_end) FROM a), (SELECT min(p.valid_time_start) "
        "FROM @S@.provenance_current p WHERE p.entity_id = $1 AND p.valid_time_start > now())) "
        "FROM (SELECT 1) AS one LEFT JOIN a ON true ORDER BY a.field_name",
        1, {T}},
    [PL_STMT_ASOF_TV] = {"pl_asof_tv",
        "SELECT " COLS " FROM @S@.pl_read_asof($1, $2, $3, $4, false)", 4, {T, T, TS, TS}},
    [PL_STMT_ASOF_T] = {"pl_asof_t",
        "SELECT " COLS " FROM @S@.pl_read_asof($1, $2, $3, NULL, true)", 3, {T, T, TS}},
    [PL_STMT_SNAPSHOT_TV] = {"pl_snapshot_tv",
        "SELECT " COLS " FROM @S@.pl_read_snapshot($1, $2, $3, false)", 3, {T, TS, TS}},
    [PL_STMT_SNAPSHOT_T] = {"pl_snapshot_t",
        "SELECT " COLS " FROM @S@.pl_read_snapshot($1, $2, NULL, true)", 2, {T, TS}},
    [PL_STMT_RANGE_FIELD] = {"pl_range_field",
        "SELECT " COLS " FROM @S@.pl_read_range($1, $2, $3, $4)", 4, {T, T, TS, TS}},
    [PL_STMT_RANGE_ALL] = {"pl_range_all",
        "SELECT " COLS " FROM @S@.pl_read_range($1, NULL, $2, $3)", 3, {T, TS, TS}},
    [PL_STMT_HISTORY_FIELD] = {"pl_history_field",
        "SELECT " COLS " FROM @S@.provenance_ledger WHERE entity_id = $1 AND field_name = $2 "
        "ORDER BY transaction_time, id",
        2, {T, T}},
    [PL_STMT_HISTORY_ALL] = {"pl_history_all",
        "SELECT " COLS " FROM @S@.provenance_ledger WHERE entity_id = $1 ORDER BY transaction_time, id",
        1, {T}},
    [PL_STMT_CACHE_LEASE] = {"pl_cache_lease",
        "SELECT epoch, redis_run_id, disabled, server_now, ledger_id FROM @S@.pl_cache_lease($1::int4)",
        1, {PL_OID_INT8}},
    [PL_STMT_CACHE_DISABLE] = {"pl_cache_disable",
        "SELECT epoch, disabled_for_us, disabled_until, now(), lease_ms FROM @S@.pl_cache_disable($1::int4)",
        1, {PL_OID_INT8}},
    [PL_STMT_CACHE_SECRET] = {"pl_cache_secret", "SELECT @S@.pl_cache_secret()", 0, {0}},
    [PL_STMT_CACHE_RECOVER] = {"pl_cache_recover", "SELECT @S@.pl_cache_recover($1, $2, $3::int4, $4, $5::int4)", 5,
        {T, PL_OID_INT8, PL_OID_INT8, T, PL_OID_INT8}},
    [PL_STMT_REPLICA_LAG] = {"pl_replica_lag",
        "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 "
        "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
        "ELSE coalesce((extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000000)::int8, 0) END",
        0, {0}},
};

int pl_schema_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63 || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

char *pl_sql_expand(const char *sql, const char *schema)
{
    size_t slen = strlen(schema), n = 0;
    for (const char *p = sql; *p; p++)
        n += (p[0] == '@' && (p[1] == 'S' || p[1] == 's') && p[2] == '@') ? slen + 2 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = sql; *p;) {
        if (p[0] == '@' && (p[1] == 'S' || p[1] == 's') && p[2] == '@') {
            int quoted = p[1] == 'S';
            if (quoted)
                *o++ = '"';
            memcpy(o, schema, slen);
            o += slen;
            if (quoted)
                *o++ = '"';
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}
