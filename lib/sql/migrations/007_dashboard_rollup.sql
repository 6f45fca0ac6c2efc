-- description: exact dashboards from a rollup of committed records up to a horizon
-- Migration 7 (issue 16). README "Dashboards" tells the design;
-- statements pl_dashboard_rollup and pl_corrections_rollup read it,
-- pl_rollup_advance moves it.
--
-- The rollup holds, per partition and UTC day, the aggregates of every
-- record whose transaction ended below the horizon (an xid8, as the
-- sealer's): records and the first and last transaction time (rollup_day),
-- changes and distinct entities per source type (rollup_changes), and
-- corrections per entity type and field (rollup_corrections). A dashboard
-- adds the records at or above the horizon (the tail) from the base table,
-- in the same statement, so the answer is exact whatever the rollup's lag;
-- the lag only decides how many records the tail reads. A distinct entity
-- of the tail counts once more for its day and source only when no record
-- below the horizon has it: an index probe of idx_prov_entity_tt per tail
-- entity, so distinct counts stay exact.
--
-- Partitions: the rows of a partition are in the rollup once it is
-- registered (rollup_partition). Rollup rows count only while their
-- partition is attached; the next step forgets a detached one. A
-- partition attached but not registered (attached, re-attached or
-- created since the last step) makes the dashboards read the base table
-- until the next step rolls up all of its rows.
CREATE TABLE @S@.rollup_state (
  id          integer PRIMARY KEY CHECK (id = 1),
  horizon     xid8,
  advanced_at timestamptz,
  records     bigint NOT NULL DEFAULT 0
);
INSERT INTO @S@.rollup_state VALUES (1, NULL, NULL, 0);
CREATE TABLE @S@.rollup_partition (
  part          oid PRIMARY KEY,
  name          text NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE @S@.rollup_day (
  part    oid NOT NULL,
  day     timestamptz NOT NULL,
  records bigint NOT NULL,
  min_tt  timestamptz NOT NULL,
  max_tt  timestamptz NOT NULL,
  PRIMARY KEY (day, part)
);
CREATE TABLE @S@.rollup_changes (
  part        oid NOT NULL,
  day         timestamptz NOT NULL,
  source_type text COLLATE "C" NOT NULL,
  changes     bigint NOT NULL,
  entities    bigint NOT NULL,
  PRIMARY KEY (day, source_type, part)
);
CREATE TABLE @S@.rollup_corrections (
  part        oid NOT NULL,
  day         timestamptz NOT NULL,
  entity_type text COLLATE "C" NOT NULL,
  field_name  text COLLATE "C" NOT NULL,
  corrections bigint NOT NULL,
  PRIMARY KEY (day, entity_type, field_name, part)
);
CREATE TRIGGER rollup_state_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.rollup_state
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
CREATE TRIGGER rollup_partition_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON @S@.rollup_partition
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
CREATE TRIGGER rollup_day_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON @S@.rollup_day
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
CREATE TRIGGER rollup_changes_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON @S@.rollup_changes
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
CREATE TRIGGER rollup_corrections_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON @S@.rollup_corrections
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
-- Rolls up the records selected by p_where from p_from (one of the
-- ledger's tables) with $1 = the old horizon, $2 = the new one; p_seen is
-- true when records below $1 may share a day with them (a registered
-- partition), so that an entity is counted once per day and source.
CREATE FUNCTION @S@.pl_rollup_slice(p_from text, p_where text, p_seen boolean, p_old xid8, p_new xid8)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_n bigint;
BEGIN
  EXECUTE format($q$
    WITH b AS MATERIALIZED (
      SELECT p.tableoid AS part, date_trunc('day', p.transaction_time, 'UTC') AS day, p.entity_id,
             p.field_name, p.source_type, p.transaction_time,
             p.valid_time_start < p.transaction_time AS corr,
             coalesce(p.metadata->>'entity_type', substring(p.entity_id FROM '^[^_:]*')) COLLATE "C" AS entity_type
        FROM %s p WHERE %s),
    d AS (INSERT INTO @S@.rollup_day AS r (part, day, records, min_tt, max_tt)
          SELECT b.part, b.day, count(*), min(b.transaction_time), max(b.transaction_time)
            FROM b GROUP BY 1, 2
          ON CONFLICT (day, part) DO UPDATE SET records = r.records + EXCLUDED.records,
             min_tt = least(r.min_tt, EXCLUDED.min_tt), max_tt = greatest(r.max_tt, EXCLUDED.max_tt)),
    e AS (SELECT DISTINCT b.part, b.day, b.source_type, b.entity_id FROM b),
    c AS (INSERT INTO @S@.rollup_changes AS r (part, day, source_type, changes, entities)
          SELECT g.part, g.day, g.source_type, g.changes, coalesce(n.entities, 0)
            FROM (SELECT b.part, b.day, b.source_type, count(*) AS changes FROM b GROUP BY 1, 2, 3) g
            LEFT JOIN (SELECT e.part, e.day, e.source_type, count(*) AS entities FROM e
                        WHERE NOT (%L::boolean AND EXISTS (
                          SELECT 1 FROM @S@.provenance_ledger q
                           WHERE q.entity_id = e.entity_id AND q.transaction_time >= e.day
                             AND q.transaction_time < e.day + interval '24 hours'
                             AND q.source_type = e.source_type AND (q.xid < $1 OR q.xid IS NULL)))
                        GROUP BY 1, 2, 3) n USING (part, day, source_type)
          ON CONFLICT (day, source_type, part) DO UPDATE SET changes = r.changes + EXCLUDED.changes,
             entities = r.entities + EXCLUDED.entities),
    k AS (INSERT INTO @S@.rollup_corrections AS r (part, day, entity_type, field_name, corrections)
          SELECT b.part, b.day, b.entity_type, b.field_name, count(*) FROM b WHERE b.corr GROUP BY 1, 2, 3, 4
          ON CONFLICT (day, entity_type, field_name, part) DO UPDATE
             SET corrections = r.corrections + EXCLUDED.corrections)
    -- data-modifying parts of WITH run to completion whether read or not
    SELECT count(*) FROM b$q$, p_from, p_where, p_seen)
    INTO v_n USING p_old, p_new;
  RETURN v_n;
END $fn$;
-- The background step: rolls up every record of the transactions that
-- ended since the last step (below the oldest running one), and every
-- record of partitions attached since. Returns how many records it added.
-- One step at a time; readers and writers never wait for it.
CREATE FUNCTION @S@.pl_rollup_advance() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_old xid8;
  v_new xid8;
  v_n   bigint := 0;
  v_fresh oid[];
  v_part record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.rollup', 0));
  PERFORM set_config('provledger.internal', 'on', true);
  SELECT s.horizon INTO v_old FROM @S@.rollup_state s WHERE s.id = 1;
  v_new := pg_snapshot_xmin(pg_current_snapshot());
  -- A partition no longer attached (detached, or dropped) is forgotten
  -- with its rows: its records of the transactions this step covers are
  -- not in the ledger's scan, so once re-attached it is rolled up whole
  -- again, as a new one (and a dropped table's oid, reused, vouches for
  -- nothing).
  DELETE FROM @S@.rollup_partition r
   WHERE NOT EXISTS (SELECT 1 FROM pg_inherits i
                      WHERE i.inhparent = '@S@.provenance_ledger'::regclass AND i.inhrelid = r.part);
  DELETE FROM @S@.rollup_day r
   WHERE NOT EXISTS (SELECT 1 FROM @S@.rollup_partition g WHERE g.part = r.part);
  DELETE FROM @S@.rollup_changes r
   WHERE NOT EXISTS (SELECT 1 FROM @S@.rollup_partition g WHERE g.part = r.part);
  DELETE FROM @S@.rollup_corrections r
   WHERE NOT EXISTS (SELECT 1 FROM @S@.rollup_partition g WHERE g.part = r.part);
  v_fresh := ARRAY(SELECT i.inhrelid FROM pg_inherits i
                    WHERE i.inhparent = '@S@.provenance_ledger'::regclass
                      AND NOT EXISTS (SELECT 1 FROM @S@.rollup_partition r WHERE r.part = i.inhrelid));
  IF v_old IS NOT NULL THEN
    v_n := v_n + @S@.pl_rollup_slice('@S@.provenance_ledger',
      format('p.xid >= $1 AND p.xid < $2 AND p.tableoid <> ALL (%L::oid[])', v_fresh), true, v_old, v_new);
  END IF;
  -- A fresh partition has no rollup rows: any it had went with its
  -- registration above.
  FOR v_part IN SELECT c.oid, c.relname FROM pg_class c WHERE c.oid = ANY (v_fresh) LOOP
    v_n := v_n + @S@.pl_rollup_slice(v_part.oid::regclass::text,
      'p.xid < $2 OR p.xid IS NULL', false, v_old, v_new);
    INSERT INTO @S@.rollup_partition (part, name) VALUES (v_part.oid, v_part.relname);
  END LOOP;
  UPDATE @S@.rollup_state SET horizon = v_new, advanced_at = clock_timestamp(), records = records + v_n
   WHERE id = 1;
  RETURN v_n;
END $fn$;
-- Erasure empties a record's metadata, which the entity type of the
-- corrections dashboard reads: rolled-up corrections move to the type the
-- erased record now has. Waits for a running step, then sees its horizon.
CREATE FUNCTION @S@.pl_rollup_erased() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_h xid8;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.rollup', 0));
  PERFORM set_config('provledger.internal', 'on', true);
  SELECT s.horizon INTO v_h FROM @S@.rollup_state s WHERE s.id = 1;
  IF v_h IS NULL THEN
    RETURN NULL;
  END IF;
  WITH moved AS (
    SELECT p.tableoid AS part, date_trunc('day', o.transaction_time, 'UTC') AS day, o.field_name,
           coalesce(o.metadata->>'entity_type', substring(o.entity_id FROM '^[^_:]*')) COLLATE "C" AS was,
           coalesce(n.metadata->>'entity_type', substring(n.entity_id FROM '^[^_:]*')) COLLATE "C" AS now
      FROM old_rows o JOIN new_rows n ON n.id = o.id AND n.transaction_time = o.transaction_time
      JOIN @S@.provenance_ledger p ON p.id = o.id AND p.transaction_time = o.transaction_time
     WHERE o.valid_time_start < o.transaction_time AND (o.xid < v_h OR o.xid IS NULL)
       AND EXISTS (SELECT 1 FROM @S@.rollup_partition r WHERE r.part = p.tableoid)),
  delta AS (
    SELECT part, day, was AS entity_type, field_name, -count(*) AS n FROM moved WHERE was <> now GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT part, day, now, field_name, count(*) FROM moved WHERE was <> now GROUP BY 1, 2, 3, 4)
  INSERT INTO @S@.rollup_corrections AS r (part, day, entity_type, field_name, corrections)
  SELECT part, day, entity_type, field_name, sum(n) FROM delta GROUP BY 1, 2, 3, 4
  ON CONFLICT (day, entity_type, field_name, part) DO UPDATE SET corrections = r.corrections + EXCLUDED.corrections;
  DELETE FROM @S@.rollup_corrections r WHERE r.corrections = 0;
  RETURN NULL;
END $fn$;
CREATE TRIGGER provenance_rollup_erased AFTER UPDATE ON @S@.provenance_ledger
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_rollup_erased();
-- The exact dashboards' statements (pl_dashboard_rollup and
-- pl_corrections_rollup call them). Functions of their own for two
-- reasons. The tail must be found through the index on xid: read inside
-- the statement, or planned once for any window, the horizon is unknown to
-- the planner, which then reads the window's records through the index on
-- transaction time and filters them by xid (474,000 of them at 1M records:
-- 95 to 470 ms a call), so the horizon is read first and the query planned
-- for this call's window and horizon (EXECUTE). And JIT stays off: the
-- query's cost looked high, and JIT compilation took 0.2 s (1M records) to
-- 3 s (10M) of calls whose execution takes a few milliseconds.
-- The horizon the rollup answers for, or NULL when it cannot answer (never
-- advanced, or a partition attached that no step has registered yet).
CREATE FUNCTION @S@.pl_rollup_horizon() RETURNS xid8
LANGUAGE sql STABLE AS $fn$
  SELECT s.horizon FROM @S@.rollup_state s WHERE s.id = 1 AND s.horizon IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = '@S@.provenance_ledger'::regclass
  AND NOT EXISTS (SELECT 1 FROM @S@.rollup_partition r WHERE r.part = i.inhrelid))
$fn$;
-- The days the window [p_from, p_to) cuts: some of their rolled-up records
-- fall outside it, so those days are read from the base table. A plain
-- SQL function, inlined into the statements that call it.
CREATE FUNCTION @S@.pl_rollup_live_days(p_from timestamptz, p_to timestamptz) RETURNS SETOF timestamptz
LANGUAGE sql STABLE AS $fn$
  SELECT DISTINCT d.day FROM @S@.rollup_day d
  WHERE d.part IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                   WHERE i.inhparent = '@S@.provenance_ledger'::regclass)
  AND d.day > coalesce(p_from, '-infinity') - interval '24 hours'
  AND d.day < coalesce(p_to, 'infinity')
  AND (d.min_tt < coalesce(p_from, '-infinity') OR d.max_tt >= coalesce(p_to, 'infinity'))
