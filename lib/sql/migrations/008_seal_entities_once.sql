-- description: a seal moves each entity's sealed time once, at its end
-- Migration 8 (issue 10). Migration 5's pl_seal_append moved
-- log_entity.sealed_tt forward with every chunk of 1,000 leaves, inside
-- the seal's one transaction. An entity whose records are spread over many
-- chunks then got a new row version per chunk, which no pruning can remove
-- while the transaction runs, so every later lookup of it walked a longer
-- chain: the first seal of 10M records took 2,430 s where 200,000 took
-- 5.1 s. Now the chunks only append leaves; the sealer keeps within the
-- seal what it needs to leave back-dated records out (seal.c), and
-- pl_seal_entities moves every entity's sealed time once, before the
-- checkpoint. Migration 5's pl_seal_append stays, unused by this library,
-- for a library of an earlier version still sealing this schema.
--
-- pl_seal_keys no longer takes a row lock on every entity that already
-- has its key (ON CONFLICT DO UPDATE locks the row even when its WHERE
-- refuses the update: a WAL record and a dirtied page per entity and
-- chunk, the seal's largest cost at 1M records). Only the seal and the
-- erasure write log_entity, both under the seal lock, so the rows read
-- here cannot change before the insert.
CREATE OR REPLACE FUNCTION @S@.pl_seal_keys(p_entity text[], p_key bytea[])
RETURNS TABLE (entity_id text, value_key bytea, sealed_tt timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  INSERT INTO @S@.log_entity AS e (entity_id, value_key, sealed_tt)
  SELECT u.entity_id, u.k, NULL FROM unnest(p_entity, p_key) AS u(entity_id, k)
  WHERE NOT EXISTS (SELECT 1 FROM @S@.log_entity x WHERE x.entity_id = u.entity_id AND x.value_key IS NOT NULL)
  ON CONFLICT ON CONSTRAINT log_entity_pkey DO UPDATE SET value_key = EXCLUDED.value_key
   WHERE e.value_key IS NULL;
  RETURN QUERY SELECT e.entity_id::text, e.value_key, e.sealed_tt FROM @S@.log_entity e
    WHERE e.entity_id = ANY (p_entity);
END $fn$;
CREATE FUNCTION @S@.pl_seal_append_leaves(p_index bigint[], p_kind smallint[], p_item bigint[],
    p_hash bytea[], p_nodes bytea[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  INSERT INTO @S@.log_leaf (leaf_index, kind, item_id, leaf_hash, nodes)
  SELECT * FROM unnest(p_index, p_kind, p_item, p_hash, p_nodes);
END $fn$;
-- Moves the sealed time of every entity with a record leaf at index
-- p_from or later (this seal's) to its latest sealed record's time.
CREATE FUNCTION @S@.pl_seal_entities(p_from bigint)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_count bigint;
BEGIN
  PERFORM set_config('provledger.internal', 'on', true);
  UPDATE @S@.log_entity e SET sealed_tt = greatest(e.sealed_tt, m.tt)
    FROM (SELECT p.entity_id, max(p.transaction_time) AS tt
            FROM @S@.log_leaf l JOIN @S@.provenance_ledger p ON p.id = l.item_id
           WHERE l.kind = 1 AND l.leaf_index >= p_from
           GROUP BY p.entity_id) m
   WHERE e.entity_id = m.entity_id AND e.sealed_tt IS DISTINCT FROM greatest(e.sealed_tt, m.tt);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $fn$;
REVOKE EXECUTE ON FUNCTION
  @S@.pl_seal_append_leaves(bigint[], smallint[], bigint[], bytea[], bytea[]),
  @S@.pl_seal_entities(bigint)
FROM PUBLIC;
