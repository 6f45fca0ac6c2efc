/* Operations: partitions (ahead, list, detach and re-attach without losing
 * a row, pruning), materialized view refresh and its log, freshness, and
 * scheduling with pg_cron, against the real servers. White-box only for
 * the SQL text (the registry, schema.h), so EXPLAIN sees the library's statements. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "schema.h"
#include "schema.h"
#include "testutil.h"

#define HOUR_US INT64_C(3600000000)
#define DAY_US (24 * HOUR_US)

/* The UTC month start `delta` months from the month of t. */
static pl_time month_start(pl_time t, int delta)
{
    time_t s = (time_t)(t / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    int m = tm.tm_year * 12 + tm.tm_mon + delta;
    struct tm x = {0};
    x.tm_year = m / 12;
    x.tm_mon = m % 12;
    x.tm_mday = 1;
    return (pl_time)timegm(&x) * 1000000;
}

static void partition_name(char *buf, size_t n, pl_time month)
{
    time_t s = (time_t)(month / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, n, "provenance_ledger_%04d_%02d", tm.tm_year + 1900, tm.tm_mon + 1);
}

/* Imports `per_month` records into each of the months `first`..`last`
 * months from now (negative: past), spread over two sources. */
static void import_months(pl_ledger *l, int first, int last, int per_month)
{
    pl_time now = pl_time_now();
    for (int m = first; m <= last; m++) {
        pl_time base = month_start(now, m) + 2 * DAY_US;
        pl_change ch[200];
        pl_time tt[200];
        char ent[200][32], val[200][32];
        ck_assert_int_le(per_month, 200);
        for (int i = 0; i < per_month; i++) {
            pl_change c = PL_CHANGE_INIT;
            snprintf(ent[i], sizeof ent[i], "acct_%d", i % 7);
            snprintf(val[i], sizeof val[i], "%d", m * 1000 + i);
            c.entity_id = ent[i];
            c.field_name = (i % 2) ? "balance" : "owner";
            c.new_value = val[i];
            c.source_type = (i % 3) ? "import" : "user_correction";
            c.valid_from = base;
            ch[i] = c;
            tt[i] = base + (pl_time)i * 60000000;
        }
        tu_ok(pl_import_batch(NULL, l, ch, tt, (size_t)per_month));
    }
}

static void insert_now(pl_ledger *l, int n, const char *prefix)
{
    for (int i = 0; i < n; i++) {
        char ent[64], val[32];
        snprintf(ent, sizeof ent, "%s_%d", prefix, i);
        snprintf(val, sizeof val, "%d", i);
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = ent;
        c.field_name = "status";
        c.new_value = val;
        c.source_type = "api";
        tu_ok(pl_insert(NULL, l, &c));
    }
}

static char *ledger_checksum(void)
{
    char *v = tu_sql("SELECT count(*) || ':' || coalesce(md5(string_agg(id::text || '|' || entity_id || '|' || "
                     "field_name || '|' || new_value::text || '|' || (extract(epoch FROM transaction_time) * 1000000)::int8, "
                     "',' ORDER BY id)), '') FROM provenance_ledger",
                     0, NULL);
    ck_assert_ptr_nonnull(v);
    return v;
}

/* EXPLAIN (COSTS OFF) of a library statement with text parameters. */
static char *explain(const char *tmpl, int n, const char *const *values)
{
    char *sql = pl_sql_expand(tmpl, tu_schema());
    ck_assert_ptr_nonnull(sql);
    size_t len = strlen(sql) + 32;
    char *ex = malloc(len);
    snprintf(ex, len, "EXPLAIN (COSTS OFF) %s", sql);
    free(sql);
    PGconn *pg = PQconnectdb(getenv("PL_TEST_PG"));
    ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
    PGresult *r = PQexecParams(pg, ex, n, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "EXPLAIN failed: %s", PQerrorMessage(pg));
    char *plan = tu_result_lines(r);
    PQclear(r);
    PQfinish(pg);
    free(ex);
    return plan;
}

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ------------------------------------------------------------------------ */

START_TEST(test_schema_objects)
{
    pl_ledger *l = tu_open_new(0, 0);
    int v = 0;
    tu_ok(pl_schema_version(&v, l));
    ck_assert_int_eq(v, PL_SCHEMA_VERSION);
    ck_assert_int_eq(PL_SCHEMA_VERSION, 11);
    /* Migration 11: the read functions take the entity's now. */
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
                               "AND proname IN ('pl_read_asof', 'pl_read_snapshot', 'pl_read_range') "
                               "AND prosrc LIKE '%entity_head%'"),
                     3);
    /* Migration 10: two indexes no query needed are gone, idx_prov_tt (which
     * now serves valid-time reads too) stays, on every partition. */
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN "
                               "('idx_prov_vt', 'provenance_current_starts')"),
                     0);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid "
                               "WHERE i.inhparent = 'idx_prov_tt'::regclass AND x.indisvalid"),
                     tu_sql_ll("SELECT count(*) FROM pg_inherits WHERE inhparent = 'provenance_ledger'::regclass"));
    /* Migration 7: the dashboards' rollup. */
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN "
                               "('rollup_state', 'rollup_partition', 'rollup_day', 'rollup_changes', "
                               "'rollup_corrections')"),
                     5);
    /* Migration 5: the transparency log's tables, and the writer's xid on every record. */
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN "
                               "('log_leaf', 'log_checkpoint', 'log_entity', 'log_erased', 'log_seal_state', 'erasure')"),
                     6);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_attribute WHERE attrelid = 'provenance_ledger'::regclass "
                               "AND attname IN ('xid', 'erased_at') AND NOT attisdropped"),
                     2);
    /* Migration 4: messages print RFC 3339; pl_cache_bind is gone. */
    ck_assert_int_eq(tu_sql_ll("SELECT (pl_rfc3339('2025-01-02 03:04:05.000006+00') = "
                               "'2025-01-02T03:04:05.000006Z')::int"),
                     1);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_proc WHERE proname = 'pl_cache_bind' "
                               "AND pronamespace = current_schema()::regnamespace"),
                     0);
    /* Migration 3: the cache's MAC key and its epoch markers. */
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                               "AND tablename IN ('cache_secret', 'cache_marks')"),
                     2);
    ck_assert_int_eq(tu_sql_ll("SELECT length(mac_key) FROM cache_secret"), 32);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_matviews WHERE schemaname = current_schema() "
                               "AND matviewname IN ('provenance_latest', 'provenance_daily_stats')"),
                     2);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN "
                               "('idx_prov_latest_pk', 'idx_daily_stats_pk', 'idx_prov_tt_id', 'idx_prov_source_tt')"),
                     4);
    /* Only the library writes the refresh log and the detached list. */
    const char *refused[] = {
        "INSERT INTO mv_refresh_log (view_name, last_refresh_success) VALUES ('provenance_latest', true)",
        "UPDATE mv_refresh_log SET last_error = 'x'",
        "DELETE FROM mv_refresh_log",
        "TRUNCATE mv_refresh_log",
        "INSERT INTO detached_partitions VALUES ('x', now(), now(), now())",
        "DELETE FROM detached_partitions",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char state[6];
        free(tu_sql(refused[i], 1, state));
        ck_assert_msg(strcmp(state, "PLA01") == 0, "%s -> %s", refused[i], state);
    }
    /* Migrating again is a no-op. */
    tu_ok(pl_migrate(l));
    tu_ok(pl_schema_version(&v, l));
    ck_assert_int_eq(v, PL_SCHEMA_VERSION);
    pl_close(l);
}
END_TEST

