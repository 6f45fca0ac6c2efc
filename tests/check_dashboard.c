/* Exact dashboards from the rollup (issue 16): pl_dashboard_changes and
 * pl_dashboard_corrections equal to the same aggregates computed here from
 * the base table with SQL of the test's own, before the first advance (the
 * base table answers), after it (the rollup), with a tail of new records on
 * days already rolled up (the same entities and new ones), after erasure
 * (the corrections' entity type moves), across a detached and re-attached
 * partition and a newly created one, for windows on and off midnights and
 * open ends; and, under concurrent writers (current and imported history)
 * and a rollup stepping all the while, every answer between the base
 * table's answers just before and just after it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define MINUTE_US INT64_C(60000000)
#define HOUR_US (60 * MINUTE_US)
#define DAY_US INT64_C(86400000000)

static const char *const sources[] = {"import", "api", "user_correction"};

/* "transaction_time >= 'from' AND transaction_time < 'to'" (open ends
 * dropped) into buf. */
static void window_sql(char *buf, size_t len, pl_time from, pl_time to)
{
    char f[PL_TIME_BUFSIZE], t[PL_TIME_BUFSIZE];
    pl_time_format(f, sizeof f, from);
    pl_time_format(t, sizeof t, to);
    snprintf(buf, len, "%s%s%s%s%s", from == PL_TIME_ANY ? "true" : "transaction_time >= '",
             from == PL_TIME_ANY ? "" : f, from == PL_TIME_ANY ? "" : "'",
             to == PL_TIME_ANY ? "" : " AND transaction_time < '", to == PL_TIME_ANY ? "" : t);
    if (to != PL_TIME_ANY)
        strncat(buf, "'", len - strlen(buf) - 1);
}

static char *base_changes(PGconn *pg, pl_time from, pl_time to, const char *source)
{
    char w[256], sql[2048];
    window_sql(w, sizeof w, from, to);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(format('%%s/%%s/%%s/%%s', to_char(day AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), source_type, n, e), ';' ORDER BY day, source_type COLLATE \"C\")"
             " || ';', '') FROM (SELECT date_trunc('day', transaction_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
             " AS day, source_type, count(*) AS n, count(DISTINCT entity_id) AS e FROM provenance_ledger"
             " WHERE %s%s%s%s GROUP BY 1, 2) s",
             w, source ? " AND source_type = '" : "", source ? source : "", source ? "'" : "");
    PGresult *r = tu_raw_q(pg, sql, 0, NULL);
    char *s = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return s;
}

static char *base_corrections(PGconn *pg, pl_time from, pl_time to)
{
    char w[256], sql[2048];
    window_sql(w, sizeof w, from, to);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(format('%%s/%%s/%%s', et, field_name, n), ';' ORDER BY n DESC,"
             " et COLLATE \"C\", field_name COLLATE \"C\") || ';', '') FROM (SELECT CASE WHEN metadata ->> 'entity_type'"
             " IS NOT NULL THEN metadata->>'entity_type' ELSE split_part(split_part(entity_id, '_', 1), ':', 1)"
             " END AS et, field_name, count(*) AS n FROM provenance_ledger"
             " WHERE valid_time_start < transaction_time AND %s GROUP BY 1, 2) s",
             w);
    PGresult *r = tu_raw_q(pg, sql, 0, NULL);
    char *s = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return s;
}

/* Every window and filter: the library's answer equals the base table's;
 * the rollup answered it iff `rollup`. */
static void check_all(pl_ledger *l, PGconn *pg, pl_time today, int rollup, const char *when)
{
    const pl_time wins[][2] = {
        {PL_TIME_ANY, PL_TIME_ANY},
        {today - 10 * DAY_US, today + DAY_US},
        {today - 4 * DAY_US, today - DAY_US},
        {today - 4 * DAY_US + 5 * HOUR_US + 1, today - 2 * DAY_US + 7 * HOUR_US},
        {today - 3 * DAY_US + 1, PL_TIME_ANY},
        {PL_TIME_ANY, today - 2 * DAY_US + 13 * HOUR_US},
        {today - 200 * DAY_US, today - 40 * DAY_US},
        {today, today + DAY_US},
    };
    for (size_t i = 0; i < sizeof wins / sizeof wins[0]; i++) {
        for (int s = -1; s < 3; s++) {
            const char *src = s < 0 ? NULL : sources[s];
            pl_table *t = NULL;
            tu_ok(pl_dashboard_changes(&t, l, wins[i][0], wins[i][1], src, 0));
            ck_assert_int_eq(pl_table_origin(t), PL_ORIGIN_PRIMARY);
            ck_assert_msg((pl_table_horizon(t) != PL_TIME_ANY) == rollup,
                          "%s: window %zu: horizon %lld, rollup expected %d", when, i,
                          (long long)pl_table_horizon(t), rollup);
            char *got = tu_table_text(t), *want = base_changes(pg, wins[i][0], wins[i][1], src);
            ck_assert_msg(strcmp(got, want) == 0, "%s: changes, window %zu, source %s:\n got %s\nwant %s",
                          when, i, src ? src : "all", got, want);
            free(got);
            free(want);
            pl_table_free(t);
        }
        pl_table *t = NULL;
        tu_ok(pl_dashboard_corrections(&t, l, wins[i][0], wins[i][1], 0));
        ck_assert_int_eq(pl_table_horizon(t) != PL_TIME_ANY, rollup);
        char *got = tu_table_text(t), *want = base_corrections(pg, wins[i][0], wins[i][1]);
        ck_assert_msg(strcmp(got, want) == 0, "%s: corrections, window %zu:\n got %s\nwant %s", when, i,
                      got, want);
        free(got);
        free(want);
        pl_table_free(t);
    }
}

