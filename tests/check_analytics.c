/* Analytics: dashboards equal to the same aggregates computed from the
 * base table (and from what the test wrote), the view path and its
 * staleness, the audit iterator (order, windows, filters, memory bounded by
 * its chunk), metadata search pages, and pl_health, against the real
 * servers. White-box only for the SQL text, so EXPLAIN sees the library's
 * statements. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schema.h"
#include "schema.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
/* The memory bound below is about this library, not ASan's quarantine of
 * freed blocks (256 MB by default): keep the quarantine small here. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=8";
}
#endif

#define MINUTE_US INT64_C(60000000)
#define DAY_US INT64_C(86400000000)

/* EXPLAIN (COSTS OFF) of a library statement with text parameters, in a
 * transaction that first runs setup (may be NULL). */
static char *explain(const char *tmpl, int n, const char *const *values, const char *setup)
{
    char *sql = pl_sql_expand(tmpl, tu_schema());
    size_t len = strlen(sql) + 32;
    char *ex = malloc(len);
    snprintf(ex, len, "EXPLAIN (COSTS OFF) %s", sql);
    free(sql);
    PGconn *pg = PQconnectdb(getenv("PL_TEST_PG"));
    ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
    PQclear(PQexec(pg, "BEGIN"));
    if (setup)
        PQclear(PQexec(pg, setup));
    PGresult *r = PQexecParams(pg, ex, n, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "EXPLAIN failed: %s", PQerrorMessage(pg));
    char *plan = tu_result_lines(r);
    PQclear(r);
    PQfinish(pg);
    free(ex);
    return plan;
}

/* ------------------------------------------------------------------------ */
/* Dashboards                                                                */
/* ------------------------------------------------------------------------ */

/* What the test wrote, to compute the expected aggregates itself. */
typedef struct written {
    pl_time tt;
    char entity[32];
    char source[16];
} written;

#define MAX_WRITTEN 1024
static written w[MAX_WRITTEN];
static size_t nw;

static void write_history(pl_ledger *l, pl_time today)
{
    static const char *sources[] = {"import", "api", "user_correction"};
    pl_change ch[64];
    pl_time tt[64];
    pl_receipt rc[64];
    nw = 0;
    /* Days -6..-1: a varying number of records, sources and entities. */
    for (int d = -6; d <= -1; d++) {
        int n = 10 + (d + 6) * 7;
        ck_assert_int_le(n, 64);
        for (int i = 0; i < n; i++) {
            written *x = &w[nw + (size_t)i];
            snprintf(x->entity, sizeof x->entity, "txn_%d", (i * 7 + d * 3 + 100) % 13);
            snprintf(x->source, sizeof x->source, "%s", sources[(i + d + 6) % 3]);
            x->tt = today + d * DAY_US + (pl_time)i * 17 * MINUTE_US;
            pl_change c = PL_CHANGE_INIT;
            c.entity_id = x->entity;
            c.field_name = (i % 2) ? "amount" : "merchant";
            c.new_value = "1";
            c.source_type = x->source;
            c.valid_from = x->tt;
            ch[i] = c;
            tt[i] = x->tt;
        }
        tu_ok(pl_import_batch(rc, l, ch, tt, (size_t)n));
        nw += (size_t)n;
    }
    /* Today, with server-assigned times. */
    for (int i = 0; i < 9; i++) {
        written *x = &w[nw];
        snprintf(x->entity, sizeof x->entity, "now_%d", i % 4);
        snprintf(x->source, sizeof x->source, "%s", sources[i % 2]);
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = x->entity;
        c.field_name = "status";
        c.new_value = "\"ok\"";
        c.source_type = x->source;
        pl_receipt r;
        tu_ok(pl_insert(&r, l, &c));
        x->tt = r.transaction_time;
        nw++;
    }
}

static int floor_day(pl_time t)
{
    return (int)(t >= 0 ? t / DAY_US : -((-t + DAY_US - 1) / DAY_US));
}

/* The expected dashboard over [from, to) computed from `w`. */
static char *expected_changes(pl_time from, pl_time to, const char *source)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    s[0] = '\0';
    int dmin = floor_day(from), dmax = floor_day(to - 1);
    static const char *order[] = {"api", "import", "user_correction"}; /* byte order */
    for (int d = dmin; d <= dmax; d++)
        for (int k = 0; k < 3; k++) {
            if (source && strcmp(source, order[k]) != 0)
                continue;
            long n = 0, e = 0;
            const char *seen[MAX_WRITTEN];
            for (size_t i = 0; i < nw; i++) {
                if (w[i].tt < from || w[i].tt >= to || floor_day(w[i].tt) != d || strcmp(w[i].source, order[k]))
                    continue;
                n++;
                int dup = 0;
                for (long j = 0; j < e; j++)
                    dup |= strcmp(seen[j], w[i].entity) == 0;
                if (!dup)
                    seen[e++] = w[i].entity;
            }
            if (!n)
                continue;
            char day[PL_TIME_BUFSIZE];
            pl_time_format(day, sizeof day, (pl_time)d * DAY_US);
            if (len + 128 > cap)
                s = realloc(s, cap *= 2);
            len += (size_t)sprintf(s + len, "%s/%s/%ld/%ld;", day, order[k], n, e);
        }
    return s;
}

/* The same aggregates computed with SQL from the base table. */
static char *sql_changes(pl_time from, pl_time to)
{
    char f[PL_TIME_BUFSIZE], t[PL_TIME_BUFSIZE], sql[1024];
    pl_time_format(f, sizeof f, from);
    pl_time_format(t, sizeof t, to);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(format('%%s/%%s/%%s/%%s', to_char(day AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), source_type, n, e), ';' ORDER BY day, source_type) || ';', '') "
             "FROM (SELECT date_trunc('day', transaction_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day, "
             "source_type, count(*) AS n, count(DISTINCT entity_id) AS e FROM provenance_ledger "
             "WHERE transaction_time >= '%s' AND transaction_time < '%s' GROUP BY 1, 2) s",
             f, t);
    return tu_sql(sql, 0, NULL);
}