START_TEST(test_partitions_ahead)
{
    pl_ledger *l = tu_open_new(0, 0);
    pl_time now = pl_time_now();
    /* pl_migrate made the current month and three ahead. */
    int made = -1;
    tu_ok(pl_partitions_ensure(&made, l, 3));
    ck_assert_int_eq(made, 0);
    tu_ok(pl_partitions_ensure(&made, l, 6));
    ck_assert_int_eq(made, 3);
    tu_ok(pl_partitions_ensure(&made, l, 6));
    ck_assert_int_eq(made, 0);
    tu_ok(pl_partitions_ensure(NULL, l, 0));
    ck_assert_int_eq(pl_partitions_ensure(&made, l, -1), PL_EINVAL);
    ck_assert_int_eq(pl_partitions_ensure(&made, l, 121), PL_EINVAL);
    ck_assert_int_eq(pl_partitions_ensure(&made, NULL, 1), PL_EINVAL);

    pl_table *t = NULL;
    tu_ok(pl_partitions_list(&t, l));
    ck_assert_uint_eq(pl_table_rows(t), 7);
    ck_assert_uint_eq(pl_table_cols(t), 6);
    const char *cols[] = {"name", "range_from", "range_to", "attached", "rows", "total_bytes"};
    for (int c = 0; c < 6; c++) {
        ck_assert_str_eq(pl_table_colname(t, (size_t)c), cols[c]);
        ck_assert_int_eq(pl_table_colindex(t, cols[c]), c);
    }
    ck_assert_ptr_null(pl_table_colname(t, 6));
    ck_assert_int_eq(pl_table_colindex(t, "nope"), -1);
    ck_assert_ptr_null(pl_table_value(t, 7, 0));
    ck_assert_ptr_null(pl_table_value(t, 0, 6));
    ck_assert_int_eq(pl_table_origin(t), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(pl_table_staleness_us(t), 0);
    for (size_t r = 0; r < 7; r++) {
        char name[64], from[PL_TIME_BUFSIZE], to[PL_TIME_BUFSIZE];
        pl_time m = month_start(now, (int)r);
        partition_name(name, sizeof name, m);
        pl_time_format(from, sizeof from, m);
        pl_time_format(to, sizeof to, month_start(now, (int)r + 1));
        ck_assert_str_eq(pl_table_value(t, r, 0), name);
        ck_assert_str_eq(pl_table_value(t, r, 1), from);
        ck_assert_str_eq(pl_table_value(t, r, 2), to);
        ck_assert_str_eq(pl_table_value(t, r, 3), "true");
        ck_assert_int_ge(pl_table_int64(t, r, 5), 8192);
        /* Every partition carries the append-only guard. */
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname = 'provenance_append_only'",
                 name);
        ck_assert_int_eq(tu_sql_ll(sql), 1);
    }
    pl_table_free(t);
    /* NULL-safety of the table accessors. */
    ck_assert_uint_eq(pl_table_rows(NULL), 0);
    ck_assert_uint_eq(pl_table_cols(NULL), 0);
    ck_assert_ptr_null(pl_table_colname(NULL, 0));
    ck_assert_int_eq(pl_table_colindex(NULL, "name"), -1);
    ck_assert_ptr_null(pl_table_value(NULL, 0, 0));
    ck_assert_int_eq(pl_table_int64(NULL, 0, 0), 0);
    pl_table_free(NULL);
    pl_free(NULL);
    ck_assert_int_eq(pl_partitions_list(NULL, l), PL_EINVAL);
    pl_close(l);
}
END_TEST

