-- description: an entity's "now" is never before its last transaction time
-- Migration 11 (issue 15). After a failover to a server whose clock is
-- behind the old primary's, an entity's transaction times continue from
-- its last one, ahead of this server's clock (pl_append: greatest(clock,
-- last_tt + 1 us)). A record written "valid from now" is valid from its
-- transaction time; with the clock's now() alone it was not current until
-- the clock caught up, and neither were the old primary's last records:
-- a current read after the failover answered an older record than one it
-- had already answered before it. So wherever a read of one entity says
-- "now", it means that entity's now:
--   on the valid axis:        greatest(now(), last_tt)
--   as a transaction window's end (exclusive) or start:
--                             greatest(now(), last_tt + 1 us)
-- (last_tt from entity_head). On a server whose clock is ahead of every
-- transaction time (always, but after such a failover) both are now().
-- The statements of the current state and of paging (lib/sql/statements)
-- spell the same expressions; these are the read functions of migration 1.
CREATE OR REPLACE FUNCTION @S@.pl_read_asof(p_entity text, p_field text, p_tt timestamptz, p_vt timestamptz,
    p_any_valid boolean) RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$
DECLARE
  v_vt timestamptz;
BEGIN
  IF p_tt <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;
  IF p_any_valid THEN
    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field
      AND transaction_time <= p_tt ORDER BY transaction_time + interval '0' DESC, id DESC LIMIT 1;
  ELSE
    v_vt := coalesce(p_vt, greatest(now(), (SELECT h.last_tt FROM @S@.entity_head h WHERE h.entity_id = p_entity)));
    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field
      AND transaction_time <= p_tt AND valid_time_start <= v_vt
      AND valid_time_end > v_vt ORDER BY transaction_time + interval '0' DESC, id DESC
      LIMIT 1;
  END IF;
END $fn$;
CREATE OR REPLACE FUNCTION @S@.pl_read_snapshot(p_entity text, p_tt timestamptz, p_vt timestamptz,
    p_any_valid boolean) RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$
DECLARE
  v_vt timestamptz;
BEGIN
  IF p_tt <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;
  IF p_any_valid THEN
    RETURN QUERY SELECT DISTINCT ON (field_name) * FROM @S@.provenance_ledger WHERE entity_id = p_entity
      AND transaction_time <= p_tt ORDER BY field_name, transaction_time DESC, id DESC;
  ELSE
    v_vt := coalesce(p_vt, greatest(now(), (SELECT h.last_tt FROM @S@.entity_head h WHERE h.entity_id = p_entity)));
    RETURN QUERY SELECT DISTINCT ON (field_name) * FROM @S@.provenance_ledger WHERE entity_id = p_entity
      AND transaction_time <= p_tt AND valid_time_start <= v_vt
      AND valid_time_end > v_vt ORDER BY field_name, transaction_time DESC, id DESC;
  END IF;
END $fn$;
CREATE OR REPLACE FUNCTION @S@.pl_read_range(p_entity text, p_field text, p_from timestamptz, p_to timestamptz)
RETURNS SETOF @S@.provenance_ledger LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz;
BEGIN
  IF p_to IS NOT NULL AND p_to <> 'infinity' THEN PERFORM @S@.pl_settle(p_entity); END IF;
  IF p_from IS NULL OR p_to IS NULL THEN
    v_now := greatest(now(), (SELECT h.last_tt + interval '1 microsecond' FROM @S@.entity_head h
                               WHERE h.entity_id = p_entity));
  END IF;
  IF p_field IS NULL THEN
    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity
      AND transaction_time >= coalesce(p_from, v_now) AND transaction_time < coalesce(p_to, v_now)
      ORDER BY transaction_time, id;
  ELSE
    RETURN QUERY SELECT * FROM @S@.provenance_ledger WHERE entity_id = p_entity AND field_name = p_field
      AND transaction_time >= coalesce(p_from, v_now) AND transaction_time < coalesce(p_to, v_now)
      ORDER BY transaction_time, id;
  END IF;
END $fn$;