static void assert_changes(pl_ledger *l, pl_time from, pl_time to, const char *source, unsigned flags,
                           int origin)
{
    pl_table *t = NULL;
    tu_ok(pl_dashboard_changes(&t, l, from, to, source, flags));
    ck_assert_int_eq(pl_table_origin(t), origin);
    ck_assert_uint_eq(pl_table_cols(t), 4);
    ck_assert_str_eq(pl_table_colname(t, 0), "day");
    ck_assert_str_eq(pl_table_colname(t, 1), "source_type");
    ck_assert_str_eq(pl_table_colname(t, 2), "changes");
    ck_assert_str_eq(pl_table_colname(t, 3), "entities");
    char *got = tu_table_text(t), *want = expected_changes(from, to, source);
    ck_assert_str_eq(got, want);
    if (!source) {
        char *sql = sql_changes(from, to);
        ck_assert_str_eq(got, sql);
        free(sql);
    }
    free(got);
    free(want);
    pl_table_free(t);
}

START_TEST(test_dashboard_changes)
{
    pl_ledger *l = tu_open_new(0, 1);
    pl_time now = pl_time_now();
    pl_time today = now - now % DAY_US;
    write_history(l, today);
    pl_time end = pl_time_now() + MINUTE_US;
    assert_changes(l, today - 10 * DAY_US, end, NULL, 0, PL_ORIGIN_PRIMARY);
    assert_changes(l, today - 10 * DAY_US, end, "import", 0, PL_ORIGIN_PRIMARY);
    assert_changes(l, today - 4 * DAY_US, today - 2 * DAY_US, NULL, 0, PL_ORIGIN_PRIMARY);
    /* Any instants, not only midnights. */
    assert_changes(l, today - 4 * DAY_US + 95 * MINUTE_US, today - 2 * DAY_US + 301 * MINUTE_US, NULL, 0,
                   PL_ORIGIN_PRIMARY);
    assert_changes(l, today - 4 * DAY_US + 95 * MINUTE_US, today - 2 * DAY_US + 301 * MINUTE_US, "api", 0,
                   PL_ORIGIN_PRIMARY);
    /* Open ends and "now". */
    pl_table *t = NULL, *u = NULL;
    tu_ok(pl_dashboard_changes(&t, l, PL_TIME_ANY, PL_TIME_ANY, NULL, 0));
    tu_ok(pl_dashboard_changes(&u, l, today - 10 * DAY_US, PL_TIME_NOW, NULL, 0));
    char *a = tu_table_text(t), *b = tu_table_text(u), *want = expected_changes(today - 10 * DAY_US, end, NULL);
    ck_assert_str_eq(a, want);
    ck_assert_str_eq(b, want);
    free(a);
    free(b);
    free(want);
    pl_table_free(t);
    pl_table_free(u);
    tu_ok(pl_dashboard_changes(&t, l, today - 100 * DAY_US, today - 50 * DAY_US, NULL, 0));
    ck_assert_uint_eq(pl_table_rows(t), 0);
    pl_table_free(t);

    /* Stale answers are opt-in: never refreshed, the base table answers. */
    assert_changes(l, today - 10 * DAY_US, end, NULL, PL_ALLOW_STALE, PL_ORIGIN_PRIMARY);
    double t0 = tu_now_ms();
    tu_ok(pl_refresh_views(l));
    double t1 = tu_now_ms();
    usleep(300000); /* by design: the view must age measurably before it is asked */
    double t2 = tu_now_ms();
    tu_ok(pl_dashboard_changes(&t, l, today - 10 * DAY_US, PL_TIME_NOW, NULL, PL_ALLOW_STALE));
    double t3 = tu_now_ms();
    ck_assert_int_eq(pl_table_origin(t), PL_ORIGIN_VIEW);
    double stale_ms = (double)pl_table_staleness_us(t) / 1000.0;
    ck_assert_msg(stale_ms >= t2 - t1 - 1.0 && stale_ms <= t3 - t0 + 1.0, "staleness %.3f ms not in [%.3f, %.3f]",
                  stale_ms, t2 - t1, t3 - t0);
    a = tu_table_text(t);
    want = expected_changes(today - 10 * DAY_US, end, NULL);
    ck_assert_str_eq(a, want);
    free(want);
    pl_table_free(t);
    assert_changes(l, today - 10 * DAY_US, end, NULL, 0, PL_ORIGIN_PRIMARY);
    assert_changes(l, today - 5 * DAY_US, today - 2 * DAY_US, "import", PL_ALLOW_STALE, PL_ORIGIN_VIEW);
    assert_changes(l, today - 5 * DAY_US, today - 2 * DAY_US, NULL, PL_ALLOW_STALE, PL_ORIGIN_VIEW);

    /* After more writes the view lags (that is what the caller accepted);
     * the exact paths see them. */
    pl_change c = PL_CHANGE_INIT;
    c.entity_id = "late_1";
    c.field_name = "f";
    c.new_value = "2";
    c.source_type = "api";
    pl_receipt r;
    tu_ok(pl_insert(&r, l, &c));
    written *x = &w[nw++];
    snprintf(x->entity, sizeof x->entity, "late_1");
    snprintf(x->source, sizeof x->source, "api");
    x->tt = r.transaction_time;
    tu_ok(pl_dashboard_changes(&t, l, today - 10 * DAY_US, PL_TIME_NOW, NULL, PL_ALLOW_STALE));
    ck_assert_int_eq(pl_table_origin(t), PL_ORIGIN_VIEW);
    b = tu_table_text(t);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    pl_table_free(t);
    end = pl_time_now() + MINUTE_US;
    assert_changes(l, today - 10 * DAY_US, end, NULL, 0, PL_ORIGIN_PRIMARY);
    assert_changes(l, today - 10 * DAY_US, end, NULL, PL_ALLOW_STALE | PL_REALTIME, PL_ORIGIN_PRIMARY);
    /* Outside the view's 90 days, or not whole days: the base table. */
    assert_changes(l, today - 100 * DAY_US, end, NULL, PL_ALLOW_STALE, PL_ORIGIN_PRIMARY);
    assert_changes(l, today - 5 * DAY_US + MINUTE_US, end, NULL, PL_ALLOW_STALE, PL_ORIGIN_PRIMARY);
    assert_changes(l, today - 5 * DAY_US, today - DAY_US - MINUTE_US, NULL, PL_ALLOW_STALE, PL_ORIGIN_PRIMARY);

    /* Arguments. */
    ck_assert_int_eq(pl_dashboard_changes(&t, l, today, today - DAY_US, NULL, 0), PL_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(pl_dashboard_changes(&t, l, today - DAY_US, today, NULL, 0x80), PL_EINVAL);
    ck_assert_int_eq(pl_dashboard_changes(&t, l, today - DAY_US, today, "", 0), PL_EINVAL);
    ck_assert_int_eq(pl_dashboard_changes(&t, l, PL_TIME_MAX + 1, today, NULL, 0), PL_EINVAL);
    ck_assert_int_eq(pl_dashboard_changes(NULL, l, today - DAY_US, today, NULL, 0), PL_EINVAL);
    ck_assert_int_eq(pl_dashboard_changes(&t, NULL, today - DAY_US, today, NULL, 0), PL_EINVAL);
    pl_close(l);
}
END_TEST

START_TEST(test_dashboard_corrections)
{
    pl_ledger *l = tu_open_new(0, 0);
    pl_time now = pl_time_now();
    struct {
        const char *entity, *field, *meta;
        pl_time vfrom;
        int times;
    } rows[] = {
        {"txn_1", "amount", NULL, now - 3600 * INT64_C(1000000), 3},
        {"txn:2", "amount", NULL, now - 7200 * INT64_C(1000000), 1},
        {"plain", "name", NULL, now - DAY_US, 2},
        {"txn_3", "merchant", "{\"entity_type\": \"payment\"}", now - DAY_US, 2},
        {"_lead", "x", NULL, now - DAY_US, 1},
        /* Not corrections: valid from the transaction time, or later. */
        {"txn_9", "amount", NULL, PL_TIME_NOW, 5},
        {"txn_8", "amount", NULL, now + DAY_US, 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        for (int k = 0; k < rows[i].times; k++) {
            pl_change c = PL_CHANGE_INIT;
            c.entity_id = rows[i].entity;
            c.field_name = rows[i].field;
            c.new_value = "0";
            c.source_type = "user_correction";
            c.metadata = rows[i].meta;
            c.valid_from = rows[i].vfrom;
            tu_ok(pl_insert(NULL, l, &c));
        }
    pl_table *t = NULL;
    tu_ok(pl_dashboard_corrections(&t, l, now - DAY_US, PL_TIME_NOW, 0));
    ck_assert_str_eq(pl_table_colname(t, 0), "entity_type");
    ck_assert_str_eq(pl_table_colname(t, 1), "field_name");
    ck_assert_str_eq(pl_table_colname(t, 2), "corrections");
    char *got = tu_table_text(t);
    ck_assert_str_eq(got, "txn/amount/4;payment/merchant/2;plain/name/2;/x/1;");
    pl_table_free(t);
    char *sql = tu_sql("SELECT string_agg(format('%s/%s/%s', et, field_name, n), ';' ORDER BY n DESC, et COLLATE \"C\", "
                       "field_name) || ';' FROM (SELECT CASE WHEN metadata ? 'entity_type' THEN metadata->>'entity_type' "
                       "ELSE split_part(split_part(entity_id, '_', 1), ':', 1) END AS et, field_name, count(*) AS n "
                       "FROM provenance_ledger WHERE valid_time_start < transaction_time GROUP BY 1, 2) s",
                       0, NULL);
    ck_assert_str_eq(got, sql);
    free(got);
    free(sql);
    tu_ok(pl_dashboard_corrections(&t, l, now - 2 * DAY_US, now - DAY_US, PL_ALLOW_STALE));
    ck_assert_uint_eq(pl_table_rows(t), 0);
    ck_assert_int_eq(pl_table_origin(t), PL_ORIGIN_PRIMARY);
    pl_table_free(t);
    ck_assert_int_eq(pl_dashboard_corrections(&t, l, now, now - 1, 0), PL_EINVAL);
    ck_assert_int_eq(pl_dashboard_corrections(NULL, l, now - 1, now, 0), PL_EINVAL);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The audit iterator                                                        */
/* ------------------------------------------------------------------------ */

START_TEST(test_audit_iterator)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 1;
    cfg.pool_wait_timeout_ms = 3000;
    pl_ledger *l = tu_open_fresh(&cfg);
    enum { N = 2500, BATCH = 500 };
    static pl_receipt rec[N];
    static char ent[N][24];
    for (int b = 0; b < N / BATCH; b++) {
        pl_change ch[BATCH];
        for (int i = 0; i < BATCH; i++) {
            int k = b * BATCH + i;
            snprintf(ent[k], sizeof ent[k], "e%d", k % 37);
            pl_change c = PL_CHANGE_INIT;
            c.entity_id = ent[k];
            c.field_name = "f";
            c.new_value = "1";
            c.source_type = (k % 2) ? "odd" : "even";
            c.change_reason = (k % 5) ? "because" : NULL;
            ch[i] = c;
        }
        tu_ok(pl_insert_batch(rec + b * BATCH, l, ch, BATCH));
    }
    /* Everything, in (transaction_time, id) order, each record once. */
    pl_iter *it = NULL;
    tu_ok(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
    const pl_record *r;
    int rc, n = 0;
    pl_time last_tt = PL_TIME_MIN;
    int64_t last_id = -1;
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    /* Ids are unique but not in array order within a batch. */
    int64_t min_id = INT64_MAX, max_id = 0;
    for (int k = 0; k < N; k++) {
        min_id = rec[k].id < min_id ? rec[k].id : min_id;
        max_id = rec[k].id > max_id ? rec[k].id : max_id;
    }
    ck_assert_int_eq(max_id - min_id, N - 1);
    static int index_of[N];
    for (int k = 0; k < N; k++)
        index_of[rec[k].id - min_id] = k;
    while ((rc = pl_iter_next(&r, it)) == PL_OK) {
        ck_assert(r->transaction_time > last_tt || (r->transaction_time == last_tt && r->id > last_id));
        last_tt = r->transaction_time;
        last_id = r->id;
        ck_assert(r->id >= min_id && r->id <= max_id);
        int k = index_of[r->id - min_id];
        ck_assert(rec[k].id == r->id && !seen[k]);
        seen[k] = 1;
        ck_assert_str_eq(r->entity_id, ent[k]);
        ck_assert_int_eq(r->transaction_time, rec[k].transaction_time);
        ck_assert_str_eq(r->source_type, (k % 2) ? "odd" : "even");
        if (k % 5)
            ck_assert_str_eq(r->change_reason, "because");
        else
            ck_assert_ptr_null(r->change_reason);
        ck_assert_str_eq(r->metadata, "{}");
        n++;
    }
    ck_assert_int_eq(rc, PL_ITEROVER);
    ck_assert_int_eq(n, N);
    ck_assert_int_eq(pl_iter_next(&r, it), PL_ITEROVER);
    ck_assert_ptr_null(r);
    /* Drained: the connection is back in the pool already. */
    pl_result *cur = NULL;
    ck_assert_int_eq(pl_current(&cur, l, "e1", "f", 0), PL_OK);
    pl_result_free(cur);
    pl_iter_free(it);

    /* One source; a window of transaction times. */
    tu_ok(pl_audit_open(&it, l, "odd", PL_TIME_ANY, PL_TIME_NOW));
    n = 0;
    while ((rc = pl_iter_next(&r, it)) == PL_OK) {
        ck_assert_str_eq(r->source_type, "odd");
        n++;
    }
    ck_assert_int_eq(rc, PL_ITEROVER);
    ck_assert_int_eq(n, N / 2);
    pl_iter_free(it);
    pl_time from = rec[100].transaction_time, to = rec[2000].transaction_time;
    int want = 0;
    for (int k = 0; k < N; k++)
        want += rec[k].transaction_time >= from && rec[k].transaction_time < to;
    tu_ok(pl_audit_open(&it, l, NULL, from, to));
    n = 0;
    while ((rc = pl_iter_next(&r, it)) == PL_OK) {
        ck_assert(r->transaction_time >= from && r->transaction_time < to);
        n++;
    }
    ck_assert_int_eq(rc, PL_ITEROVER);
    ck_assert_int_eq(n, want);
    ck_assert_int_gt(want, 1000);
    pl_iter_free(it);

    /* Freed half-way: the transaction ends and the connection returns. */
    tu_ok(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
    for (int i = 0; i < 1500; i++)
        tu_ok(pl_iter_next(&r, it));
    pl_iter_free(it);
    ck_assert_int_eq(pl_current(&cur, l, "e1", "f", 0), PL_OK);
    pl_result_free(cur);
    /* While the iterator runs on a pool of one, point calls keep their
     * connection (the long call got one of its own). */
    tu_ok(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
    tu_ok(pl_iter_next(&r, it));
    ck_assert_int_eq(pl_current(&cur, l, "e1", "f", 0), PL_OK);
    pl_result_free(cur);
    pl_iter_free(it);

    /* Nothing in the window. */
    tu_ok(pl_audit_open(&it, l, "nobody", PL_TIME_ANY, PL_TIME_ANY));
    ck_assert_int_eq(pl_iter_next(&r, it), PL_ITEROVER);
    ck_assert_int_eq(pl_iter_next(&r, it), PL_ITEROVER);
    pl_iter_free(it);
    pl_iter_free(NULL);

    /* Arguments. */
    ck_assert_int_eq(pl_audit_open(&it, l, NULL, to, from), PL_EINVAL);
    ck_assert_ptr_null(it);
    ck_assert_int_eq(pl_audit_open(&it, l, "", PL_TIME_ANY, PL_TIME_ANY), PL_EINVAL);
    ck_assert_int_eq(pl_audit_open(&it, l, NULL, PL_TIME_MIN - 1, PL_TIME_ANY), PL_EINVAL);
    ck_assert_int_eq(pl_audit_open(NULL, l, NULL, PL_TIME_ANY, PL_TIME_ANY), PL_EINVAL);
    ck_assert_int_eq(pl_audit_open(&it, NULL, NULL, PL_TIME_ANY, PL_TIME_ANY), PL_EINVAL);
    ck_assert_int_eq(pl_iter_next(NULL, it), PL_EINVAL);
    ck_assert_int_eq(pl_iter_next(&r, NULL), PL_EINVAL);
    pl_close(l);
}
END_TEST

/* kB of a /proc/self/status field. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atol(line + n + 1);
    fclose(f);
    return v;
}

/* The iterator asks for its next chunk before handing out the current
 * one (db/cursor.c). Freed while that chunk is on its way, it must collect
 * it and give its connection back clean, not dropped, and the next report
 * on that connection must read its own rows, not the stale chunk; a
 * backend killed mid-stream is an exact error, and the handle recovers. */
static void insert_rows(pl_ledger *l, int n)
{
    enum { BATCH = 500 };
    static char ent[BATCH][24];
    for (int b = 0; b < n / BATCH; b++) {
        pl_change ch[BATCH];
        pl_receipt rec[BATCH];
        for (int i = 0; i < BATCH; i++) {
            snprintf(ent[i], sizeof ent[i], "p%d", (b * BATCH + i) % 41);
            ch[i] = tu_change(ent[i], "f", "1");
        }
        tu_ok(pl_insert_batch(rec, l, ch, BATCH));
    }
}

/* Rows left in it; in audit order unless any_order (history). */
static int count_rows(pl_iter *it, int *rc, int any_order)
{
    const pl_record *r;
    int n = 0;
    pl_time last_tt = PL_TIME_MIN;
    int64_t last_id = -1;
    while ((*rc = pl_iter_next(&r, it)) == PL_OK) {
        ck_assert(any_order || r->transaction_time > last_tt ||
                  (r->transaction_time == last_tt && r->id > last_id));
        last_tt = r->transaction_time;
        last_id = r->id;
        n++;
    }
    return n;
}

START_TEST(test_iter_prefetch_closed_early)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 1;
    cfg.pool_wait_timeout_ms = 3000;
    pl_ledger *l = tu_open_fresh(&cfg);
    enum { N = 3500 };
    insert_rows(l, N);
    int rc;
    pl_iter *it = NULL;
    /* Warm: the heavy connection exists, its counters settle. */
    tu_ok(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
    ck_assert_int_eq(count_rows(it, &rc, 0), N);
    ck_assert_int_eq(rc, PL_ITEROVER);
    pl_iter_free(it);
    pl_stats_info before, after;
    tu_ok(pl_stats(&before, l, sizeof before));
    for (int stop = 1; stop <= 2001; stop += 1000) {
        /* stop rows read: chunk 1 (and 2) in hand, the next asked for. */
        tu_ok(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
        const pl_record *r;
        for (int i = 0; i < stop; i++)
            tu_ok(pl_iter_next(&r, it));
        pl_iter_free(it);
        /* The same connection (a pool of one) serves the next report: all
         * its rows, in order, none of the abandoned cursor's. */
        tu_ok(pl_history_open(&it, l, "p3", "f", 0));
        int h = count_rows(it, &rc, 1);
        ck_assert_int_eq(rc, PL_ITEROVER);
        ck_assert_int_eq(h, (N + 40 - 3) / 41);
        pl_iter_free(it);
        tu_ok(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
        ck_assert_int_eq(count_rows(it, &rc, 0), N);
        ck_assert_int_eq(rc, PL_ITEROVER);
        pl_iter_free(it);
    }
    /* Given back clean each time: never closed and reopened. */
    tu_ok(pl_stats(&after, l, sizeof after));
    ck_assert_uint_eq(after.reconnects, before.reconnects);
    pl_close(l);
}
END_TEST

START_TEST(test_iter_prefetch_backend_killed)
{
    char app[64], conninfo[512], sql[160];
    snprintf(app, sizeof app, "pl_prefetch_%ld", (long)getpid());
    snprintf(conninfo, sizeof conninfo, "%s application_name=%s", getenv("PL_TEST_PG"), app);
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pg_conninfo = conninfo;
    cfg.pool_size = 1;
    cfg.pool_wait_timeout_ms = 3000;
    pl_ledger *l = tu_open_fresh(&cfg);
    enum { N = 3500 };
    insert_rows(l, N);
    pl_iter *it = NULL;
    tu_ok(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
    const pl_record *r;
    tu_ok(pl_iter_next(&r, it));
    /* Every backend of this ledger: the iterator's is the one in a
     * transaction. */
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '%s'",
             app);
    ck_assert_int_ge(tu_sql_ll(sql), 1);
    int rc, n = 1 + count_rows(it, &rc, 0);
    /* Rows already received may come; the end is an error, not the end. */
    ck_assert_int_lt(n, N);
    ck_assert_int_lt(rc, 0);
    ck_assert_int_ne(rc, PL_ITEROVER);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "PostgreSQL"));
    ck_assert_int_eq(pl_iter_next(&r, it), rc); /* it keeps saying so */
    pl_iter_free(it);
    /* The handle recovers: the next report reads everything. */
    tu_ok(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
    ck_assert_int_eq(count_rows(it, &rc, 0), N);
    ck_assert_int_eq(rc, PL_ITEROVER);
    pl_iter_free(it);
    pl_close(l);
}
END_TEST

START_TEST(test_audit_memory_bounded)
{
    pl_ledger *l = tu_open_new(0, 0);
    enum { N = 50000 };
    /* 50,000 records of 4 kB values: a 200 MB report, written with SQL. */
    free(tu_sql("INSERT INTO provenance_ledger (entity_id, field_name, new_value, valid_time_start, source_type) "
                "SELECT 'mem_' || i, 'blob', to_jsonb(repeat(md5(i::text), 128)), now(), 'memtest' "
                "FROM generate_series(1, 50000) i",
                0, NULL));
    /* Peak resident memory from here on, against the report's size. */
    FILE *f = fopen("/proc/self/clear_refs", "w");
    ck_assert_ptr_nonnull(f);
    fputs("5", f);
    fclose(f);
    long base_kb = status_kb("VmRSS");
    pl_iter *it = NULL;
    tu_ok(pl_audit_open(&it, l, "memtest", PL_TIME_ANY, PL_TIME_ANY));
    const pl_record *r;
    tu_ok(pl_iter_next(&r, it));
    size_t bytes = strlen(r->new_value);
    int n = 1, rc;
    int64_t last_id = r->id;
    while ((rc = pl_iter_next(&r, it)) == PL_OK) {
        ck_assert_int_gt(r->id, last_id);
        last_id = r->id;
        bytes += strlen(r->new_value);
        n++;
    }
    ck_assert_int_eq(rc, PL_ITEROVER);
    ck_assert_int_eq(n, N);
    long peak_kb = status_kb("VmHWM");
    fprintf(stderr, "audit of %d records, %zu MB of values: peak resident growth %ld kB\n", n, bytes >> 20,
            peak_kb - base_kb);
    ck_assert_uint_ge(bytes, (size_t)190 << 20);
    /* A chunk of 1000 records is ~4 MB (twice: libpq's rows and ours);
     * the whole report would be 200 MB. */
    ck_assert_msg(peak_kb - base_kb < 48 * 1024, "resident memory grew by %ld kB", peak_kb - base_kb);
    pl_iter_free(it);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Metadata search                                                           */
/* ------------------------------------------------------------------------ */

START_TEST(test_search_metadata)
{
    pl_ledger *l = tu_open_new(0, 0);
    /* 20,000 records, 50 of them in batch b1. */
    free(tu_sql("INSERT INTO provenance_ledger (entity_id, field_name, new_value, valid_time_start, source_type, metadata) "
                "SELECT 's_' || i, 'f', '1', now(), 'import', jsonb_build_object('import_batch_id', "
                "CASE WHEN i % 400 = 0 THEN 'b1' ELSE 'b' || (i % 97 + 2) END, 'n', i) "
                "FROM generate_series(1, 20000) i",
                0, NULL));
    free(tu_sql("ANALYZE provenance_ledger", 0, NULL));
    const char *q = "{\"import_batch_id\": \"b1\"}";
    long long total = tu_sql_ll("SELECT count(*) FROM provenance_ledger WHERE metadata @> '{\"import_batch_id\": \"b1\"}'");
    ck_assert_int_eq(total, 50);

    /* The GIN index answers, for the first page and the next ones. */
    const char *v1[2] = {q, "7"};
    char *plan = explain(pl_sql_registry[PL_SQL_SEARCH_FIRST].sql, 2, v1, pl_sql_registry[PL_SQL_SEARCH_SETUP].sql);
    fprintf(stderr, "--- plan of a metadata search page:\n%s", plan);
    ck_assert_msg(strstr(plan, "Bitmap Index Scan on") && strstr(plan, "metadata_idx"), "no GIN scan:\n%s", plan);
    free(plan);
    char now[PL_TIME_BUFSIZE];
    pl_time_format(now, sizeof now, pl_time_now());
    const char *v2[4] = {q, "7", now, "1000000"};
    plan = explain(pl_sql_registry[PL_SQL_SEARCH_NEXT].sql, 4, v2, pl_sql_registry[PL_SQL_SEARCH_SETUP].sql);
    ck_assert_msg(strstr(plan, "Bitmap Index Scan on") && strstr(plan, "metadata_idx"), "no GIN scan:\n%s", plan);
    free(plan);

    for (size_t limit = 7; limit <= 10; limit += 3) {
        /* 7: pages of 7 and a short last one; 10: the last page is full
         * and still says it is the last. */
        char *cursor = NULL;
        int pages = 0, got = 0;
        static unsigned char seen[20001];
        memset(seen, 0, sizeof seen);
        pl_time last_tt = PL_TIME_MAX;
        int64_t last_id = INT64_MAX;
        do {
            pl_result *r = NULL;
            char *next = NULL;
            tu_ok(pl_search_metadata(&r, &next, l, q, cursor, limit));
            pages++;
            ck_assert_uint_le(pl_result_count(r), limit);
            if (next)
                ck_assert_uint_eq(pl_result_count(r), limit);
            for (size_t i = 0; i < pl_result_count(r); i++) {
                const pl_record *x = pl_result_get(r, i);
                ck_assert(x->transaction_time < last_tt || (x->transaction_time == last_tt && x->id < last_id));
                last_tt = x->transaction_time;
                last_id = x->id;
                ck_assert_msg(strstr(x->metadata, "\"b1\"") != NULL, "%s", x->metadata);
                int k = strcmp(x->entity_id, "s_late") == 0 ? 0 : atoi(x->entity_id + 2);
                ck_assert(k >= 0 && k <= 20000 && !seen[k]);
                ck_assert(k > 0 || limit == 10);
                seen[k] = 1;
                got++;
            }
            pl_result_free(r);
            if (pages == 1 && limit == 7) {
                /* A newer match does not shift the pages already cut. */
                pl_change c = PL_CHANGE_INIT;
                c.entity_id = "s_late";
                c.field_name = "f";
                c.new_value = "2";
                c.source_type = "import";
                c.metadata = q;
                tu_ok(pl_insert(NULL, l, &c));
            }
            pl_free(cursor);
            cursor = next;
        } while (cursor);
        ck_assert_int_eq(got, 50 + (limit == 10));
        ck_assert_int_eq(pages, limit == 7 ? 8 : 6);
    }
    /* Fewer matches than a page: one page, no cursor. */
    pl_result *r = NULL;
    char *next = (char *)"x";
    tu_ok(pl_search_metadata(&r, &next, l, "{\"n\": 400}", NULL, 100));
    ck_assert_uint_eq(pl_result_count(r), 1);
    ck_assert_ptr_null(next);
    pl_result_free(r);
    tu_ok(pl_search_metadata(&r, NULL, l, "{\"import_batch_id\": \"none\"}", NULL, 5));
    ck_assert_uint_eq(pl_result_count(r), 0);
    pl_result_free(r);

    /* Garbage cursors, and cursors of another query, are refused. */
    tu_ok(pl_search_metadata(&r, &next, l, q, NULL, 3));
    ck_assert_ptr_nonnull(next);
    pl_result_free(r);
    const char *bad[] = {"", "garbage", "v1:", "v1:1:2:", "v1:x:2:0000000000000000", "v2:1:2:0000000000000000",
                         "v1:1:2:0000000000000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(pl_search_metadata(&r, NULL, l, q, bad[i], 3), PL_EINVAL);
        ck_assert_ptr_null(r);
    }
    ck_assert_int_eq(pl_search_metadata(&r, NULL, l, "{\"n\": 1}", next, 3), PL_EINVAL);
    char *tampered = strdup(next);
    tampered[3] = tampered[3] == '1' ? '2' : '1';
    ck_assert_int_eq(pl_search_metadata(&r, NULL, l, q, tampered, 3), PL_EINVAL);
    free(tampered);
    tu_ok(pl_search_metadata(&r, NULL, l, q, next, 3));
    ck_assert_uint_eq(pl_result_count(r), 3);
    pl_result_free(r);
    pl_free(next);
    /* Queries must be JSON objects; limits 1..10000. */
    ck_assert_int_eq(pl_search_metadata(&r, NULL, l, "[1]", NULL, 3), PL_EINVAL);
    ck_assert_int_eq(pl_search_metadata(&r, NULL, l, "{\"a\": ", NULL, 3), PL_EINVAL);
    ck_assert_int_eq(pl_search_metadata(&r, NULL, l, "{\"a\": 1, \"a\": 2}", NULL, 3), PL_EINVAL);
    ck_assert_int_eq(pl_search_metadata(&r, NULL, l, NULL, NULL, 3), PL_EINVAL);
    ck_assert_int_eq(pl_search_metadata(&r, NULL, l, q, NULL, 0), PL_EINVAL);
    ck_assert_int_eq(pl_search_metadata(&r, NULL, l, q, NULL, 10001), PL_EINVAL);
    ck_assert_int_eq(pl_search_metadata(NULL, NULL, l, q, NULL, 3), PL_EINVAL);
    ck_assert_int_eq(pl_search_metadata(&r, NULL, NULL, q, NULL, 3), PL_EINVAL);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Health                                                                    */
/* ------------------------------------------------------------------------ */

static json_t *health(pl_ledger *l)
{
    char *text = NULL;
    tu_ok(pl_health(&text, l));
    json_error_t err;
    json_t *h = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    ck_assert_msg(h != NULL, "pl_health is not JSON: %s\n%s", err.text, text);
    pl_free(text);
    ck_assert(json_is_object(h));
    return h;
}

/* The first alert named `name` whose message contains `about`. */
static json_t *alert(json_t *h, const char *name, const char *about)
{
    json_t *alerts = json_object_get(h, "alerts"), *a;
    size_t i;
    ck_assert(json_is_array(alerts));
    json_array_foreach(alerts, i, a) {
        const char *n = json_string_value(json_object_get(a, "name"));
        const char *m = json_string_value(json_object_get(a, "message"));
        ck_assert(n && m);
        if (strcmp(n, name) == 0 && (!about || strstr(m, about)))
            return a;
    }
    return NULL;
}

START_TEST(test_health)
{
    pl_ledger *l = tu_open_new(0, 0);
    for (int i = 0; i < 5; i++) {
        char e[16];
        snprintf(e, sizeof e, "h%d", i);
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = e;
        c.field_name = "f";
        c.new_value = "1";
        c.source_type = "api";
        tu_ok(pl_insert(NULL, l, &c));
        pl_result *r = NULL;
        tu_ok(pl_current(&r, l, e, "f", 0));
        pl_result_free(r);
    }
    json_t *h = health(l);
    const char *keys[] = {"views", "partitions", "indexes", "slow_statements", "client", "alerts"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(json_object_get(h, keys[i]) != NULL, "no %s", keys[i]);
    ck_assert_uint_eq(json_array_size(json_object_get(h, "views")), 2);
    ck_assert_ptr_nonnull(alert(h, "refresh_stale", "never"));
    ck_assert_ptr_null(alert(h, "refresh_failed", NULL));
    json_t *parts = json_object_get(h, "partitions");
    ck_assert_uint_ge(json_array_size(parts), 4);
    ck_assert(json_is_boolean(json_object_get(json_array_get(parts, 0), "attached")));
    ck_assert(json_is_integer(json_object_get(json_array_get(parts, 0), "total_bytes")));
    json_t *idx = json_object_get(h, "indexes"), *x;
    size_t i;
    int named = 0;
    json_array_foreach(idx, i, x) {
        ck_assert(json_is_integer(json_object_get(x, "scans")));
        ck_assert_int_gt(json_integer_value(json_object_get(x, "size_bytes")), 0);
        named += strcmp(json_string_value(json_object_get(x, "name")), "idx_prov_latest_pk") == 0;
    }
    ck_assert_int_eq(named, 1);
    json_t *client = json_object_get(h, "client");
    ck_assert_int_eq(json_integer_value(json_object_get(client, "inserts")), 5);
    ck_assert_int_gt(json_integer_value(json_object_get(client, "queries")), 0);
    json_t *cur = json_object_get(json_object_get(client, "metrics"), "pl_current");
    ck_assert_int_eq(json_integer_value(json_object_get(cur, "count")), 5);
    ck_assert(json_is_array(json_object_get(cur, "histogram")));
    ck_assert(json_is_array(json_object_get(h, "slow_statements")));
    json_decref(h);

    /* pg_stat_statements sees a slow statement on this schema. */
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT pg_sleep(0.15), count(*) FROM \"%s\".ledger_meta", tu_schema());
    free(tu_sql(sql, 0, NULL));
    h = health(l);
    json_t *slow = json_object_get(h, "slow_statements");
    ck_assert_uint_ge(json_array_size(slow), 1);
    int sleeps = 0;
    double prev = 1e300;
    json_array_foreach(slow, i, x) {
        const char *text = json_string_value(json_object_get(x, "query"));
        double mean = json_real_value(json_object_get(x, "mean_ms"));
        ck_assert_msg(text && strstr(text, tu_schema()), "not this schema: %s", text);
        ck_assert(json_integer_value(json_object_get(x, "calls")) >= 1);
        ck_assert(mean <= prev); /* slowest first */
        prev = mean;
        if (strstr(text, "pg_sleep")) {
            sleeps++;
            ck_assert(mean > 100.0);
        }
    }
    ck_assert_int_eq(sleeps, 1);
    ck_assert_ptr_nonnull(alert(h, "slow_statement", "pg_sleep"));
    json_decref(h);

    /* A failed refresh is an alert; a good one clears it. */
    tu_ok(pl_refresh_views(l));
    free(tu_sql("DROP INDEX idx_daily_stats_pk", 0, NULL));
    ck_assert_int_eq(pl_refresh_views(l), PL_EDB);
    h = health(l);
    ck_assert_ptr_nonnull(alert(h, "refresh_failed", "provenance_daily_stats"));
    ck_assert_ptr_null(alert(h, "refresh_failed", "provenance_latest"));
    ck_assert_ptr_null(alert(h, "refresh_stale", NULL));
    json_decref(h);
    free(tu_sql("CREATE UNIQUE INDEX idx_daily_stats_pk ON provenance_daily_stats (day, source_type)", 0, NULL));
    tu_ok(pl_refresh_views(l));
    h = health(l);
    ck_assert_ptr_null(alert(h, "refresh_failed", NULL));
    json_decref(h);
    char *text = NULL;
    ck_assert_int_eq(pl_health(NULL, l), PL_EINVAL);
    ck_assert_int_eq(pl_health(&text, NULL), PL_EINVAL);
    ck_assert_ptr_null(text);
    pl_close(l);
}
END_TEST

static uint64_t lookups(pl_ledger *l)
{
    pl_stats_info s;
    tu_ok(pl_stats(&s, l, sizeof s));
    return s.cache_hits + s.cache_misses;
}

START_TEST(test_health_cache_alert)
{
    pl_ledger *l = tu_open_new(1, 0);
    /* Distinct questions only: every lookup misses. */
    int k = 0;
    while (lookups(l) < 999 && k < 5000) {
        char e[32];
        snprintf(e, sizeof e, "miss_%d", k++);
        pl_result *r = NULL;
        ck_assert_int_eq(pl_current(&r, l, e, "f", 0), PL_NOT_FOUND);
    }
    ck_assert_int_eq(lookups(l), 999);
    json_t *h = health(l);
    ck_assert_ptr_null(alert(h, "cache_hit_rate_low", NULL));
    json_decref(h);
    while (lookups(l) < 1000 && k < 6000) {
        char e[32];
        snprintf(e, sizeof e, "miss_%d", k++);
        pl_result *r = NULL;
        ck_assert_int_eq(pl_current(&r, l, e, "f", 0), PL_NOT_FOUND);
    }
    h = health(l);
    ck_assert_ptr_nonnull(alert(h, "cache_hit_rate_low", "1000 lookups"));
    ck_assert(json_real_value(json_object_get(json_object_get(h, "client"), "cache_hit_rate")) < 0.8);
    json_decref(h);
    pl_close(l);
}
END_TEST

/* Everything above through PgBouncer in transaction pooling: cursors live
 * in one transaction, and no named statement is needed. */
START_TEST(test_through_pgbouncer)
{
    const char *bouncer = getenv("PL_TEST_PGBOUNCER");
    ck_assert_msg(bouncer && *bouncer, "PL_TEST_PGBOUNCER is not set");
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pg_conninfo = bouncer;
    cfg.pool_size = 2;
    pl_ledger *l = tu_open_fresh(&cfg);
    pl_change ch[1200];
    char ent[1200][16];
    for (int i = 0; i < 1200; i++) {
        snprintf(ent[i], sizeof ent[i], "pb_%d", i % 50);
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = ent[i];
        c.field_name = "f";
        c.new_value = "1";
        c.source_type = (i % 2) ? "a" : "b";
        c.metadata = (i % 100) ? NULL : "{\"k\": \"v\"}";
        ch[i] = c;
    }
    tu_ok(pl_insert_batch(NULL, l, ch, 1200));
    pl_iter *it = NULL;
    const pl_record *r;
    int n = 0, rc;
    tu_ok(pl_audit_open(&it, l, "a", PL_TIME_ANY, PL_TIME_ANY));
    while ((rc = pl_iter_next(&r, it)) == PL_OK)
        n++;
    ck_assert_int_eq(rc, PL_ITEROVER);
    ck_assert_int_eq(n, 600);
    pl_iter_free(it);
    char *cursor = NULL;
    n = 0;
    do {
        pl_result *res = NULL;
        char *next = NULL;
        tu_ok(pl_search_metadata(&res, &next, l, "{\"k\": \"v\"}", cursor, 5));
        n += (int)pl_result_count(res);
        pl_result_free(res);
        pl_free(cursor);
        cursor = next;
    } while (cursor);
    ck_assert_int_eq(n, 12);
    pl_table *t = NULL;
    tu_ok(pl_dashboard_changes(&t, l, PL_TIME_ANY, PL_TIME_NOW, NULL, 0));
    ck_assert_int_eq(pl_table_int64(t, 0, 2) + (pl_table_rows(t) > 1 ? pl_table_int64(t, 1, 2) : 0), 1200);
    pl_table_free(t);
    tu_ok(pl_refresh_views(l));
    tu_ok(pl_view_freshness(&t, l));
    ck_assert_str_eq(pl_table_value(t, 0, 3), "true");
    pl_table_free(t);
    char *json = NULL;
    tu_ok(pl_health(&json, l));
    pl_free(json);
    pl_close(l);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("analytics");
    TCase *tc = tu_tcase("dashboards", 120);
    tcase_add_test(tc, test_dashboard_changes);
    tcase_add_test(tc, test_dashboard_corrections);
    suite_add_tcase(s, tc);
    tc = tu_tcase("audit", 300);
    tcase_add_test(tc, test_audit_iterator);
    tcase_add_test(tc, test_audit_memory_bounded);
    tcase_add_test(tc, test_iter_prefetch_closed_early);
    tcase_add_test(tc, test_iter_prefetch_backend_killed);
    suite_add_tcase(s, tc);
    tc = tu_tcase("search", 180);
    tcase_add_test(tc, test_search_metadata);
    suite_add_tcase(s, tc);
    tc = tu_tcase("health", 180);
    tcase_add_test(tc, test_health);
    tcase_add_test(tc, test_health_cache_alert);
    suite_add_tcase(s, tc);
    tc = tu_tcase("pgbouncer", 120);
    tcase_add_test(tc, test_through_pgbouncer);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