$fn$;
CREATE FUNCTION @S@.pl_dashboard_exact(p_from timestamptz, p_to timestamptz, p_source text)
RETURNS TABLE (day bigint, source_type text, changes bigint, entities bigint, usable boolean, horizon bigint)
LANGUAGE plpgsql STABLE SET jit = off AS $fn$
DECLARE
  v_horizon xid8;
BEGIN
  v_horizon := @S@.pl_rollup_horizon();
  RETURN QUERY EXECUTE $q$
  WITH att AS (SELECT i.inhrelid AS part FROM pg_catalog.pg_inherits i
  WHERE i.inhparent = '@S@.provenance_ledger'::regclass),
  st AS (SELECT s.advanced_at FROM @S@.rollup_state s WHERE s.id = 1 AND $4 IS NOT NULL),
  live AS (SELECT l.day FROM @S@.pl_rollup_live_days($1, $2) l(day) WHERE $4 IS NOT NULL),
  tail AS (SELECT date_trunc('day', p.transaction_time, 'UTC') AS day, p.source_type, p.entity_id,
  NOT EXISTS (SELECT 1 FROM @S@.provenance_ledger q WHERE q.entity_id = p.entity_id
  AND q.transaction_time >= date_trunc('day', p.transaction_time, 'UTC')
  AND q.transaction_time < date_trunc('day', p.transaction_time, 'UTC') + interval '24 hours'
  AND q.source_type = p.source_type AND (q.xid < $4 OR q.xid IS NULL)) AS new_entity
  FROM @S@.provenance_ledger p
  WHERE p.xid >= $4
  AND p.transaction_time >= coalesce($1, '-infinity')
  AND p.transaction_time < coalesce($2, 'infinity')
  AND ($3 IS NULL OR p.source_type = $3)),
  agg AS (SELECT r.day, r.source_type, r.changes, r.entities FROM @S@.rollup_changes r
  WHERE EXISTS (SELECT 1 FROM st) AND r.part IN (SELECT att.part FROM att)
  AND r.day > coalesce($1, '-infinity') - interval '24 hours'
  AND r.day < coalesce($2, 'infinity')
  AND ($3 IS NULL OR r.source_type = $3) AND r.day NOT IN (SELECT live.day FROM live)
  UNION ALL
  SELECT t.day, t.source_type, count(*), count(DISTINCT t.entity_id) FILTER (WHERE t.new_entity) FROM tail t
  WHERE t.day NOT IN (SELECT live.day FROM live) GROUP BY 1, 2
  UNION ALL
  SELECT date_trunc('day', p.transaction_time, 'UTC'), p.source_type, count(*), count(DISTINCT p.entity_id)
  FROM @S@.provenance_ledger p JOIN live l
  ON p.transaction_time >= greatest(coalesce($1, '-infinity'), l.day)
  AND p.transaction_time < least(coalesce($2, 'infinity'), l.day + interval '24 hours')
  WHERE ($3 IS NULL OR p.source_type = $3) GROUP BY 1, 2)
  SELECT NULL::int8 AS day, NULL::text COLLATE "C" AS source_type, NULL::int8 AS changes, NULL::int8 AS entities,
  EXISTS (SELECT 1 FROM st) AS usable,
  (SELECT (extract(epoch FROM st.advanced_at) * 1000000)::int8 FROM st) AS horizon
  UNION ALL
  SELECT (extract(epoch FROM a.day) * 1000000)::int8, a.source_type, sum(a.changes)::int8,
  sum(a.entities)::int8, NULL, NULL FROM agg a GROUP BY a.day, a.source_type
  ORDER BY 5 NULLS LAST, 1, 2
  $q$ USING p_from, p_to, p_source, v_horizon;
