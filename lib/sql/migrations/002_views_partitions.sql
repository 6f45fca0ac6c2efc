-- description: materialized views, refresh log, partition archival, analytics indexes
-- Written only by pl_refresh_views(): one row per view, the last
-- attempt, and the last success (its start bounds the view's age).
CREATE TABLE @S@.mv_refresh_log (
  view_name            text COLLATE "C" PRIMARY KEY,
  last_refresh_start   timestamptz,
  last_refresh_end     timestamptz,
  last_refresh_success boolean,
  last_error           text,
  last_success_start   timestamptz,
  last_success_end     timestamptz
);
CREATE TRIGGER mv_refresh_log_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON @S@.mv_refresh_log
  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
-- Partitions detached for archival, so they can be listed and attached
-- again with their bounds.
CREATE TABLE @S@.detached_partitions (
  name        text COLLATE "C" PRIMARY KEY,
  range_from  timestamptz NOT NULL,
  range_to    timestamptz NOT NULL,
  detached_at timestamptz NOT NULL
);
CREATE TRIGGER detached_partitions_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON @S@.detached_partitions FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();
-- Audit reports stream in (transaction_time, id) order; dashboards
-- aggregate a time window from this index alone.
CREATE INDEX idx_prov_tt_id ON @S@.provenance_ledger (transaction_time, id) INCLUDE (source_type, entity_id);
CREATE INDEX idx_prov_source_tt ON @S@.provenance_ledger (source_type, transaction_time, id);
-- Analytics conveniences, refreshed by pl_refresh_views(); never used
-- for answers that promise current data.
CREATE MATERIALIZED VIEW @S@.provenance_latest AS
SELECT DISTINCT ON (entity_id, field_name)
       entity_id, field_name, new_value AS current_value, old_value, transaction_time AS last_updated, id,
       valid_time_start, valid_time_end, source_type, change_reason, metadata
  FROM @S@.provenance_ledger
 WHERE valid_time_start <= now() AND valid_time_end > now()
 ORDER BY entity_id, field_name, transaction_time DESC, id DESC
WITH NO DATA;
CREATE UNIQUE INDEX idx_prov_latest_pk ON @S@.provenance_latest (entity_id, field_name);
-- UTC days of the last 90 days (2160 hours: no time zone in the sum).
CREATE MATERIALIZED VIEW @S@.provenance_daily_stats AS
SELECT date_trunc('day', transaction_time, 'UTC') AS day, source_type,
       count(*) AS change_count, count(DISTINCT entity_id) AS affected_entities,
       count(DISTINCT field_name) AS affected_fields,
       avg(octet_length(new_value::text)) AS avg_value_size,
       max(octet_length(new_value::text)) AS max_value_size
  FROM @S@.provenance_ledger
 WHERE transaction_time >= date_trunc('day', now(), 'UTC') - interval '2160 hours'
 GROUP BY 1, 2
WITH NO DATA;
CREATE UNIQUE INDEX idx_daily_stats_pk ON @S@.provenance_daily_stats (day, source_type);
-- Refreshes every view, each in its own subtransaction, and logs each
-- outcome; a failure is logged and reported, never re-raised, so that
-- the log row survives. A cancel (statement timeout) is logged too and
-- stops the remaining refreshes.
CREATE FUNCTION @S@.pl_refresh_views() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC' AS $fn$
DECLARE
  v_view   text;
  v_start  timestamptz;
  v_err    text;
  v_state  text;
  v_ok     boolean := true;
  v_cancel boolean := false;
BEGIN
  FOREACH v_view IN ARRAY ARRAY['provenance_latest', 'provenance_daily_stats'] LOOP
    v_start := clock_timestamp();
    v_err := NULL;
    BEGIN
      IF (SELECT c.relispopulated FROM pg_class c WHERE c.oid = format('%I.%I', '@s@', v_view)::regclass) THEN
        EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I.%I', '@s@', v_view);
      ELSE
        EXECUTE format('REFRESH MATERIALIZED VIEW %I.%I', '@s@', v_view);
      END IF;
    EXCEPTION
      WHEN query_canceled THEN
        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        v_err := format('[%s] %s', v_state, v_err);
        v_cancel := true;
      WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        v_err := format('[%s] %s', v_state, v_err);
    END;
    PERFORM set_config('provledger.internal', 'on', true);
    INSERT INTO @S@.mv_refresh_log AS g (view_name, last_refresh_start, last_refresh_end,
        last_refresh_success, last_error, last_success_start, last_success_end)
    VALUES (v_view, v_start, clock_timestamp(), v_err IS NULL, v_err,
            CASE WHEN v_err IS NULL THEN v_start END, CASE WHEN v_err IS NULL THEN clock_timestamp() END)
    ON CONFLICT (view_name) DO UPDATE SET
      last_refresh_start = EXCLUDED.last_refresh_start,
      last_refresh_end = EXCLUDED.last_refresh_end,
      last_refresh_success = EXCLUDED.last_refresh_success,
      last_error = EXCLUDED.last_error,
      last_success_start = coalesce(EXCLUDED.last_success_start, g.last_success_start),
      last_success_end = coalesce(EXCLUDED.last_success_end, g.last_success_end);
    PERFORM set_config('provledger.internal', 'off', true);
    IF v_err IS NOT NULL THEN v_ok := false; END IF;
    EXIT WHEN v_cancel;
  END LOOP;
  RETURN v_ok;
END $fn$;
-- Inserting into a detached partition would bypass the ledger's
-- ordering and latest-state maintenance: refused until re-attached.
CREATE FUNCTION @S@.pl_reject_detached() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'PLA01',
    MESSAGE = format('%s on %I.%I is not allowed: it is a detached partition of the provenance ledger',
                     TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);
END $fn$;
-- Attached partitions (bounds read from the catalog) and detached ones.
CREATE FUNCTION @S@.pl_partitions()
RETURNS TABLE (name text, range_from timestamptz, range_to timestamptz, attached boolean,
               est_rows bigint, total_bytes bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET timezone = 'UTC' SET datestyle = 'ISO, YMD'
AS $fn$
  SELECT c.relname::text COLLATE "C", b.m[1]::timestamptz, b.m[2]::timestamptz, true,
         coalesce(s.n_live_tup, greatest(c.reltuples, 0)::bigint), pg_total_relation_size(c.oid)
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                            'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') AS m) b
    LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
   WHERE i.inhparent = '@S@.provenance_ledger'::regclass
  UNION ALL
  SELECT d.name COLLATE "C", d.range_from, d.range_to, false,
         coalesce(s.n_live_tup, greatest(c.reltuples, 0)::bigint), coalesce(pg_total_relation_size(c.oid), 0)
    FROM @S@.detached_partitions d
    LEFT JOIN pg_class c ON c.oid = to_regclass(format('%I.%I', '@s@', d.name))
    LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
