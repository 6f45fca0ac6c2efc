-- description: transparency log (leaves, checkpoints, value keys), erasure
-- README "Tamper evidence" tells the design; lib/api/seal.c and
-- verify.c are its clients. The tree is computed and signed on the
-- client: the database only stores what an auditor recomputes.
--
-- Which transaction wrote each record: the sealer seals only records
-- of transactions that have ended (below the oldest running xid), so no
-- later commit can slip in before what it sealed. NULL for records
-- written before this migration (all committed: it locks the table).
ALTER TABLE @S@.provenance_ledger ADD COLUMN xid xid8;
ALTER TABLE @S@.provenance_ledger ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX provenance_ledger_xid ON @S@.provenance_ledger (xid);
-- Set by pl_erase_entity: the record's values are gone, its leaf stays.
ALTER TABLE @S@.provenance_ledger ADD COLUMN erased_at timestamptz;
ALTER TABLE @S@.provenance_current ADD COLUMN erased_at timestamptz;
-- Erasures are log entries too (leaf kind 2).
CREATE TABLE @S@.erasure (
  id         bigserial PRIMARY KEY,
  entity_id  text COLLATE "C" NOT NULL,
  erased_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  reason     text,
  records    bigint NOT NULL,
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX erasure_xid ON @S@.erasure (xid);
CREATE TRIGGER erasure_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.erasure
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_reject_change();
-- The leaves, by position. kind 1: item_id is a record id; kind 2: an
-- erasure id. nodes: the interior hashes this leaf completes at levels
-- 4, 8, 12, ... (one byte level, 32 bytes hash, each), which proofs read.
CREATE TABLE @S@.log_leaf (
  leaf_index bigint PRIMARY KEY CHECK (leaf_index >= 0),
  kind       smallint NOT NULL CHECK (kind IN (1, 2)),
  item_id    bigint NOT NULL,
  leaf_hash  bytea NOT NULL CHECK (length(leaf_hash) = 32),
  nodes      bytea
);
CREATE UNIQUE INDEX log_leaf_item ON @S@.log_leaf (kind, item_id);
CREATE TRIGGER log_leaf_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.log_leaf
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_reject_change();
-- Every signed checkpoint; frontier: the hashes of the perfect subtrees
-- of the tree's right edge, largest first, so the next seal goes on
-- without reading the tree (it checks them against the root first).
CREATE TABLE @S@.log_checkpoint (
  id         bigserial PRIMARY KEY,
  tree_size  bigint NOT NULL CHECK (tree_size >= 0),
  root_hash  bytea NOT NULL CHECK (length(root_hash) = 32),
  origin     text NOT NULL,
  note       text NOT NULL,
  sealed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  frontier   bytea NOT NULL
);
CREATE INDEX log_checkpoint_size ON @S@.log_checkpoint (tree_size, id);
CREATE TRIGGER log_checkpoint_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.log_checkpoint
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_reject_change();
-- The sealer's position: every transaction below it was sealed.
CREATE TABLE @S@.log_seal_state (
  id      integer PRIMARY KEY CHECK (id = 1),
  horizon xid8
);
INSERT INTO @S@.log_seal_state VALUES (1, NULL);
CREATE TRIGGER log_seal_state_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.log_seal_state
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
-- Per entity: the key of its value commitments (HMAC-SHA-256; NULL once
-- erased, until a new record needs one) and the newest transaction time
-- sealed (a later record at or before it is back-dated).
CREATE TABLE @S@.log_entity (
  entity_id text COLLATE "C" PRIMARY KEY,
  value_key bytea CHECK (length(value_key) = 32),
  sealed_tt timestamptz
);
REVOKE ALL ON @S@.log_entity FROM PUBLIC;
CREATE TRIGGER log_entity_guard BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.log_entity
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
-- Of an erased record, its four commitments (change reason, old value,
-- new value, metadata: 4 x 32 bytes), which its leaf was or will be
-- built from; without the key they confirm no guessed value.
CREATE TABLE @S@.log_erased (
  record_id   bigint PRIMARY KEY,
  commitments bytea NOT NULL CHECK (length(commitments) = 128)
);
CREATE TRIGGER log_erased_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON @S@.log_erased
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_reject_change();
-- The append-only guard lets exactly one change through: the values of
-- records pl_erase_entity erases (it runs as the owner and says so).
CREATE OR REPLACE FUNCTION @S@.pl_reject_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' AND coalesce(current_setting('provledger.erasing', true), '') = 'on'
     AND @S@.pl_is_internal() THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'PLA01',
    MESSAGE = format('%s on %I.%I is not allowed: the provenance ledger is append-only',
                     TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);
END $fn$;
-- One sealer (or eraser) at a time; taken before anything is read.
CREATE FUNCTION @S@.pl_seal_lock() RETURNS xid8
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.seal', 0));
  RETURN (SELECT s.horizon FROM @S@.log_seal_state s WHERE s.id = 1);
END $fn$;
-- Keys of the given entities, creating the missing ones from the
-- client's random candidates; and what was sealed of each.
CREATE FUNCTION @S@.pl_seal_keys(p_entity text[], p_key bytea[])
RETURNS TABLE (entity_id text, value_key bytea, sealed_tt timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  INSERT INTO @S@.log_entity AS e (entity_id, value_key, sealed_tt)
  SELECT u.entity_id, u.k, NULL FROM unnest(p_entity, p_key) AS u(entity_id, k)
  ON CONFLICT ON CONSTRAINT log_entity_pkey DO UPDATE SET value_key = EXCLUDED.value_key
   WHERE e.value_key IS NULL;
  RETURN QUERY SELECT e.entity_id::text, e.value_key, e.sealed_tt FROM @S@.log_entity e
    WHERE e.entity_id = ANY (p_entity);
END $fn$;
-- Appends leaves and moves each entity's sealed time forward.
CREATE FUNCTION @S@.pl_seal_append(p_index bigint[], p_kind smallint[], p_item bigint[], p_hash bytea[],
    p_nodes bytea[], p_entity text[], p_tt timestamptz[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  INSERT INTO @S@.log_leaf (leaf_index, kind, item_id, leaf_hash, nodes)
  SELECT * FROM unnest(p_index, p_kind, p_item, p_hash, p_nodes);
  UPDATE @S@.log_entity e SET sealed_tt = greatest(e.sealed_tt, m.tt)
    FROM (SELECT u.entity_id, max(u.tt) AS tt FROM unnest(p_entity, p_tt) AS u(entity_id, tt)
           WHERE u.entity_id IS NOT NULL GROUP BY u.entity_id) m
   WHERE e.entity_id = m.entity_id;
END $fn$;
-- The seal's end: its checkpoint (when the tree grew or was signed
-- again) and the new horizon.
CREATE FUNCTION @S@.pl_seal_finish(p_size bigint, p_root bytea, p_origin text, p_note text,
    p_frontier bytea, p_horizon xid8)
RETURNS timestamptz LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_at timestamptz := clock_timestamp();
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  IF p_note IS NOT NULL THEN
    INSERT INTO @S@.log_checkpoint (tree_size, root_hash, origin, note, sealed_at, frontier)
    VALUES (p_size, p_root, p_origin, p_note, v_at, p_frontier);
  END IF;
  UPDATE @S@.log_seal_state SET horizon = p_horizon
   WHERE id = 1 AND horizon IS DISTINCT FROM p_horizon;
  RETURN v_at;
END $fn$;
-- Legal erasure of one entity (pl_erase): with the seal lock and the
-- entity's head held, the caller read the records and computed their
-- commitments; this keeps those, removes every value and the key, tells
-- caches, and refreshes the view that holds values.
CREATE FUNCTION @S@.pl_erase_entity(p_entity text, p_reason text, p_ids bigint[], p_commitments bytea[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_missing bigint;
  v_count bigint;
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  PERFORM set_config('provledger.erasing', 'on', true);
  SELECT count(*) INTO v_missing FROM @S@.provenance_ledger l
   WHERE l.entity_id = p_entity AND l.erased_at IS NULL AND l.id <> ALL (p_ids);
  IF v_missing > 0 THEN
    RAISE EXCEPTION USING ERRCODE = '40001',
      MESSAGE = format('entity %s: %s records appeared during the erasure; run it again', p_entity, v_missing);
  END IF;
  INSERT INTO @S@.log_erased (record_id, commitments)
  SELECT u.id, u.c FROM unnest(p_ids, p_commitments) AS u(id, c)
  ON CONFLICT (record_id) DO NOTHING;
  UPDATE @S@.provenance_ledger SET new_value = 'null', old_value = NULL, metadata = '{}',
         change_reason = NULL, erased_at = clock_timestamp()
   WHERE entity_id = p_entity AND erased_at IS NULL;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  UPDATE @S@.provenance_current SET new_value = 'null', old_value = NULL, metadata = '{}',
         change_reason = NULL, erased_at = clock_timestamp()
   WHERE entity_id = p_entity AND erased_at IS NULL;
  UPDATE @S@.provenance_idempotency SET content_hash = 'erased'
   WHERE id = ANY (p_ids) AND content_hash <> 'erased';
  UPDATE @S@.log_entity SET value_key = NULL WHERE entity_id = p_entity;
  INSERT INTO @S@.erasure (entity_id, reason, records) VALUES (p_entity, p_reason, v_count);
  IF (SELECT c.relispopulated FROM pg_class c WHERE c.oid = '@S@.provenance_latest'::regclass) THEN
    REFRESH MATERIALIZED VIEW @S@.provenance_latest;
  END IF;
  PERFORM pg_notify('@s@_external', p_entity);
  RETURN v_count;
END $fn$;
REVOKE EXECUTE ON FUNCTION @S@.pl_seal_lock(), @S@.pl_seal_keys(text[], bytea[]),
  @S@.pl_seal_append(bigint[], smallint[], bigint[], bytea[], bytea[], text[], timestamptz[]),
  @S@.pl_seal_finish(bigint, bytea, text, text, bytea, xid8),
  @S@.pl_erase_entity(text, text, bigint[], bytea[])
FROM PUBLIC;