START_TEST(test_partitions_list_rows)
{
    pl_ledger *l = tu_open_new(0, 1);
    import_months(l, -3, -2, 30);
    insert_now(l, 11, "now");
    free(tu_sql("ANALYZE provenance_ledger", 0, NULL));
    pl_table *t = NULL;
    tu_ok(pl_partitions_list(&t, l));
    /* Two imported months, the current one and three ahead, oldest first. */
    ck_assert_uint_eq(pl_table_rows(t), 6);
    pl_time now = pl_time_now();
    for (size_t r = 0; r < pl_table_rows(t); r++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", pl_table_value(t, r, 0));
        long long exact = tu_sql_ll(sql);
        ck_assert_int_eq(pl_table_int64(t, r, 4), exact);
        if (r > 0) /* oldest first */
            ck_assert_int_lt(strcmp(pl_table_value(t, r - 1, 1), pl_table_value(t, r, 1)), 0);
    }
    char name[64];
    partition_name(name, sizeof name, month_start(now, -3));
    ck_assert_str_eq(pl_table_value(t, 0, 0), name);
    ck_assert_int_eq(pl_table_int64(t, 0, 4), 30);
    partition_name(name, sizeof name, month_start(now, 0));
    ck_assert_str_eq(pl_table_value(t, 2, 0), name);
    ck_assert_int_eq(pl_table_int64(t, 2, 4), 11);
    pl_table_free(t);
    pl_close(l);
}
END_TEST

