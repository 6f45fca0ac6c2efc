/* The SQL of operations and analytics (see schema_ops.h). */
#include "schema_ops.h"

#include <stddef.h>

/* An instant as int8 microseconds since 1970 (extract is exact numeric). */
#define US(x) "(extract(epoch FROM " x ") * 1000000)::int8"

/* ------------------------------------------------------------------------ */
/* Migration 2: views, refresh log, partition archival, analytics indexes.   */
/* ------------------------------------------------------------------------ */
/* Split in parts: C11 guarantees string literals of 4095 bytes only. */
const char *const pl_migration_2[] = {
    /* Written only by pl_refresh_views(): one row per view, the last
     * attempt, and the last success (its start bounds the view's age). */
    "CREATE TABLE @S@.mv_refresh_log (\n"
    "  view_name            text COLLATE \"C\" PRIMARY KEY,\n"
    "  last_refresh_start   timestamptz,\n"
    "  last_refresh_end     timestamptz,\n"
    "  last_refresh_success boolean,\n"
    "  last_error           text,\n"
    "  last_success_start   timestamptz,\n"
    "  last_success_end     timestamptz\n"
    ");\n"
    "CREATE TRIGGER mv_refresh_log_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON @S@.mv_refresh_log\n"
    "  FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();\n"
    /* Partitions detached for archival, so they can be listed and attached
     * again with their bounds. */
    "CREATE TABLE @S@.detached_partitions (\n"
    "  name        text COLLATE \"C\" PRIMARY KEY,\n"
    "  range_from  timestamptz NOT NULL,\n"
    "  range_to    timestamptz NOT NULL,\n"
    "  detached_at timestamptz NOT NULL\n"
    ");\n"
    "CREATE TRIGGER detached_partitions_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE\n"
    "  ON @S@.detached_partitions FOR EACH STATEMENT EXECUTE FUNCTION @S@.pl_guard_derived();\n"
    /* Audit reports stream in (transaction_time, id) order; dashboards
     * aggregate a time window from this index alone. */
    "CREATE INDEX idx_prov_tt_id ON @S@.provenance_ledger (transaction_time, id) INCLUDE (source_type, entity_id);\n"
    "CREATE INDEX idx_prov_source_tt ON @S@.provenance_ledger (source_type, transaction_time, id);\n"
    /* Analytics conveniences, refreshed by pl_refresh_views(); never used
     * for answers that promise current data. */
    "CREATE MATERIALIZED VIEW @S@.provenance_latest AS\n"
    "SELECT DISTINCT ON (entity_id, field_name)\n"
    "       entity_id, field_name, new_value AS current_value, old_value, transaction_time AS last_updated, id,\n"
    "       valid_time_start, valid_time_end, source_type, change_reason, metadata\n"
    "  FROM @S@.provenance_ledger\n"
    " WHERE valid_time_start <= now() AND valid_time_end > now()\n"
    " ORDER BY entity_id, field_name, transaction_time DESC, id DESC\n"
    "WITH NO DATA;\n"
    "CREATE UNIQUE INDEX idx_prov_latest_pk ON @S@.provenance_latest (entity_id, field_name);\n"
    /* UTC days of the last 90 days (2160 hours: no time zone in the sum). */
    "CREATE MATERIALIZED VIEW @S@.provenance_daily_stats AS\n"
    "SELECT date_trunc('day', transaction_time, 'UTC') AS day, source_type,\n"
    "       count(*) AS change_count, count(DISTINCT entity_id) AS affected_entities,\n"
    "       count(DISTINCT field_name) AS affected_fields,\n"
    "       avg(octet_length(new_value::text)) AS avg_value_size,\n"
    "       max(octet_length(new_value::text)) AS max_value_size\n"
    "  FROM @S@.provenance_ledger\n"
    " WHERE transaction_time >= date_trunc('day', now(), 'UTC') - interval '2160 hours'\n"
    " GROUP BY 1, 2\n"
    "WITH NO DATA;\n"
    "CREATE UNIQUE INDEX idx_daily_stats_pk ON @S@.provenance_daily_stats (day, source_type);\n",
    /* Refreshes every view, each in its own subtransaction, and logs each
     * outcome; a failure is logged and reported, never re-raised, so that
     * the log row survives. A cancel (statement timeout) is logged too and
     * stops the remaining refreshes. */
    "CREATE FUNCTION @S@.pl_refresh_views() RETURNS boolean\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC' AS $fn$\n"
    "DECLARE\n"
    "  v_view   text;\n"
    "  v_start  timestamptz;\n"
    "  v_err    text;\n"
    "  v_state  text;\n"
    "  v_ok     boolean := true;\n"
    "  v_cancel boolean := false;\n"
    "BEGIN\n"
    "  FOREACH v_view IN ARRAY ARRAY['provenance_latest', 'provenance_daily_stats'] LOOP\n"
    "    v_start := clock_timestamp();\n"
    "    v_err := NULL;\n"
    "    BEGIN\n"
    "      IF (SELECT c.relispopulated FROM pg_class c WHERE c.oid = format('%I.%I', '@s@', v_view)::regclass) THEN\n"
    "        EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I.%I', '@s@', v_view);\n"
    "      ELSE\n"
    "        EXECUTE format('REFRESH MATERIALIZED VIEW %I.%I', '@s@', v_view);\n"
    "      END IF;\n"
    "    EXCEPTION\n"
    "      WHEN query_canceled THEN\n"
    "        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;\n"
    "        v_err := format('[%s] %s', v_state, v_err);\n"
    "        v_cancel := true;\n"
    "      WHEN OTHERS THEN\n"
    "        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;\n"
    "        v_err := format('[%s] %s', v_state, v_err);\n"
    "    END;\n"
    "    PERFORM set_config('provledger.internal', 'on', true);\n"
    "    INSERT INTO @S@.mv_refresh_log AS g (view_name, last_refresh_start, last_refresh_end,\n"
    "        last_refresh_success, last_error, last_success_start, last_success_end)\n"
    "    VALUES (v_view, v_start, clock_timestamp(), v_err IS NULL, v_err,\n"
    "            CASE WHEN v_err IS NULL THEN v_start END, CASE WHEN v_err IS NULL THEN clock_timestamp() END)\n"
    "    ON CONFLICT (view_name) DO UPDATE SET\n"
    "      last_refresh_start = EXCLUDED.last_refresh_start,\n"
    "      last_refresh_end = EXCLUDED.last_refresh_end,\n"
    "      last_refresh_success = EXCLUDED.last_refresh_success,\n"
    "      last_error = EXCLUDED.last_error,\n"
    "      last_success_start = coalesce(EXCLUDED.last_success_start, g.last_success_start),\n"
    "      last_success_end = coalesce(EXCLUDED.last_success_end, g.last_success_end);\n"
    "    PERFORM set_config('provledger.internal', 'off', true);\n"
    "    IF v_err IS NOT NULL THEN v_ok := false; END IF;\n"
    "    EXIT WHEN v_cancel;\n"
    "  END LOOP;\n"
    "  RETURN v_ok;\n"
    "END $fn$;\n"
    /* Inserting into a detached partition would bypass the ledger's
     * ordering and latest-state maintenance: refused until re-attached. */
    "CREATE FUNCTION @S@.pl_reject_detached() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
    "BEGIN\n"
    "  RAISE EXCEPTION USING ERRCODE = 'PLA01',\n"
    "    MESSAGE = format('%s on %I.%I is not allowed: it is a detached partition of the provenance ledger',\n"
    "                     TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);\n"
    "END $fn$;\n",
    /* Attached partitions (bounds read from the catalog) and detached ones. */
    "CREATE FUNCTION @S@.pl_partitions()\n"
    "RETURNS TABLE (name text, range_from timestamptz, range_to timestamptz, attached boolean,\n"
    "               est_rows bigint, total_bytes bigint)\n"
    "LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET timezone = 'UTC' SET datestyle = 'ISO, YMD'\n"
    "AS $fn$\n"
    "  SELECT c.relname::text COLLATE \"C\", b.m[1]::timestamptz, b.m[2]::timestamptz, true,\n"
    "         coalesce(s.n_live_tup, greatest(c.reltuples, 0)::bigint), pg_total_relation_size(c.oid)\n"
    "    FROM pg_inherits i\n"
    "    JOIN pg_class c ON c.oid = i.inhrelid\n"
    "    CROSS JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),\n"
    "                                            'FROM \\(''([^'']*)''\\) TO \\(''([^'']*)''\\)') AS m) b\n"
    "    LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid\n"
    "   WHERE i.inhparent = '@S@.provenance_ledger'::regclass\n"
    "  UNION ALL\n"
    "  SELECT d.name COLLATE \"C\", d.range_from, d.range_to, false,\n"
    "         coalesce(s.n_live_tup, greatest(c.reltuples, 0)::bigint), coalesce(pg_total_relation_size(c.oid), 0)\n"
    "    FROM @S@.detached_partitions d\n"
    "    LEFT JOIN pg_class c ON c.oid = to_regclass(format('%I.%I', '@s@', d.name))\n"
    "    LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid\n"
    "$fn$;\n"
    /* Detaches (never drops) attached partitions ending at or before
     * p_older_than, never the current month or later ones. */
    "CREATE FUNCTION @S@.pl_detach_partitions(p_older_than timestamptz) RETURNS integer\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC'\n"
    "SET datestyle = 'ISO, YMD' AS $fn$\n"
    "DECLARE\n"
    "  v_limit timestamptz := least(p_older_than, date_trunc('month', clock_timestamp()));\n"
    "  v record;\n"
    "  v_n integer := 0;\n"
    "BEGIN\n"
    "  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.provenance_partitions', 0));\n"
    "  FOR v IN SELECT p.name, p.range_from, p.range_to FROM @S@.pl_partitions() p\n"
    "            WHERE p.attached AND p.range_to <= v_limit ORDER BY p.range_from LOOP\n"
    "    EXECUTE format('ALTER TABLE %I.provenance_ledger DETACH PARTITION %I.%I', '@s@', '@s@', v.name);\n"
    "    EXECUTE format('CREATE TRIGGER provenance_detached BEFORE INSERT ON %I.%I '\n"
    "                   'FOR EACH STATEMENT EXECUTE FUNCTION %I.pl_reject_detached()', '@s@', v.name, '@s@');\n"
    "    PERFORM set_config('provledger.internal', 'on', true);\n"
    "    INSERT INTO @S@.detached_partitions VALUES (v.name, v.range_from, v.range_to, clock_timestamp());\n"
    "    PERFORM set_config('provledger.internal', 'off', true);\n"
    "    v_n := v_n + 1;\n"
    "  END LOOP;\n"
    "  RETURN v_n;\n"
    "END $fn$;\n",
    /* Attaches a detached partition again with its recorded bounds; false
     * when p_name is not one of ours. */
    "CREATE FUNCTION @S@.pl_attach_partition(p_name text) RETURNS boolean\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET timezone = 'UTC'\n"
    "SET datestyle = 'ISO, YMD' AS $fn$\n"
    "DECLARE\n"
    "  v record;\n"
    "BEGIN\n"
    "  PERFORM pg_advisory_xact_lock(hashtextextended('@s@.provenance_partitions', 0));\n"
    "  SELECT d.name, d.range_from, d.range_to INTO v FROM @S@.detached_partitions d WHERE d.name = p_name;\n"
    "  IF NOT FOUND THEN RETURN false; END IF;\n"
    "  IF to_regclass(format('%I.%I', '@s@', v.name)) IS NULL THEN\n"
    "    RAISE EXCEPTION USING ERRCODE = 'PLA02',\n"
    "      MESSAGE = format('detached partition %I.%I no longer exists', '@s@', v.name);\n"
    "  END IF;\n"
    "  EXECUTE format('DROP TRIGGER IF EXISTS provenance_detached ON %I.%I', '@s@', v.name);\n"
    "  EXECUTE format('ALTER TABLE %I.provenance_ledger ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',\n"
    "                 '@s@', '@s@', v.name, v.range_from, v.range_to);\n"
    "  PERFORM set_config('provledger.internal', 'on', true);\n"
    "  DELETE FROM @S@.detached_partitions WHERE name = v.name;\n"
    "  PERFORM set_config('provledger.internal', 'off', true);\n"
    "  RETURN true;\n"
    "END $fn$;\n"
    /* Detaching hides history from every query: the schema owner's call
     * (and whoever the owner grants it to), not any role's. */
    "REVOKE EXECUTE ON FUNCTION @S@.pl_detach_partitions(timestamptz) FROM PUBLIC;\n"
    "REVOKE EXECUTE ON FUNCTION @S@.pl_attach_partition(text) FROM PUBLIC;\n"
    /* The slowest statements on this ledger's schema, when
     * pg_stat_statements is installed (wherever its schema is). */
    "CREATE FUNCTION @S@.pl_slow_statements(p_limit integer)\n"
    "RETURNS TABLE (query text, calls bigint, mean_ms double precision, max_ms double precision,\n"
    "               total_ms double precision)\n"
    "LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$\n"
    "DECLARE\n"
    "  v_nsp text;\n"
    "BEGIN\n"
    "  SELECT n.nspname INTO v_nsp FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace\n"
    "   WHERE e.extname = 'pg_stat_statements';\n"
    "  IF NOT FOUND THEN RETURN; END IF;\n"
    "  RETURN QUERY EXECUTE format(\n"
    "    'SELECT s.query, s.calls, s.mean_exec_time, s.max_exec_time, s.total_exec_time '\n"
    "    'FROM %I.pg_stat_statements s '\n"
    "    'WHERE s.dbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()) '\n"
    "    'AND strpos(s.query, $2) > 0 ORDER BY s.mean_exec_time DESC LIMIT $1', v_nsp)\n"
    "  USING p_limit, '\"@s@\".';\n"
    "END $fn$;\n",
    NULL,
};