/* Imported history on days -5..-1 (round r shifts times and entities so
 * that rounds share days and some entities), and a few inserts now. */
static void write_round(pl_ledger *l, pl_time today, int r)
{
    pl_change ch[40];
    pl_time tt[40];
    char ent[40][24], meta[40][48];
    for (int d = -5; d <= -1; d++) {
        int n = 8 + (d + 5) * 6;
        for (int i = 0; i < n; i++) {
            /* Entities of one round are new to it (r in the name) or shared
             * with every round on that day (no r), so the distinct counts
             * of a day must not count a shared one twice. Rounds are 5
             * hours apart: an entity's times keep increasing. */
            if (i % 3 == 0)
                snprintf(ent[i], sizeof ent[i], "acct_%d_%d", d + 5, i % 7);
            else
                snprintf(ent[i], sizeof ent[i], "%s%d_%d_%d", i % 2 ? "txn:" : "pay_", r, d + 5, i);
            pl_change c = PL_CHANGE_INIT;
            c.entity_id = ent[i];
            c.field_name = i % 4 ? "amount" : "merchant";
            c.new_value = "1";
            c.source_type = sources[(i + d + r + 15) % 3];
            if (i % 5 == 1) {
                snprintf(meta[i], sizeof meta[i], "{\"entity_type\": \"kind%d\"}", i % 3);
                c.metadata = meta[i];
            }
            tt[i] = today + d * DAY_US + (pl_time)r * 5 * HOUR_US + (pl_time)i * 7 * MINUTE_US + 1;
            /* a third are corrections: valid from before they were recorded */
            c.valid_from = i % 3 == 1 ? tt[i] - DAY_US : tt[i];
            ch[i] = c;
        }
        tu_ok(pl_import_batch(NULL, l, ch, tt, (size_t)n));
    }
    for (int i = 0; i < 6; i++) {
        char e[24];
        snprintf(e, sizeof e, "now_%d", i % 3);
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = e;
        c.field_name = "status";
        c.new_value = "\"ok\"";
        c.source_type = sources[i % 3];
        c.valid_from = i % 2 ? pl_time_now() - HOUR_US : PL_TIME_NOW;
        c.metadata = i == 1 ? "{\"entity_type\": \"erasable\"}" : NULL; /* a correction */
        tu_ok(pl_insert(NULL, l, &c));
    }
}

/* Steps until they rolled up at least want records in all (at most 10 s):
 * a step covers the transactions that ended below the oldest one still
 * running in the whole cluster, and another suite's may hold it back. */
static int64_t advance_covering(pl_ledger *l, int64_t want)
{
    int64_t total = 0, n = 0;
    for (int i = 0; i < 100; i++) {
        tu_ok(pl_rollup_advance(&n, l));
        total += n;
        if (total >= want)
            break;
        usleep(100000);
    }
    return total;
}