START_TEST(test_detach_attach)
{
    pl_ledger *l = tu_open_new(0, 1);
    import_months(l, -5, -3, 40);
    insert_now(l, 20, "now");
    char *before = ledger_checksum();
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM provenance_ledger"), 140);
    pl_time now = pl_time_now();
    pl_result *h = NULL;
    tu_ok(pl_history(&h, l, "acct_1", NULL, PL_REALTIME));
    size_t hist_before = pl_result_count(h);
    ck_assert_uint_gt(hist_before, 0);
    pl_result_free(h);

    /* An ordinary role may read and append, not hide history. */
    char grant[256];
    snprintf(grant, sizeof grant, "GRANT USAGE ON SCHEMA %s TO provledger_app", tu_schema());
    free(tu_sql(grant, 0, NULL));
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pg_conninfo = getenv("PL_TEST_PG_APP");
    pl_ledger *app = NULL;
    tu_ok(pl_open(&app, &cfg));
    int n = -1;
    ck_assert_int_eq(pl_partitions_detach(&n, app, month_start(now, -2)), PL_EPERM);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(pl_partition_attach(app, "provenance_ledger_2020_01"), PL_EPERM);
    pl_close(app);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM provenance_ledger"), 140);

    tu_ok(pl_partitions_detach(&n, l, month_start(now, -2)));
    ck_assert_int_eq(n, 3);
    /* Queries no longer see them; the data is kept in the tables. */
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM provenance_ledger"), 20);
    tu_ok(pl_history(&h, l, "acct_1", NULL, PL_REALTIME));
    ck_assert_uint_eq(pl_result_count(h), 0);
    pl_result_free(h);
    for (int m = -5; m <= -3; m++) {
        char name[64], sql[128];
        partition_name(name, sizeof name, month_start(now, m));
        snprintf(sql, sizeof sql, "ANALYZE %s", name);
        free(tu_sql(sql, 0, NULL));
    }

    pl_table *t = NULL;
    tu_ok(pl_partitions_list(&t, l));
    ck_assert_uint_eq(pl_table_rows(t), 3 + 4);
    for (int m = -5; m <= -3; m++) {
        size_t r = (size_t)(m + 5);
        char name[64], from[PL_TIME_BUFSIZE], to[PL_TIME_BUFSIZE], sql[512];
        partition_name(name, sizeof name, month_start(now, m));
        pl_time_format(from, sizeof from, month_start(now, m));
        pl_time_format(to, sizeof to, month_start(now, m + 1));
        ck_assert_str_eq(pl_table_value(t, r, 0), name);
        ck_assert_str_eq(pl_table_value(t, r, 1), from);
        ck_assert_str_eq(pl_table_value(t, r, 2), to);
        ck_assert_str_eq(pl_table_value(t, r, 3), "false");
        ck_assert_int_eq(pl_table_int64(t, r, 4), 40);
        ck_assert_int_gt(pl_table_int64(t, r, 5), 0);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", name);
        ck_assert_int_eq(tu_sql_ll(sql), 40);
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass "
                 "AND tgname IN ('provenance_append_only', 'provenance_detached')",
                 name);
        ck_assert_int_eq(tu_sql_ll(sql), 2);
        /* Still append-only, and closed to inserts while detached. */
        const char *ops[] = {"UPDATE %s SET source_type = 'x'", "DELETE FROM %s", "TRUNCATE %s",
                             "INSERT INTO %s SELECT * FROM %s LIMIT 1"};
        for (int k = 0; k < 4; k++) {
            char state[6];
            snprintf(sql, sizeof sql, ops[k], name, name);
            free(tu_sql(sql, 1, state));
            ck_assert_msg(strcmp(state, "PLA01") == 0, "%s -> %s", sql, state);
        }
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", name);
        ck_assert_int_eq(tu_sql_ll(sql), 40);
    }
    for (size_t r = 3; r < 7; r++)
        ck_assert_str_eq(pl_table_value(t, r, 3), "true");
    pl_table_free(t);

    /* Never the current month or later, whatever the horizon. */
    tu_ok(pl_partitions_detach(&n, l, PL_TIME_MAX));
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM provenance_ledger"), 20);
    ck_assert_int_eq(pl_partitions_detach(&n, l, PL_TIME_NOW), PL_EINVAL);

    /* An import into a detached month says what happened and what to do,
     * naming the change, the time (RFC 3339) and the partition. */
    {
        char name[64], when[PL_TIME_BUFSIZE], want[256];
        pl_time at = month_start(now, -4) + INT64_C(3600000000);
        partition_name(name, sizeof name, month_start(now, -4));
        pl_time_format(when, sizeof when, at);
        pl_change late[2] = {tu_change("ops-archived-ok", "f", "1"), tu_change("ops-archived", "f", "1")};
        pl_time tts[2] = {now - INT64_C(60000000), at};
        ck_assert_int_eq(pl_import_batch(NULL, l, late, tts, 2), PL_EINVAL);
        snprintf(want, sizeof want, "transaction_times[1]: %s falls in the month of partition %s, which is detached",
                 when, name);
        ck_assert_msg(strstr(pl_errmsg(), want) && strstr(pl_errmsg(), "pl_partition_attach"), "%s", pl_errmsg());
        ck_assert_ptr_null(strstr(pl_errmsg(), "no partition"));
        ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE 'ops-archived%'"), 0);
    }

    /* Only our detached partitions can be attached. */
    ck_assert_int_eq(pl_partition_attach(l, "provenance_ledger_1999_01"), PL_NOT_FOUND);
    ck_assert_int_eq(pl_partition_attach(l, "x\"; DROP TABLE provenance_current; --"), PL_NOT_FOUND);
    ck_assert_int_eq(pl_partition_attach(l, ""), PL_EINVAL);
    ck_assert_int_eq(pl_partition_attach(l, NULL), PL_EINVAL);
    ck_assert_int_eq(pl_partition_attach(NULL, "x"), PL_EINVAL);

    for (int m = -5; m <= -3; m++) {
        char name[64];
        partition_name(name, sizeof name, month_start(now, m));
        tu_ok(pl_partition_attach(l, name));
        ck_assert_int_eq(pl_partition_attach(l, name), PL_NOT_FOUND);
        char sql[512];
        /* Guards as before: append-only kept, the detached guard gone, and
         * every index attached to the ledger's index again. */
        snprintf(sql, sizeof sql,
                 "SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = '%s'::regclass "
                 "AND NOT tgisinternal",
                 name);
        char *trig = tu_sql(sql, 0, NULL);
        ck_assert_str_eq(trig, "provenance_append_only");
        free(trig);
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid "
                 "WHERE i.indrelid = '%s'::regclass",
                 name);
        ck_assert_int_eq(tu_sql_ll(sql),
                         tu_sql_ll("SELECT count(*) FROM pg_index WHERE indrelid = 'provenance_ledger'::regclass"));
        char state[6];
        snprintf(sql, sizeof sql, "DELETE FROM %s", name);
        free(tu_sql(sql, 1, state));
        ck_assert_str_eq(state, "PLA01");
    }
    char *after = ledger_checksum();
    ck_assert_str_eq(after, before);
    free(before);
    free(after);
    tu_ok(pl_history(&h, l, "acct_1", NULL, PL_REALTIME));
    ck_assert_uint_eq(pl_result_count(h), hist_before);
    pl_result_free(h);
    tu_ok(pl_partitions_list(&t, l));
    for (size_t r = 0; r < pl_table_rows(t); r++)
        ck_assert_str_eq(pl_table_value(t, r, 3), "true");
    pl_table_free(t);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM detached_partitions"), 0);
    pl_close(l);
}
END_TEST