/* ------------------------------------------------------------------------ */
/* Partitions                                                                */
/* ------------------------------------------------------------------------ */

const char pl_sql_partitions_ensure[] =
    "SELECT @S@.pl_ensure_partitions(clock_timestamp(), $1::int4)";

const char pl_sql_partitions_list[] =
    "SELECT p.name, " US("p.range_from") " AS range_from, " US("p.range_to") " AS range_to, "
    "p.attached, p.est_rows AS rows, p.total_bytes "
    "FROM @S@.pl_partitions() p ORDER BY p.range_from, p.name";

const char pl_sql_partitions_detach[] = "SELECT @S@.pl_detach_partitions($1::timestamptz)";

const char pl_sql_partition_attach[] = "SELECT @S@.pl_attach_partition($1::text)";

/* ------------------------------------------------------------------------ */
/* Materialized views                                                        */
/* ------------------------------------------------------------------------ */

const char pl_sql_refresh[] = "SELECT @S@.pl_refresh_views()";

const char pl_sql_refresh_errors[] =
    "SELECT string_agg(view_name || ': ' || coalesce(last_error, 'unknown error'), '; ' ORDER BY view_name) "
    "FROM @S@.mv_refresh_log WHERE NOT last_refresh_success";

const char pl_sql_cron_present[] =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')";