START_TEST(test_rollup_exact)
{
    pl_ledger *l = tu_open_new(0, 1);
    PGconn *pg = tu_raw_open();
    pl_time now = pl_time_now(), today = now - now % DAY_US;
    write_round(l, today, 0);
    check_all(l, pg, today, 0, "never advanced: the base table");

    int64_t n = -1;
    long long all = tu_raw_ll(pg, "SELECT count(*) FROM provenance_ledger", 0, NULL);
    ck_assert_int_eq(advance_covering(l, all), all);
    check_all(l, pg, today, 1, "all rolled up");
    tu_ok(pl_rollup_advance(&n, l));
    ck_assert_int_eq(n, 0);

    write_round(l, today, 1);
    check_all(l, pg, today, 1, "a tail on rolled-up days");
    ck_assert_int_gt(advance_covering(l, 1), 0);
    check_all(l, pg, today, 1, "tail rolled up");

    /* Erasure empties metadata: the entity type of a correction moves. */
    int64_t erased = 0;
    tu_ok(pl_erase(&erased, l, "now_1", "test"));
    ck_assert_int_gt(erased, 0);
    check_all(l, pg, today, 1, "after erasure");

    /* Old history in its own partition, rolled up, then detached: its
     * rows leave the base table and the dashboards alike; re-attached,
     * they come back. */
    pl_time old = today - 100 * DAY_US;
    pl_change c = PL_CHANGE_INIT;
    c.entity_id = "archive_1";
    c.field_name = "amount";
    c.new_value = "5";
    c.source_type = "import";
    pl_time tt = old;
    tu_ok(pl_import_batch(NULL, l, &c, &tt, 1));
    c.entity_id = "archive_2";
    tt = old + HOUR_US;
    tu_ok(pl_import_batch(NULL, l, &c, &tt, 1));
    tu_ok(pl_rollup_advance(&n, l));
    check_all(l, pg, today, 1, "old partition rolled up");
    int detached = 0;
    tu_ok(pl_partitions_detach(&detached, l, today - 60 * DAY_US));
    ck_assert_int_ge(detached, 1);
    check_all(l, pg, today, 1, "old partition detached");
    tu_ok(pl_rollup_advance(&n, l));
    check_all(l, pg, today, 1, "detached, advanced");
    pl_table *parts = NULL;
    tu_ok(pl_partitions_list(&parts, l));
    int name = pl_table_colindex(parts, "name"), att = pl_table_colindex(parts, "attached");
    for (size_t r = 0; r < pl_table_rows(parts); r++)
        if (strcmp(pl_table_value(parts, r, (size_t)att), "false") == 0)
            tu_ok(pl_partition_attach(l, pl_table_value(parts, r, (size_t)name)));
    pl_table_free(parts);
    /* The step while it was detached forgot it (that step's records in
     * it were out of its scan): the base table answers, then the next
     * step rolls it up whole. */
    check_all(l, pg, today, 0, "re-attached");
    ck_assert_int_ge(advance_covering(l, 2), 2);
    check_all(l, pg, today, 1, "re-attached, advanced");

    /* A partition the rollup has not seen: the base table answers until
     * the next step registers it. */
    int created = 0;
    tu_ok(pl_partitions_ensure(&created, l, 9));
    ck_assert_int_gt(created, 0);
    check_all(l, pg, today, 0, "a new partition");
    tu_ok(pl_rollup_advance(&n, l));
    check_all(l, pg, today, 1, "new partition registered");

    /* The health report shows the rollup. */
    char *json = NULL;
    tu_ok(pl_health(&json, l));
    ck_assert_ptr_nonnull(strstr(json, "\"rollup\""));
    ck_assert_ptr_nonnull(strstr(json, "\"lag_seconds\""));
    pl_free(json);
    PQfinish(pg);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Under concurrent writers                                                  */
/* ------------------------------------------------------------------------ */

typedef struct shared {
    pl_ledger *l;
    pl_time today;
    atomic_int stop;
    atomic_long writes, steps;
} shared;

static void *writer(void *arg)
{
    shared *sh = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    long k = 0;
    while (!atomic_load(&sh->stop)) {
        char e[32];
        pl_change c = PL_CHANGE_INIT;
        c.field_name = "f";
        c.new_value = "1";
        c.source_type = sources[rand_r(&seed) % 3];
        if (k % 4 == 3) {
            /* history of a new entity on an earlier (rolled-up) day */
            snprintf(e, sizeof e, "hist_%u_%ld", seed % 1000, k);
            c.entity_id = e;
            pl_time tt = sh->today - (pl_time)(1 + k % 3) * DAY_US + (pl_time)(rand_r(&seed) % 1000) * MINUTE_US;
            c.valid_from = tt - HOUR_US;
            if (pl_import_batch(NULL, sh->l, &c, &tt, 1) == PL_OK)
                atomic_fetch_add(&sh->writes, 1);
        } else {
            snprintf(e, sizeof e, "live_%d", rand_r(&seed) % 12);
            c.entity_id = e;
            if (pl_insert(NULL, sh->l, &c) == PL_OK)
                atomic_fetch_add(&sh->writes, 1);
        }
        k++;
    }
    return NULL;
}

static void *stepper(void *arg)
{
    shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        if (pl_rollup_advance(NULL, sh->l) == PL_OK)
            atomic_fetch_add(&sh->steps, 1);
        usleep(20000);
    }
    return NULL;
}