START_TEST(test_pruning)
{
    pl_ledger *l = tu_open_new(0, 1);
    import_months(l, -4, -2, 20);
    free(tu_sql("ANALYZE provenance_ledger", 0, NULL));
    pl_time now = pl_time_now();
    char from[PL_TIME_BUFSIZE], to[PL_TIME_BUFSIZE], want[64];
    pl_time_format(from, sizeof from, month_start(now, -3));
    pl_time_format(to, sizeof to, month_start(now, -2));
    partition_name(want, sizeof want, month_start(now, -3));
    const char *values[3] = {from, to, NULL};
    struct {
        const char *what, *sql;
    } stmts[] = {{"audit report", pl_sql_registry[PL_SQL_AUDIT].sql},
                 {"dashboard", pl_sql_registry[PL_SQL_DASHBOARD_BASE].sql},
                 {"corrections", pl_sql_registry[PL_SQL_CORRECTIONS].sql}};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        char *plan = explain(stmts[i].sql, i == 2 ? 2 : 3, values);
        fprintf(stderr, "--- plan of the %s over one month:\n%s", stmts[i].what, plan);
        /* Only the month asked for: one partition of the seven. */
        ck_assert_msg(strstr(plan, want) != NULL, "%s does not read %s", stmts[i].what, want);
        ck_assert_int_eq(count_substr(plan, "provenance_ledger_"), count_substr(plan, want));
        free(plan);
    }
    /* The same with one source: the source index, still one partition. */
    values[2] = "import";
    char *plan = explain(pl_sql_registry[PL_SQL_AUDIT].sql, 3, values);
    fprintf(stderr, "--- plan of the audit report of one source over one month:\n%s", plan);
    ck_assert_int_eq(count_substr(plan, "provenance_ledger_"), count_substr(plan, want));
    free(plan);
    /* An open window reads every partition. */
    const char *open_values[3] = {NULL, NULL, NULL};
    plan = explain(pl_sql_registry[PL_SQL_AUDIT].sql, 3, open_values);
    ck_assert_int_ge(count_substr(plan, "provenance_ledger_2"), 7);
    free(plan);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Materialized views                                                        */
/* ------------------------------------------------------------------------ */

static const char *cell(const pl_table *t, size_t row, const char *col)
{
    int c = pl_table_colindex(t, col);
    ck_assert_msg(c >= 0, "no column %s", col);
    return pl_table_value(t, row, (size_t)c);
}