const char pl_sql_cron_schedule[] = "SELECT cron.schedule($1::text, $2::text, $3::text)";

const char pl_sql_cron_unschedule[] =
    "SELECT count(cron.unschedule(j.jobid)) FROM cron.job j WHERE j.jobname = $1::text";

const char pl_sql_freshness[] =
    "SELECT v.view_name, " US("g.last_refresh_start") " AS last_refresh_start, "
    US("g.last_refresh_end") " AS last_refresh_end, g.last_refresh_success AS last_success, "
    "g.last_error, round(extract(epoch FROM clock_timestamp() - g.last_success_end), 6) AS staleness_seconds "
    "FROM (VALUES ('provenance_daily_stats'), ('provenance_latest')) AS v(view_name) "
    "LEFT JOIN @S@.mv_refresh_log g ON g.view_name = v.view_name COLLATE \"C\" "
    "ORDER BY v.view_name COLLATE \"C\"";

/* ------------------------------------------------------------------------ */
/* Analytics                                                                 */
/* ------------------------------------------------------------------------ */

/* [from, to) on transaction time; NULL leaves an end open. */
#define TT_WINDOW                                                           \
    "transaction_time >= coalesce($1::timestamptz, '-infinity') "           \
    "AND transaction_time < coalesce($2::timestamptz, 'infinity') "