/* "day/source/n/e;..." into parallel arrays (at most max rows). */
static size_t parse_rows(const char *s, char keys[][64], long *n, long *e, size_t max)
{
    size_t k = 0;
    while (*s && k < max) {
        const char *end = strchr(s, ';');
        char row[160];
        size_t len = (size_t)(end - s);
        memcpy(row, s, len);
        row[len] = '\0';
        char *p2 = strrchr(row, '/');
        *p2 = '\0';
        e[k] = atol(p2 + 1);
        char *p1 = strrchr(row, '/');
        *p1 = '\0';
        n[k] = atol(p1 + 1);
        ck_assert_uint_lt(strlen(row), 64);
        memcpy(keys[k], row, strlen(row) + 1);
        k++;
        s = end + 1;
    }
    return k;
}

static long lookup(char keys[][64], const long *v, size_t k, const char *key)
{
    for (size_t i = 0; i < k; i++)
        if (strcmp(keys[i], key) == 0)
            return v[i];
    return 0;
}

START_TEST(test_rollup_concurrent)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.allow_import = 1;
    cfg.pool_size = 6;
    pl_ledger *l = tu_open_fresh(&cfg);
    PGconn *pg = tu_raw_open();
    pl_time now = pl_time_now();
    shared sh = {.l = l, .today = now - now % DAY_US};
    tu_ok(pl_rollup_advance(NULL, l));
    pthread_t w[3], st;
    for (int i = 0; i < 3; i++)
        pthread_create(&w[i], NULL, writer, &sh);
    pthread_create(&st, NULL, stepper, &sh);
    enum { MAXR = 64 };
    static char k1[MAXR][64], kd[MAXR][64], k2[MAXR][64];
    long n1[MAXR], e1[MAXR], nd[MAXR], ed[MAXR], n2[MAXR], e2[MAXR];
    int checks = 0, rolled = 0;
    pl_time from = sh.today - 5 * DAY_US, to = sh.today + DAY_US;
    for (double t0 = (double)pl_time_now(); (double)pl_time_now() - t0 < 4e6; checks++) {
        /* Counts only grow: an exact answer lies between the base table's
         * just before and just after it. */
        char *b1 = base_changes(pg, from, to, NULL);
        pl_table *t = NULL;
        tu_ok(pl_dashboard_changes(&t, l, from, to, NULL, 0));
        rolled += pl_table_horizon(t) != PL_TIME_ANY;
        char *d = tu_table_text(t);
        pl_table_free(t);
        char *b2 = base_changes(pg, from, to, NULL);
        size_t c1 = parse_rows(b1, k1, n1, e1, MAXR), cd = parse_rows(d, kd, nd, ed, MAXR),
               c2 = parse_rows(b2, k2, n2, e2, MAXR);
        for (size_t i = 0; i < c2; i++) {
            long lo_n = lookup(k1, n1, c1, k2[i]), lo_e = lookup(k1, e1, c1, k2[i]);
            long got_n = lookup(kd, nd, cd, k2[i]), got_e = lookup(kd, ed, cd, k2[i]);
            ck_assert_msg(lo_n <= got_n && got_n <= n2[i] && lo_e <= got_e && got_e <= e2[i],
                          "check %d, %s: changes %ld <= %ld <= %ld, entities %ld <= %ld <= %ld", checks,
                          k2[i], lo_n, got_n, n2[i], lo_e, got_e, e2[i]);
        }
        for (size_t i = 0; i < cd; i++)
            ck_assert_msg(lookup(k2, n2, c2, kd[i]) > 0, "check %d: %s in the answer only", checks, kd[i]);
        free(b1);
        free(d);
        free(b2);
    }
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(w[i], NULL);
    pthread_join(st, NULL);
    printf("dashboard: %d checks under %ld writes and %ld rollup steps (%d answered by the rollup)\n",
           checks, atomic_load(&sh.writes), atomic_load(&sh.steps), rolled);
    ck_assert_int_gt(atomic_load(&sh.steps), 5);
    ck_assert_int_gt(rolled, 0);
    check_all(l, pg, sh.today, 1, "after the writers");
    tu_ok(pl_rollup_advance(NULL, l));
    check_all(l, pg, sh.today, 1, "after the writers, advanced");
    PQfinish(pg);
    pl_close(l);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("dashboard");
    TCase *tc = tu_tcase("rollup", 300);
    tcase_add_test(tc, test_rollup_exact);
    tcase_add_test(tc, test_rollup_concurrent);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