START_TEST(test_refresh_logging)
{
    pl_ledger *l = tu_open_new(0, 1);
    import_months(l, -1, -1, 30);
    insert_now(l, 25, "e");
    pl_table *t = NULL;
    /* Never refreshed: listed, nothing known. */
    tu_ok(pl_view_freshness(&t, l));
    ck_assert_uint_eq(pl_table_rows(t), 2);
    ck_assert_str_eq(cell(t, 0, "view_name"), "provenance_daily_stats");
    ck_assert_str_eq(cell(t, 1, "view_name"), "provenance_latest");
    for (size_t r = 0; r < 2; r++) {
        ck_assert_ptr_null(cell(t, r, "last_refresh_start"));
        ck_assert_ptr_null(cell(t, r, "last_success"));
        ck_assert_ptr_null(cell(t, r, "staleness_seconds"));
    }
    pl_table_free(t);

    tu_ok(pl_refresh_views(l));
    tu_ok(pl_refresh_views(l)); /* the second one concurrently */
    tu_ok(pl_view_freshness(&t, l));
    for (size_t r = 0; r < 2; r++) {
        ck_assert_str_eq(cell(t, r, "last_success"), "true");
        ck_assert_ptr_null(cell(t, r, "last_error"));
        ck_assert_ptr_nonnull(cell(t, r, "last_refresh_start"));
        ck_assert_ptr_nonnull(cell(t, r, "last_refresh_end"));
        ck_assert_int_le(strcmp(cell(t, r, "last_refresh_start"), cell(t, r, "last_refresh_end")), 0);
        ck_assert_ptr_nonnull(cell(t, r, "staleness_seconds"));
    }
    pl_table_free(t);
    /* The views hold what the base table says. */
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM provenance_latest"),
                     tu_sql_ll("SELECT count(*) FROM (SELECT DISTINCT entity_id, field_name FROM provenance_ledger "
                               "WHERE valid_time_start <= now() AND valid_time_end > now()) s"));
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM provenance_latest l WHERE l.id <> (SELECT p.id FROM "
                               "provenance_ledger p WHERE p.entity_id = l.entity_id AND p.field_name = l.field_name "
                               "ORDER BY p.transaction_time DESC, p.id DESC LIMIT 1)"),
                     0);
    ck_assert_int_eq(tu_sql_ll("SELECT sum(change_count) FROM provenance_daily_stats"), 55);
    char *a = tu_sql("SELECT string_agg(format('%s/%s/%s/%s', day, source_type, change_count, affected_entities), ';' "
                     "ORDER BY day, source_type) FROM provenance_daily_stats",
                     0, NULL);
    char *b = tu_sql("SELECT string_agg(format('%s/%s/%s/%s', day, source_type, n, e), ';' ORDER BY day, source_type) "
                     "FROM (SELECT date_trunc('day', transaction_time, 'UTC') AS day, source_type, count(*) AS n, "
                     "count(DISTINCT entity_id) AS e FROM provenance_ledger GROUP BY 1, 2) s",
                     0, NULL);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);

    /* A forced failure: without its unique index the daily view cannot be
     * refreshed concurrently. The other view still refreshes. */
    free(tu_sql("DROP INDEX idx_daily_stats_pk", 0, NULL));
    int rc = pl_refresh_views(l);
    ck_assert_int_eq(rc, PL_EDB);
    ck_assert_msg(strstr(pl_errmsg(), "provenance_daily_stats") != NULL, "%s", pl_errmsg());
    ck_assert_msg(strstr(pl_errmsg(), "concurrently") != NULL, "%s", pl_errmsg());
    tu_ok(pl_view_freshness(&t, l));
    ck_assert_str_eq(cell(t, 0, "last_success"), "false");
    ck_assert_ptr_nonnull(cell(t, 0, "last_error"));
    ck_assert_msg(strstr(cell(t, 0, "last_error"), "concurrently") != NULL, "%s", cell(t, 0, "last_error"));
    /* Its age still counts from the last success. */
    ck_assert_ptr_nonnull(cell(t, 0, "staleness_seconds"));
    ck_assert_str_eq(cell(t, 1, "last_success"), "true");
    ck_assert_ptr_null(cell(t, 1, "last_error"));
    pl_table_free(t);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM mv_refresh_log WHERE NOT last_refresh_success "
                               "AND last_success_end < last_refresh_start"),
                     1);

    free(tu_sql("CREATE UNIQUE INDEX idx_daily_stats_pk ON provenance_daily_stats (day, source_type)", 0, NULL));
    tu_ok(pl_refresh_views(l));
    tu_ok(pl_view_freshness(&t, l));
    ck_assert_str_eq(cell(t, 0, "last_success"), "true");
    ck_assert_ptr_null(cell(t, 0, "last_error"));
    pl_table_free(t);
    ck_assert_int_eq(pl_refresh_views(NULL), PL_EINVAL);
    ck_assert_int_eq(pl_view_freshness(NULL, l), PL_EINVAL);
    pl_close(l);
}
END_TEST

START_TEST(test_staleness)
{
    pl_ledger *l = tu_open_new(0, 0);
    insert_now(l, 3, "s");
    double t0 = tu_now_ms();
    tu_ok(pl_refresh_views(l));
    double t1 = tu_now_ms();
    usleep(1500000); /* by design: the staleness under test is this elapsed time */
    pl_table *t = NULL;
    double t2 = tu_now_ms();
    tu_ok(pl_view_freshness(&t, l));
    double t3 = tu_now_ms();
    /* Since the refresh ended: at least the time since the call returned,
     * at most the time since it was made. */
    for (size_t r = 0; r < 2; r++) {
        const char *s = cell(t, r, "staleness_seconds");
        ck_assert_ptr_nonnull(s);
        double stale_ms = strtod(s, NULL) * 1000.0;
        ck_assert_msg(stale_ms >= t2 - t1 - 1.0 && stale_ms <= t3 - t0 + 1.0, "staleness %.3f ms not in [%.3f, %.3f]",
                      stale_ms, t2 - t1, t3 - t0);
        ck_assert_int_ge(pl_table_int64(t, r, (size_t)pl_table_colindex(t, "staleness_seconds")), 1);
    }
    pl_table_free(t);
    pl_close(l);
}
END_TEST