const char pl_sql_audit[] =
    "SELECT id, entity_id, field_name, new_value, old_value, transaction_time, valid_time_start, "
    "valid_time_end, source_type, change_reason, metadata FROM @S@.provenance_ledger "
    "WHERE " TT_WINDOW "AND ($3::text IS NULL OR source_type = $3::text) "
    "ORDER BY transaction_time, id";

/* A page of limit records plus, when more follow, one placeholder row
 * whose id is NULL (skipped by the result builder) that says so. */
#define SEARCH(extra)                                                                     \
    "SELECT CASE WHEN s.rn <= $2::int8 THEN s.id END AS id, s.entity_id, s.field_name, "   \
    "s.new_value, s.old_value, s.transaction_time, s.valid_time_start, s.valid_time_end, " \
    "s.source_type, s.change_reason, s.metadata FROM ("                                    \
    "SELECT p.*, row_number() OVER (ORDER BY p.transaction_time DESC, p.id DESC) AS rn FROM (" \
    "SELECT id, entity_id, field_name, new_value, old_value, transaction_time, "          \
    "valid_time_start, valid_time_end, source_type, change_reason, metadata "             \
    "FROM @S@.provenance_ledger WHERE metadata @> $1::jsonb " extra                         \
    "ORDER BY transaction_time DESC, id DESC LIMIT $2::int8 + 1) p) s ORDER BY s.rn"

