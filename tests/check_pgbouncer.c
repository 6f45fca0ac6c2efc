/* Through PgBouncer in transaction pooling mode: PL_PREPARE_AUTO detects the
 * proxy, PL_PREPARE_UNNAMED works, and every write and read gives what the
 * same calls give on PostgreSQL directly, also from 20 threads at once.
 * PL_PREPARE_NAMED through PgBouncer is documented: it may fail, but only
 * with clean errors.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define require(expr, ...)                                                  \
    do {                                                                    \
        if (!(expr))                                                        \
            ck_abort_msg(__VA_ARGS__);                                      \
    } while (0)

#define USEC INT64_C(1000000)
#define HOUR_USEC (INT64_C(3600) * USEC)
#define DAY_USEC (INT64_C(86400) * USEC)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* tu_change with source_type "pgb" (the audit reports read that source). */
static pl_change make_change(const char *entity, const char *field, const char *value)
{
    pl_change c = tu_change(entity, field, value);
    c.source_type = "pgb";
    return c;
}

/* A handle on this test's schema through PgBouncer (not migrated). */
static pl_ledger *open_bouncer(int prepare, unsigned pool_size)
{
    const char *bouncer = getenv("PL_TEST_PGBOUNCER");
    ck_assert_msg(bouncer && *bouncer, "PL_TEST_PGBOUNCER is not set");
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pg_conninfo = bouncer;
    cfg.prepare = prepare;
    cfg.pool_size = pool_size;
    pl_ledger *l = NULL;
    tu_ok(pl_open(&l, &cfg));
    return l;
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int records_equal(const pl_record *a, const pl_record *b)
{
    return a->id == b->id && strcmp(a->entity_id, b->entity_id) == 0 &&
           strcmp(a->field_name, b->field_name) == 0 && strcmp(a->new_value, b->new_value) == 0 &&
           same_str(a->old_value, b->old_value) && a->transaction_time == b->transaction_time &&
           a->valid_from == b->valid_from && a->valid_to == b->valid_to &&
           strcmp(a->source_type, b->source_type) == 0 &&
           same_str(a->change_reason, b->change_reason) && strcmp(a->metadata, b->metadata) == 0;
}

static void results_equal(const char *what, const pl_result *a, const pl_result *b)
{
    ck_assert_msg(pl_result_count(a) == pl_result_count(b), "%s: %zu records through PgBouncer, %zu direct",
                  what, pl_result_count(a), pl_result_count(b));
    for (size_t i = 0; i < pl_result_count(a); i++)
        require(records_equal(pl_result_get(a, i), pl_result_get(b, i)),
                "%s: record %zu differs (id %" PRId64 " vs %" PRId64 ")", what, i,
                pl_result_get(a, i)->id, pl_result_get(b, i)->id);
}

static void tables_equal(const char *what, const pl_table *a, const pl_table *b)
{
    ck_assert_msg(pl_table_rows(a) == pl_table_rows(b) && pl_table_cols(a) == pl_table_cols(b),
                  "%s: %zux%zu through PgBouncer, %zux%zu direct", what, pl_table_rows(a),
                  pl_table_cols(a), pl_table_rows(b), pl_table_cols(b));
    for (size_t c = 0; c < pl_table_cols(a); c++) {
        ck_assert_str_eq(pl_table_colname(a, c), pl_table_colname(b, c));
        for (size_t r = 0; r < pl_table_rows(a); r++)
            require(same_str(pl_table_value(a, r, c), pl_table_value(b, r, c)),
                    "%s: cell (%zu, %s) differs", what, r, pl_table_colname(a, c));
    }
}

/* Every record of an audit report, as one result-like list. */
typedef struct audit_list {
    pl_record *recs;
    char **strings; /* copies, so the records outlive the iterator */
    size_t n, cap, ns, scap;
} audit_list;

static const char *keep(audit_list *a, const char *s)
{
    if (!s)
        return NULL;
    if (a->ns == a->scap) {
        a->scap = a->scap ? 2 * a->scap : 64;
        a->strings = realloc(a->strings, a->scap * sizeof *a->strings);
        ck_assert_ptr_nonnull(a->strings);
    }
    a->strings[a->ns] = strdup(s);
    ck_assert_ptr_nonnull(a->strings[a->ns]);
    return a->strings[a->ns++];
}

static int audit_read(audit_list *a, pl_ledger *l, pl_time from, pl_time to)
{
    memset(a, 0, sizeof *a);
    pl_iter *it = NULL;
    int rc = pl_audit_open(&it, l, "pgb", from, to);
    if (rc)
        return rc;
    const pl_record *r;
    while ((rc = pl_iter_next(&r, it)) == PL_OK) {
        if (a->n == a->cap) {
            a->cap = a->cap ? 2 * a->cap : 64;
            a->recs = realloc(a->recs, a->cap * sizeof *a->recs);
            ck_assert_ptr_nonnull(a->recs);
        }
        pl_record c = *r;
        c.entity_id = keep(a, r->entity_id);
        c.field_name = keep(a, r->field_name);
        c.new_value = keep(a, r->new_value);
        c.old_value = keep(a, r->old_value);
        c.source_type = keep(a, r->source_type);
        c.change_reason = keep(a, r->change_reason);
        c.metadata = keep(a, r->metadata);
        a->recs[a->n++] = c;
    }
    pl_iter_free(it);
    return rc == PL_ITEROVER ? PL_OK : rc;
}

static void audit_free(audit_list *a)
{
    for (size_t i = 0; i < a->ns; i++)
        free(a->strings[i]);
    free(a->strings);
    free(a->recs);
}

/* Every page of a metadata search, concatenated (page size 3). */
static int search_all(pl_result **pages, size_t max_pages, size_t *npages, pl_ledger *l,
                      const char *query)
{
    char *cursor = NULL;
    *npages = 0;
    for (;;) {
        char *next = NULL;
        ck_assert_uint_lt(*npages, max_pages);
        int rc = pl_search_metadata(&pages[*npages], &next, l, query, cursor, 3);
        pl_free(cursor);
        if (rc)
            return rc;
        (*npages)++;
        if (!next)
            return PL_OK;
        cursor = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Writes and every read, compared with PostgreSQL directly                  */
/* ------------------------------------------------------------------------ */

/* Writes through `b` (entities prefix-*), then asks every read of `b` and
 * of the direct handle `d`: the answers must be the same. */
static void writes_and_reads(pl_ledger *b, pl_ledger *d, const char *prefix)
{
    char e1[64], e2[64], key[64];
    snprintf(e1, sizeof e1, "%s-1", prefix);
    snprintf(e2, sizeof e2, "%s-2", prefix);
    snprintf(key, sizeof key, "%s-key", prefix);
    pl_time now = pl_time_now();

    /* Writes: single, every field set, a correction of the past, a batch,
     * a keyed change and its retry. */
    pl_change c = make_change(e1, "status", "\"new\"");
    c.metadata = "{\"batch\": \"pgb\", \"n\": 1}";
    pl_receipt r1, r2, r3, rk, rk2;
    tu_ok(pl_insert(&r1, b, &c));
    c.new_value = "\"paid\"";
    c.old_value = "\"new\"";
    c.change_reason = "payment received";
    c.metadata = "{\"batch\": \"pgb\", \"n\": 2}";
    tu_ok(pl_insert(&r2, b, &c));
    pl_change corr = make_change(e1, "amount", "{\"eur\": 10.5}");
    corr.valid_from = now - 2 * DAY_USEC;
    corr.valid_to = now + DAY_USEC;
    corr.metadata = "{\"batch\": \"pgb\", \"n\": 3}";
    tu_ok(pl_insert(&r3, b, &corr));
    pl_change batch[4] = {make_change(e2, "a", "1"), make_change(e2, "b", "[1, {\"x\": null}]"),
                          make_change(e1, "status", "\"shipped\""), make_change(e2, "a", "2")};
    for (int i = 0; i < 4; i++)
        batch[i].metadata = "{\"batch\": \"pgb\"}";
    pl_receipt rb[4];
    tu_ok(pl_insert_batch(rb, b, batch, 4));
    ck_assert_int_gt(rb[3].transaction_time, rb[0].transaction_time);
    pl_change keyed = make_change(e2, "c", "true");
    keyed.idempotency_key = key;
    tu_ok(pl_insert(&rk, b, &keyed));
    tu_ok(pl_insert(&rk2, b, &keyed));
    ck_assert_int_eq(rk.id, rk2.id);
    ck_assert_int_eq(rk.transaction_time, rk2.transaction_time);
    keyed.new_value = "false";
    ck_assert_int_eq(pl_insert(NULL, b, &keyed), PL_ECONFLICT);

    /* The writes landed as acknowledged (read directly). */
    pl_result *h = NULL;
    tu_ok(pl_history(&h, d, e1, NULL, PL_REALTIME));
    ck_assert_uint_eq(pl_result_count(h), 4);
    ck_assert_int_eq(pl_result_get(h, 0)->id, r1.id);
    ck_assert_int_eq(pl_result_get(h, 1)->id, r2.id);
    ck_assert_int_eq(pl_result_get(h, 2)->id, r3.id);
    ck_assert_int_eq(pl_result_get(h, 3)->id, rb[2].id);
    ck_assert_int_eq(pl_result_get(h, 1)->transaction_time, r2.transaction_time);
    pl_result_free(h);

    /* Point and list reads. */
    pl_time t_mid = r2.transaction_time; /* after "paid", before the batch */
    struct {
        const char *what;
        int kind; /* 0 as_of, 1 snapshot, 2 range, 3 history */
        const char *entity, *field;
        pl_time t1, t2;
    } reads[] = {
        {"current status", 0, e1, "status", PL_TIME_NOW, PL_TIME_NOW},
        {"current amount", 0, e1, "amount", PL_TIME_NOW, PL_TIME_NOW},
        {"as of mid, any", 0, e1, "status", t_mid, PL_TIME_ANY},
        {"as of now, valid 1 day ago", 0, e1, "amount", PL_TIME_NOW, now - DAY_USEC},
        {"as of mid, valid now", 0, e1, "status", t_mid, now},
        {"as of before all", 0, e1, "status", r1.transaction_time - 1, PL_TIME_ANY},
        {"snapshot now", 1, e1, NULL, PL_TIME_NOW, PL_TIME_NOW},
        {"snapshot e2 now", 1, e2, NULL, PL_TIME_NOW, PL_TIME_NOW},
        {"snapshot mid any", 1, e1, NULL, t_mid, PL_TIME_ANY},
        {"snapshot now valid 3 days ago", 1, e1, NULL, PL_TIME_NOW, now - 3 * DAY_USEC},
        {"range all", 2, e1, NULL, PL_TIME_ANY, PL_TIME_ANY},
        {"range field", 2, e2, "a", r1.transaction_time, PL_TIME_NOW},
        {"range empty", 2, e1, NULL, r1.transaction_time - 10, r1.transaction_time},
        {"history", 3, e1, NULL, 0, 0},
        {"history field", 3, e2, "a", 0, 0},
        {"history unknown", 3, "pgb-nobody", NULL, 0, 0},
    };
    unsigned flag_sets[3] = {0, PL_REALTIME, PL_ALLOW_STALE};
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        for (int f = 0; f < 3; f++) {
            pl_result *ra = NULL, *rd = NULL;
            int ca, cd;
            pl_ledger *hs[2] = {b, d};
            pl_result **outs[2] = {&ra, &rd};
            int *codes[2] = {&ca, &cd};
            for (int k = 0; k < 2; k++) {
                unsigned fl = k == 0 ? flag_sets[f] : PL_REALTIME;
                switch (reads[i].kind) {
                case 0:
                    *codes[k] = pl_as_of(outs[k], hs[k], reads[i].entity, reads[i].field, reads[i].t1,
                                         reads[i].t2, fl);
                    break;
                case 1:
                    *codes[k] = pl_snapshot(outs[k], hs[k], reads[i].entity, reads[i].t1, reads[i].t2, fl);
                    break;
                case 2:
                    *codes[k] = pl_range(outs[k], hs[k], reads[i].entity, reads[i].field, reads[i].t1,
                                         reads[i].t2, fl);
                    break;
                default:
                    *codes[k] = pl_history(outs[k], hs[k], reads[i].entity, reads[i].field, fl);
                    break;
                }
            }
            ck_assert_msg(ca == cd, "%s (flags %u): %d through PgBouncer (%s), %d direct", reads[i].what,
                          flag_sets[f], ca, pl_errmsg(), cd);
            ck_assert_msg(ca == PL_OK || ca == PL_NOT_FOUND, "%s: %d: %s", reads[i].what, ca, pl_errmsg());
            results_equal(reads[i].what, ra, rd);
            ck_assert_int_eq(pl_result_origin(ra), PL_ORIGIN_PRIMARY);
            pl_result_free(ra);
            pl_result_free(rd);
        }
    }

    /* Metadata search, every page. */
    pl_result *pa[16], *pd[16];
    size_t na, nd;
    tu_ok(search_all(pa, 16, &na, b, "{\"batch\": \"pgb\"}"));
    tu_ok(search_all(pd, 16, &nd, d, "{\"batch\": \"pgb\"}"));
    ck_assert_uint_eq(na, nd);
    size_t found = 0;
    for (size_t i = 0; i < na; i++) {
        results_equal("metadata search page", pa[i], pd[i]);
        found += pl_result_count(pa[i]);
        pl_result_free(pa[i]);
        pl_result_free(pd[i]);
    }
    ck_assert_uint_ge(found, 7);

    /* The audit report, streamed from a server-side cursor. */
    audit_list aa, ad;
    tu_ok(audit_read(&aa, b, PL_TIME_ANY, PL_TIME_ANY));
    tu_ok(audit_read(&ad, d, PL_TIME_ANY, PL_TIME_ANY));
    ck_assert_uint_eq(aa.n, ad.n);
    ck_assert_uint_ge(aa.n, 8);
    for (size_t i = 0; i < aa.n; i++)
        require(records_equal(&aa.recs[i], &ad.recs[i]), "audit record %zu differs", i);
    audit_free(&aa);
    audit_free(&ad);

    /* Dashboards. */
    pl_table *ta = NULL, *td = NULL;
    tu_ok(pl_dashboard_changes(&ta, b, now - DAY_USEC, PL_TIME_NOW, NULL, 0));
    tu_ok(pl_dashboard_changes(&td, d, now - DAY_USEC, PL_TIME_NOW, NULL, 0));
    ck_assert_uint_gt(pl_table_rows(ta), 0);
    tables_equal("dashboard changes", ta, td);
    pl_table_free(ta);
    pl_table_free(td);
    tu_ok(pl_dashboard_corrections(&ta, b, now - DAY_USEC, PL_TIME_NOW, 0));
    tu_ok(pl_dashboard_corrections(&td, d, now - DAY_USEC, PL_TIME_NOW, 0));
    ck_assert_uint_gt(pl_table_rows(ta), 0);
    tables_equal("dashboard corrections", ta, td);
    pl_table_free(ta);
    pl_table_free(td);
}

START_TEST(auto_detects_pgbouncer)
{
    /* Migrate through PgBouncer too. */
    pl_ledger *b = open_bouncer(PL_PREPARE_AUTO, 4);
    tu_ok(pl_migrate(b));
    int v = 0;
    tu_ok(pl_schema_version(&v, b));
    ck_assert_int_eq(v, PL_SCHEMA_VERSION);
    pl_ledger *d = tu_open(0);
    writes_and_reads(b, d, "pgb-auto");
    pl_stats_info st;
    tu_ok(pl_stats(&st, b, sizeof st));
    ck_assert_uint_le(st.pool_open, 4);
    ck_assert_uint_eq(st.reconnects, 0);
    pl_close(b);
    pl_close(d);
}
END_TEST

START_TEST(unnamed_through_pgbouncer)
{
    pl_ledger *d = tu_open(0); /* migrated directly */
    pl_ledger *b = open_bouncer(PL_PREPARE_UNNAMED, 4);
    writes_and_reads(b, d, "pgb-unnamed");
    pl_close(b);
    pl_close(d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Twenty threads through PgBouncer                                          */
/* ------------------------------------------------------------------------ */

typedef struct bthread {
    pl_ledger *l;
    int index;
    double deadline_ms;
    char entity[32];
    long ops, ok_writes, ok_calls;
    int errors, first_rc;
    char first_msg[256];
    int wrong; /* answers about another entity, or out of order */
} bthread;

static void *bthread_main(void *arg)
{
    bthread *t = arg;
    do { /* at least one call (a write) each, however late the thread started */
        pl_result *r = NULL;
        int rc;
        char v[32];
        const char *check_entity = t->entity;
        switch (t->ops % 8) {
        case 0:
        case 1: {
            snprintf(v, sizeof v, "%ld", t->ops);
            pl_change c = make_change(t->entity, t->ops % 16 ? "f" : "g", v);
            c.metadata = "{\"batch\": \"pgb-threads\"}";
            rc = pl_insert(NULL, t->l, &c);
            if (rc == PL_OK)
                t->ok_writes++;
            break;
        }
        case 2:
            rc = pl_current(&r, t->l, t->entity, "f", 0);
            break;
        case 3:
            rc = pl_as_of(&r, t->l, t->entity, "f", pl_time_now() - 500000, PL_TIME_ANY, 0);
            break;
        case 4:
            rc = pl_snapshot(&r, t->l, t->entity, PL_TIME_NOW, PL_TIME_ANY, 0);
            break;
        case 5:
            rc = pl_range(&r, t->l, t->entity, NULL, PL_TIME_ANY, PL_TIME_NOW, 0);
            break;
        case 6:
            rc = pl_history(&r, t->l, t->entity, "f", PL_REALTIME);
            break;
        default: {
            char q[96];
            snprintf(q, sizeof q, "{\"batch\": \"pgb-threads\"}");
            rc = pl_search_metadata(&r, NULL, t->l, q, NULL, 5);
            check_entity = NULL;
            break;
        }
        }
        for (size_t i = 0; check_entity && i < pl_result_count(r); i++)
            if (strcmp(pl_result_get(r, i)->entity_id, check_entity) != 0)
                t->wrong++;
        pl_result_free(r);
        if (rc == PL_OK || rc == PL_NOT_FOUND) {
            t->ok_calls++;
        } else if (t->errors++ == 0) {
            t->first_rc = rc;
            snprintf(t->first_msg, sizeof t->first_msg, "%s", pl_errmsg());
        }
        t->ops++;
    } while (tu_now_ms() < t->deadline_ms);
    return NULL;
}

/* Runs 20 threads for `ms` on `l`, each on its own entity `tag-<i>`. */
static void run_threads(bthread *t, int n, pl_ledger *l, const char *tag, int ms)
{
    pthread_t th[32];
    ck_assert_int_le(n, 32);
    double deadline = tu_now_ms() + ms;
    for (int i = 0; i < n; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].l = l;
        t[i].index = i;
        t[i].deadline_ms = deadline;
        snprintf(t[i].entity, sizeof t[i].entity, "%s-%d", tag, i);
        ck_assert_int_eq(pthread_create(&th[i], NULL, bthread_main, &t[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

START_TEST(twenty_threads_through_pgbouncer)
{
    enum { N = 20 };
    pl_ledger *d = tu_open(0);
    pl_ledger *b = open_bouncer(PL_PREPARE_AUTO, 10);
    bthread t[N];
    run_threads(t, N, b, "pgb-t", 3000);
    long ops = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_msg(t[i].errors == 0, "thread %d: %d errors, first %d (%s): %s", i, t[i].errors,
                      t[i].first_rc, pl_strerror(t[i].first_rc), t[i].first_msg);
        ck_assert_int_eq(t[i].wrong, 0);
        ck_assert_int_gt(t[i].ok_writes, 0);
        ops += t[i].ops;
        /* What each thread wrote is there, the same seen either way. */
        pl_result *hb = NULL, *hd = NULL;
        tu_ok(pl_history(&hb, b, t[i].entity, NULL, 0));
        tu_ok(pl_history(&hd, d, t[i].entity, NULL, PL_REALTIME));
        ck_assert_uint_eq(pl_result_count(hd), (size_t)t[i].ok_writes);
        results_equal(t[i].entity, hb, hd);
        for (size_t k = 1; k < pl_result_count(hd); k++)
            require(pl_result_get(hd, k)->transaction_time > pl_result_get(hd, k - 1)->transaction_time,
                    "%s: times not increasing", t[i].entity);
        pl_result_free(hb);
        pl_result_free(hd);
    }
    pl_stats_info st;
    tu_ok(pl_stats(&st, b, sizeof st));
    fprintf(stderr, "pgbouncer, 20 threads, pool 10: %ld calls, %llu pool waits\n", ops,
            (unsigned long long)st.pool_waits);
    ck_assert_uint_le(st.pool_open, 10);
    pl_close(b);
    pl_close(d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* PL_PREPARE_NAMED through PgBouncer                                        */
/* ------------------------------------------------------------------------ */

/* Named statements are prepared on whichever server connection PgBouncer
 * lends for that transaction; the next transaction may get another one.
 * Whatever happens, each call must either answer correctly or fail with an
 * error code and a message, never crash or answer wrongly. */
START_TEST(named_through_pgbouncer_fails_cleanly)
{
    enum { N = 20 };
    pl_ledger *d = tu_open(0);
    pl_ledger *b = open_bouncer(PL_PREPARE_NAMED, 10);
    bthread t[N];
    run_threads(t, N, b, "pgb-named", 1500);
    long ok = 0, errors = 0, writes = 0;
    int first_rc = 0;
    const char *first_msg = "";
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(t[i].wrong, 0);
        ok += t[i].ok_calls;
        errors += t[i].errors;
        writes += t[i].ok_writes;
        if (t[i].errors) {
            ck_assert_msg(t[i].first_rc < 0 && t[i].first_rc >= PL_EUNSUPPORTED,
                          "thread %d: status %d is not an error code", i, t[i].first_rc);
            ck_assert_msg(t[i].first_msg[0] != '\0', "thread %d: error %d without a message", i,
                          t[i].first_rc);
            if (!first_rc) {
                first_rc = t[i].first_rc;
                first_msg = t[i].first_msg;
            }
        }
        /* Every acknowledged write landed, exactly. */
        pl_result *hd = NULL;
        tu_ok(pl_history(&hd, d, t[i].entity, NULL, PL_REALTIME));
        ck_assert_uint_eq(pl_result_count(hd), (size_t)t[i].ok_writes);
        pl_result_free(hd);
    }
    fprintf(stderr,
            "PL_PREPARE_NAMED through PgBouncer (transaction pooling), 20 threads: %ld calls "
            "succeeded (%ld writes), %ld failed%s%s%s\n",
            ok, writes, errors, errors ? "; first: " : "", errors ? pl_strerror(first_rc) : "",
            errors ? "" : "");
    if (errors)
        fprintf(stderr, "  message: %s\n", first_msg);
    pl_close(b);
    pl_close(d);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("pgbouncer");
    TCase *tc = tu_tcase("modes", 60);
    tcase_add_test(tc, auto_detects_pgbouncer);
    tcase_add_test(tc, unnamed_through_pgbouncer);
    suite_add_tcase(s, tc);
    tc = tu_tcase("threads", 60);
    tcase_add_test(tc, twenty_threads_through_pgbouncer);
    tcase_add_test(tc, named_through_pgbouncer_fails_cleanly);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