typedef struct refresher {
    pl_ledger *l;
    int rc;
    char msg[512];
} refresher;

static void *run_refresh(void *arg)
{
    refresher *r = arg;
    r->rc = pl_refresh_views(r->l);
    snprintf(r->msg, sizeof r->msg, "%s", pl_errmsg());
    return NULL;
}


/* Holds the lock a concurrent refresh of provenance_daily_stats needs. */
static PGconn *hold_daily_stats(void)
{
    PGconn *pg = PQconnectdb(getenv("PL_TEST_PG"));
    ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; REFRESH MATERIALIZED VIEW CONCURRENTLY \"%s\".provenance_daily_stats",
             tu_schema());
    PGresult *r = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
    PQclear(r);
    return pg;
}

/* The pid of this schema's refresh once it waits for a lock (polled up to
 * 10 s). */
static long long wait_for_waiting_refresh(void)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
             "AND query LIKE '%%\"%s\".pl_refresh_views()%%'",
             tu_schema());
    PGconn *pg = tu_raw_open();
    long long pid = tu_wait_ll(pg, sql, 0, NULL, 200, 50);
    PQfinish(pg);
    ck_assert_msg(pid != 0, "the refresh never waited for the lock");
    return pid;
}

/* Refreshing is maintenance: not cut by the statement deadline of queries;
 * a refresh that is cancelled all the same is logged as failed. */
START_TEST(test_refresh_slow_and_cancelled)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.statement_timeout_ms = 300;
    pl_ledger *l = tu_open_fresh(&cfg);
    insert_now(l, 3, "r");
    tu_ok(pl_refresh_views(l));

    PGconn *holder = hold_daily_stats();
    refresher r = {l, 0, ""};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, run_refresh, &r), 0);
    wait_for_waiting_refresh();
    usleep(1000000); /* well past the 300 ms deadline */
    PQclear(PQexec(holder, "ROLLBACK"));
    pthread_join(th, NULL);
    ck_assert_msg(r.rc == PL_OK, "refresh -> %d: %s", r.rc, r.msg);

    PQclear(PQexec(holder, "BEGIN"));
    char sql[256];
    snprintf(sql, sizeof sql, "REFRESH MATERIALIZED VIEW CONCURRENTLY \"%s\".provenance_daily_stats", tu_schema());
    PQclear(PQexec(holder, sql));
    ck_assert_int_eq(pthread_create(&th, NULL, run_refresh, &r), 0);
    long long pid = wait_for_waiting_refresh();
    snprintf(sql, sizeof sql, "SELECT pg_cancel_backend(%lld)::int", pid);
    ck_assert_int_eq(tu_sql_ll(sql), 1);
    pthread_join(th, NULL);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    ck_assert_int_eq(r.rc, PL_EDB);
    ck_assert_msg(strstr(r.msg, "57014") != NULL, "%s", r.msg);
    pl_table *t = NULL;
    tu_ok(pl_view_freshness(&t, l));
    ck_assert_str_eq(cell(t, 0, "view_name"), "provenance_daily_stats");
    ck_assert_str_eq(cell(t, 0, "last_success"), "false");
    ck_assert_msg(strstr(cell(t, 0, "last_error"), "[57014]") != NULL, "%s", cell(t, 0, "last_error"));
    ck_assert_str_eq(cell(t, 1, "last_success"), "true");
    pl_table_free(t);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* pg_cron                                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(test_cron_schedule)
{
    pl_ledger *l = tu_open_new(0, 0);
    insert_now(l, 4, "c");
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM cron.job WHERE jobname = 'provledger-refresh-%s'", tu_schema());
    ck_assert_int_eq(tu_sql_ll(sql), 0);
    /* Unscheduling what is not scheduled is fine. */
    tu_ok(pl_refresh_schedule(l, NULL));
    /* pg_cron refuses the expression (SQLSTATE 22023): a bad argument. */
    ck_assert_int_eq(pl_refresh_schedule(l, "not a schedule"), PL_EINVAL);
    ck_assert_msg(strstr(pl_errmsg(), "not a schedule") != NULL, "%s", pl_errmsg());
    ck_assert_int_eq(pl_refresh_schedule(l, ""), PL_EINVAL);
    ck_assert_int_eq(pl_refresh_schedule(NULL, "* * * * *"), PL_EINVAL);

    char *t0 = tu_sql("SELECT clock_timestamp()::text", 0, NULL);
    tu_ok(pl_refresh_schedule(l, "0 3 * * *"));
    tu_ok(pl_refresh_schedule(l, "* * * * *")); /* replaces it */
    ck_assert_int_eq(tu_sql_ll(sql), 1);
    snprintf(sql, sizeof sql, "SELECT command || '|' || schedule FROM cron.job WHERE jobname = 'provledger-refresh-%s'",
             tu_schema());
    char *job = tu_sql(sql, 0, NULL);
    char want[256];
    snprintf(want, sizeof want, "SELECT \"%s\".pl_refresh_views()|* * * * *", tu_schema());
    ck_assert_str_eq(job, want);
    free(job);

    /* pg_cron runs it at the next minute; this process never refreshes. */
    char cond[512];
    snprintf(cond, sizeof cond,
             "SELECT count(*) FROM mv_refresh_log WHERE last_refresh_success AND last_success_end > '%s'", t0);
    long long done = 0;
    double start = tu_now_ms();
    while (tu_now_ms() - start < 80000.0 && (done = tu_sql_ll(cond)) < 2)
        usleep(500000);
    ck_assert_msg(done == 2, "pg_cron did not refresh the views within 80 s");
    fprintf(stderr, "pg_cron refreshed the views after %.1f s\n", (tu_now_ms() - start) / 1000.0);
    ck_assert_int_eq(tu_sql_ll("SELECT count(*) FROM provenance_latest"), 4);
    snprintf(cond, sizeof cond,
             "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid) "
             "WHERE j.jobname = 'provledger-refresh-%s' AND d.status = 'succeeded'",
             tu_schema());
    long long ok = 0;
    for (int i = 0; i < 20 && (ok = tu_sql_ll(cond)) < 1; i++)
        usleep(250000);
    ck_assert_int_ge(ok, 1);

    tu_ok(pl_refresh_schedule(l, NULL));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM cron.job WHERE jobname = 'provledger-refresh-%s'", tu_schema());
    ck_assert_int_eq(tu_sql_ll(sql), 0);
    tu_ok(pl_refresh_schedule(l, NULL));
    free(t0);
    pl_close(l);
}
END_TEST

