-- description: appends maintain two indexes fewer and lock each entity head once
-- Migration 10 (issue 13). Measured on the 1M-record bench dataset, one
-- call of 1,000 changes to hot entities (pgbench running pl_append,
-- EXPLAIN ANALYZE of each statement inside it through auto_explain, and
-- one piece removed at a time; bench/RESULTS.md "Issue 13" has the table):
-- every random-position B-tree a row enters costs it a leaf page found and
-- dirtied, 5-10 microseconds a row. Two of them answered no query:
--   idx_prov_vt: every valid-time read names one entity and field, and
--     idx_prov_tt holds that field's versions in transaction-time order
--     with valid_time_start and valid_time_end included, so the same scan
--     finds them and filters on the included columns.
--   provenance_current_starts: the latest-state table holds one or two
--     rows a field, and its primary key (entity_id, field_name, ...)
--     already leads with what every lookup of it names.
DROP INDEX @S@.idx_prov_vt;
DROP INDEX @S@.provenance_current_starts;
-- A plain append (no client-given transaction times) no longer locks the
-- entity heads in a pass of its own before the upsert of those same heads:
-- the upsert visits them in the same key order, so it takes the same row
-- locks in the same order, and each head is found once instead of twice.
-- An import still locks them first: it compares its times with the
-- heads' before it writes. It finds each head by its key: migration 4's
-- `entity_id = ANY (p_entity)` was planned, as a generic plan, as a scan of
-- the whole head table (61,300 heads read for a call naming 50 entities).
CREATE OR REPLACE FUNCTION @S@.pl_append(p_entity text[], p_field text[], p_new jsonb[], p_old jsonb[],
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
-- Settle locks before any time is taken (see pl_settle), then the heads,
-- both in key order: writers of one entity queue on its head, and batches
-- cannot deadlock on each other. A plain append locks the heads in the
-- upsert below (ordered by entity_id COLLATE "C", the heads' key order);
-- an import here, before it reads their times.
  IF NOT v_import THEN
    PERFORM pg_advisory_xact_lock(hashtext('@s@.settle'), b)
       FROM (SELECT DISTINCT (hashtextextended(e, 0) & 1023)::int4 AS b FROM unnest(p_entity) e ORDER BY 1) s;
  ELSE
    PERFORM 1 FROM (SELECT DISTINCT e COLLATE "C" AS e FROM unnest(p_entity) e ORDER BY 1) u,
                   LATERAL (SELECT 1 FROM @S@.entity_head h WHERE h.entity_id = u.e FOR NO KEY UPDATE) x;
  END IF;
  IF EXISTS (SELECT 1 FROM unnest(p_key) k WHERE k IS NOT NULL) THEN
    PERFORM pg_advisory_xact_lock(hashtextextended(k, 1))
       FROM (SELECT DISTINCT k FROM unnest(p_key) k WHERE k IS NOT NULL ORDER BY 1) s;
    SELECT u.idem_key INTO v_bad
      FROM unnest(p_entity, p_field, p_new, p_old, p_vfrom, p_vto, p_source, p_reason, p_meta, p_key, p_tt)
           AS u(entity_id, field_name, new_value, old_value, vfrom, vto, source_type, change_reason,
                metadata, idem_key, tt_in)
      JOIN @S@.provenance_idempotency i ON i.idempotency_key = u.idem_key
     WHERE i.content_hash <> @S@.pl_change_hash(u.entity_id, u.field_name, u.new_value, u.old_value,
             u.vfrom, u.vto, u.source_type, u.change_reason, coalesce(u.metadata, '{}'), u.tt_in)
       AND i.content_hash <> @S@.pl_change_hash(u.entity_id, u.field_name, u.new_value, u.old_value,
             u.vfrom, u.vto, u.source_type, u.change_reason, nullif(coalesce(u.metadata, '{}'), '{}'), u.tt_in)
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
    SELECT u.ord, u.t, d.name INTO v_bad
      FROM unnest(p_tt) WITH ORDINALITY AS u(t, ord)
      JOIN @S@.detached_partitions d ON u.t >= d.range_from AND u.t < d.range_to
     WHERE u.ord <> ALL (v_dup)
     ORDER BY u.ord
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
        'transaction_times[%s]: %s falls in the month of partition %s, which is detached (archived): '
        'attach it first with pl_partition_attach() (provledger partitions --attach %s)',
        v_bad.ord - 1, @S@.pl_rfc3339(v_bad.t), v_bad.name, v_bad.name);
    END IF;
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
        v_bad.entity_id, @S@.pl_rfc3339(v_bad.tt_in));
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
      FROM per_entity p ORDER BY p.entity_id COLLATE "C"
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
                     'to the transaction time %s', r.ord - 1, @S@.pl_rfc3339(r.tt))) END,
           r.source_type, r.change_reason, coalesce(r.metadata, '{}'), r.idem_key
      FROM rows r
    RETURNING 1
  ), idem AS (
    INSERT INTO @S@.provenance_idempotency (idempotency_key, id, transaction_time, content_hash)
    SELECT r.idem_key, r.new_id, r.tt,
           @S@.pl_change_hash(r.entity_id, r.field_name, r.new_value, r.old_value, r.vfrom, r.vto,
                              r.source_type, r.change_reason, coalesce(r.metadata, '{}'), r.tt_in)
      FROM rows r WHERE r.idem_key IS NOT NULL
    RETURNING 1
  )
  SELECT r.ord, r.new_id, r.tt, (SELECT s.epoch FROM @S@.cache_state s WHERE s.id = 1), true FROM rows r;
END $fn$;
