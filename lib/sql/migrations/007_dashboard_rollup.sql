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
-- registered (rollup_partition). A detached partition's rows stay in the
-- rollup, under its oid, and count only while it is attached; a partition
-- attached but not registered (attached or created since the last
-- advance) makes the dashboards read the base table until the next
-- advance rolls up all of its rows.
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
  -- A registration whose table is gone (dropped) must not vouch for a
  -- new table that reuses its oid.
  DELETE FROM @S@.rollup_partition r
   WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.part AND c.relname = r.name);
  v_fresh := ARRAY(SELECT i.inhrelid FROM pg_inherits i
                    WHERE i.inhparent = '@S@.provenance_ledger'::regclass
                      AND NOT EXISTS (SELECT 1 FROM @S@.rollup_partition r WHERE r.part = i.inhrelid));
  IF v_old IS NOT NULL THEN
    v_n := v_n + @S@.pl_rollup_slice('@S@.provenance_ledger',
      format('p.xid >= $1 AND p.xid < $2 AND p.tableoid <> ALL (%L::oid[])', v_fresh), true, v_old, v_new);
  END IF;
  FOR v_part IN SELECT c.oid, c.relname FROM pg_class c WHERE c.oid = ANY (v_fresh) LOOP
    DELETE FROM @S@.rollup_day r WHERE r.part = v_part.oid;
    DELETE FROM @S@.rollup_changes r WHERE r.part = v_part.oid;
    DELETE FROM @S@.rollup_corrections r WHERE r.part = v_part.oid;
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
REVOKE EXECUTE ON FUNCTION @S@.pl_rollup_slice(text, text, boolean, xid8, xid8) FROM PUBLIC;