END $fn$;
CREATE FUNCTION @S@.pl_corrections_exact(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (entity_type text, field_name text, corrections bigint, usable boolean, horizon bigint)
LANGUAGE plpgsql STABLE SET jit = off AS $fn$
DECLARE
  v_horizon xid8;
BEGIN
  v_horizon := @S@.pl_rollup_horizon();
  RETURN QUERY EXECUTE $q$
  WITH att AS (SELECT i.inhrelid AS part FROM pg_catalog.pg_inherits i
  WHERE i.inhparent = '@S@.provenance_ledger'::regclass),
  st AS (SELECT s.advanced_at FROM @S@.rollup_state s WHERE s.id = 1 AND $3 IS NOT NULL),
  live AS (SELECT l.day FROM @S@.pl_rollup_live_days($1, $2) l(day) WHERE $3 IS NOT NULL),
  agg AS (SELECT r.entity_type, r.field_name, r.corrections FROM @S@.rollup_corrections r
  WHERE EXISTS (SELECT 1 FROM st) AND r.part IN (SELECT att.part FROM att)
  AND r.day > coalesce($1, '-infinity') - interval '24 hours'
  AND r.day < coalesce($2, 'infinity') AND r.day NOT IN (SELECT live.day FROM live)
  UNION ALL
  SELECT coalesce(p.metadata->>'entity_type', substring(p.entity_id FROM '^[^_:]*')) COLLATE "C",
  p.field_name, count(*) FROM @S@.provenance_ledger p
  WHERE p.xid >= $3
  AND p.transaction_time >= coalesce($1, '-infinity')
  AND p.transaction_time < coalesce($2, 'infinity')
  AND p.valid_time_start < p.transaction_time
  AND date_trunc('day', p.transaction_time, 'UTC') NOT IN (SELECT live.day FROM live) GROUP BY 1, 2
  UNION ALL
  SELECT coalesce(p.metadata->>'entity_type', substring(p.entity_id FROM '^[^_:]*')) COLLATE "C",
  p.field_name, count(*) FROM @S@.provenance_ledger p JOIN live l
  ON p.transaction_time >= greatest(coalesce($1, '-infinity'), l.day)
  AND p.transaction_time < least(coalesce($2, 'infinity'), l.day + interval '24 hours')
  WHERE p.valid_time_start < p.transaction_time GROUP BY 1, 2)
  SELECT NULL::text COLLATE "C" AS entity_type, NULL::text COLLATE "C" AS field_name, NULL::int8 AS corrections,
  EXISTS (SELECT 1 FROM st) AS usable,
  (SELECT (extract(epoch FROM st.advanced_at) * 1000000)::int8 FROM st) AS horizon
  UNION ALL
  SELECT c.entity_type, c.field_name, c.corrections, NULL, NULL
  FROM (SELECT a.entity_type, a.field_name, sum(a.corrections)::int8 AS corrections FROM agg a
  GROUP BY 1, 2 HAVING sum(a.corrections) > 0) c
  ORDER BY 4 NULLS LAST, 3 DESC, 1, 2
  $q$ USING p_from, p_to, v_horizon;
END $fn$;
REVOKE EXECUTE ON FUNCTION @S@.pl_rollup_slice(text, text, boolean, xid8, xid8) FROM PUBLIC;