/* A database without pg_cron or pg_stat_statements. */
START_TEST(test_without_extensions)
{
    char db[64], sql[256];
    snprintf(db, sizeof db, "pl_noext_%ld", (long)getpid());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE template0", db);
    free(tu_sql(sql, 0, NULL));
    pl_config cfg;
    tu_config(&cfg, 0);
    char conninfo[1024];
    snprintf(conninfo, sizeof conninfo, "%s dbname=%s", getenv("PL_TEST_PG"), db);
    cfg.pg_conninfo = conninfo;
    pl_ledger *l = tu_open_cfg(&cfg);
    ck_assert_int_eq(pl_refresh_schedule(l, "* * * * *"), PL_EUNSUPPORTED);
    ck_assert_msg(strstr(pl_errmsg(), "pg_cron") != NULL, "%s", pl_errmsg());
    ck_assert_int_eq(pl_refresh_schedule(l, NULL), PL_EUNSUPPORTED);
    /* The library's own refresh works everywhere. */
    tu_ok(pl_refresh_views(l));
    char *json = NULL;
    tu_ok(pl_health(&json, l));
    json_error_t err;
    json_t *h = json_loads(json, 0, &err);
    ck_assert_msg(h != NULL, "invalid JSON: %s", err.text);
    ck_assert(json_is_null(json_object_get(h, "slow_statements")));
    ck_assert(json_is_string(json_object_get(h, "slow_statements_note")));
    json_decref(h);
    pl_free(json);
    pl_close(l);
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", db);
    free(tu_sql(sql, 0, NULL));
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("ops");
    TCase *tc = tu_tcase("partitions", 120);
    tcase_add_test(tc, test_schema_objects);
    tcase_add_test(tc, test_partitions_ahead);
    tcase_add_test(tc, test_partitions_list_rows);
    tcase_add_test(tc, test_detach_attach);
    tcase_add_test(tc, test_pruning);
    suite_add_tcase(s, tc);
    tc = tu_tcase("views", 120);
    tcase_add_test(tc, test_refresh_logging);
    tcase_add_test(tc, test_staleness);
    tcase_add_test(tc, test_refresh_slow_and_cancelled);
    tcase_add_test(tc, test_without_extensions);
    suite_add_tcase(s, tc);
    tc = tu_tcase("cron", 180);
    tcase_add_test(tc, test_cron_schedule);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