/* Through the GIN index, whatever the planner guesses of the matches (it
 * cannot estimate containment: 1% by default): reading the newest rows by
 * time and filtering them is fast when matches are dense but a scan of the
 * whole ledger when they are rare, and so is a sequential scan; the GIN
 * index costs O(matches) always. The page is read whole (no fast start).
 * The empty query matches everything: newest first by time is right then,
 * so it runs with the planner's choice. */
const char pl_sql_search_setup[] =
    "SET LOCAL cursor_tuple_fraction = 1.0; SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = off";
const char pl_sql_search_setup_all[] = "SET LOCAL cursor_tuple_fraction = 1.0";

const char pl_sql_search_first[] = SEARCH("");

const char pl_sql_search_next[] =
    SEARCH("AND transaction_time <= $3::timestamptz AND (transaction_time, id) < ($3::timestamptz, $4::int8) ");

const char pl_sql_dashboard_base[] =
    "SELECT " US("d.day") " AS day, d.source_type, d.changes, d.entities FROM ("
    "SELECT date_trunc('day', transaction_time, 'UTC') AS day, source_type, count(*) AS changes, "
    "count(DISTINCT entity_id) AS entities FROM @S@.provenance_ledger "
    "WHERE " TT_WINDOW "AND ($3::text IS NULL OR source_type = $3::text) "
    "GROUP BY 1, 2) d ORDER BY d.day, d.source_type";

/* One row when provenance_daily_stats holds a successful refresh. */
const char pl_sql_dashboard_view_state[] =
    "SELECT 1 FROM @S@.mv_refresh_log g JOIN pg_catalog.pg_class c "
    "ON c.oid = '@S@.provenance_daily_stats'::regclass AND c.relispopulated "
    "WHERE g.view_name = 'provenance_daily_stats' AND g.last_success_end IS NOT NULL";

/* The view's rows and, in the same snapshot, its age and whether it covers
 * the window ($1 is a UTC midnight). Rows with a NULL day are the
 * placeholder for "covered but empty" or "not covered". */
const char pl_sql_dashboard_view[] =
    "WITH f AS (SELECT date_trunc('day', g.last_success_start, 'UTC') - interval '2160 hours' AS covers_from, "
    US("clock_timestamp() - g.last_success_start") " AS stale_us "
    "FROM @S@.mv_refresh_log g WHERE g.view_name = 'provenance_daily_stats' AND g.last_success_end IS NOT NULL) "
    "SELECT " US("v.day") " AS day, v.source_type, v.change_count AS changes, v.affected_entities AS entities, "
    "f.stale_us, (f.covers_from <= $1::timestamptz) AS covers "
    "FROM f LEFT JOIN @S@.provenance_daily_stats v ON f.covers_from <= $1::timestamptz "
    "AND v.day >= $1::timestamptz AND v.day < coalesce($2::timestamptz, 'infinity') "
    "AND ($3::text IS NULL OR v.source_type = $3::text) "
    "ORDER BY v.day, v.source_type";

const char pl_sql_corrections[] =
    "SELECT c.entity_type, c.field_name, c.corrections FROM ("
    "SELECT coalesce(metadata->>'entity_type', substring(entity_id FROM '^[^_:]*')) COLLATE \"C\" AS entity_type, "
    "field_name, count(*) AS corrections FROM @S@.provenance_ledger "
    "WHERE " TT_WINDOW "AND valid_time_start < transaction_time GROUP BY 1, 2) c "
    "ORDER BY c.corrections DESC, c.entity_type, c.field_name";

/* ------------------------------------------------------------------------ */
/* Monitoring                                                                */
/* ------------------------------------------------------------------------ */

const char pl_sql_indexes[] =
    "SELECT s.indexrelname::text AS name, s.relname::text AS table_name, s.idx_scan AS scans, "
    "pg_relation_size(s.indexrelid) AS size_bytes FROM pg_catalog.pg_stat_user_indexes s "
    "WHERE s.schemaname = $1::text ORDER BY s.relname, s.indexrelname";

const char pl_sql_pgss_present[] =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_stat_statements')";

const char pl_sql_slow_statements[] =
    "SELECT query, calls, round(mean_ms::numeric, 3) AS mean_ms, round(max_ms::numeric, 3) AS max_ms, "
    "round(total_ms::numeric, 3) AS total_ms FROM @S@.pl_slow_statements($1::int4)";