$fn$;
-- Detaches (never drops) attached partitions ending at or before
-- p_older_than, never the current month or later ones.
CREATE FUNCTION @S@.pl_detach_partitions(p_older_than timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC'
SET datestyle = 'ISO, YMD' AS $fn$
DECLARE
  v_limit timestamptz := least(p_older_than, date_trunc('month', clock_timestamp()));
  v record;
  v_n integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.provenance_partitions', 0));
  FOR v IN SELECT p.name, p.range_from, p.range_to FROM @S@.pl_partitions() p
            WHERE p.attached AND p.range_to <= v_limit ORDER BY p.range_from LOOP
    EXECUTE format('ALTER TABLE %I.provenance_ledger DETACH PARTITION %I.%I', '@s@', '@s@', v.name);
    EXECUTE format('CREATE TRIGGER provenance_detached BEFORE INSERT ON %I.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %I.pl_reject_detached()', '@s@', v.name, '@s@');
    PERFORM set_config('provledger.internal', 'on', true);
    INSERT INTO @S@.detached_partitions VALUES (v.name, v.range_from, v.range_to, clock_timestamp());
    PERFORM set_config('provledger.internal', 'off', true);
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END $fn$;
-- Attaches a detached partition again with its recorded bounds; false
-- when p_name is not one of ours.
CREATE FUNCTION @S@.pl_attach_partition(p_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC'
SET datestyle = 'ISO, YMD' AS $fn$
DECLARE
  v record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.provenance_partitions', 0));
  SELECT d.name, d.range_from, d.range_to INTO v FROM @S@.detached_partitions d WHERE d.name = p_name;
  IF NOT FOUND THEN RETURN false; END IF;
  IF to_regclass(format('%I.%I', '@s@', v.name)) IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'PLA02',
      MESSAGE = format('detached partition %I.%I no longer exists', '@s@', v.name);
  END IF;
  EXECUTE format('DROP TRIGGER IF EXISTS provenance_detached ON %I.%I', '@s@', v.name);
  EXECUTE format('ALTER TABLE %I.provenance_ledger ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                 '@s@', '@s@', v.name, v.range_from, v.range_to);
  PERFORM set_config('provledger.internal', 'on', true);
  DELETE FROM @S@.detached_partitions WHERE name = v.name;
  PERFORM set_config('provledger.internal', 'off', true);
  RETURN true;
END $fn$;
-- Detaching hides history from every query: the schema owner's call
-- (and whoever the owner grants it to), not any role's.
REVOKE EXECUTE ON FUNCTION @S@.pl_detach_partitions(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @S@.pl_attach_partition(text) FROM PUBLIC;
-- The slowest statements on this ledger's schema, when
-- pg_stat_statements is installed (wherever its schema is).
CREATE FUNCTION @S@.pl_slow_statements(p_limit integer)
RETURNS TABLE (query text, calls bigint, mean_ms double precision, max_ms double precision,
               total_ms double precision)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_nsp text;
BEGIN
  SELECT n.nspname INTO v_nsp FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
   WHERE e.extname = 'pg_stat_statements';
  IF NOT FOUND THEN RETURN; END IF;
  RETURN QUERY EXECUTE format(
    'SELECT s.query, s.calls, s.mean_exec_time, s.max_exec_time, s.total_exec_time '
    'FROM %I.pg_stat_statements s '
    'WHERE s.dbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()) '
    'AND strpos(s.query, $2) > 0 ORDER BY s.mean_exec_time DESC LIMIT $1', v_nsp)
  USING p_limit, '"@s@".';
END $fn$;
