/* Failures of PostgreSQL seen through one handle: a restart while threads
 * read and write, a stopped server, statement timeouts and pool-wait
 * timeouts. Runs serially: it restarts and stops the shared primary.
 *
 * Threads never call ck_assert (Check is not thread-safe): they count what
 * went wrong and the test's own thread asserts afterwards.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define require(expr, ...)                                                  \
    do {                                                                    \
        if (!(expr))                                                        \
            ck_abort_msg(__VA_ARGS__);                                      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* This process's own application_name, so that the library's sessions can
 * be told apart from every other test's in pg_stat_activity. */
static char app[64];

static const char *app_name(void)
{
    return app;
}

/* Names this test's sessions (tests share a process under CK_FORK=no). */
static void app_name_set(const char *tag)
{
    snprintf(app, sizeof app, "plt_fail_%ld_%s", (long)getpid(), tag);
}

/* tu_config with the conninfo naming app_name(). */
static void config_named(pl_config *cfg, char *conninfo, size_t len)
{
    tu_config(cfg, 0);
    snprintf(conninfo, len, "%s application_name=%s", getenv("PL_TEST_PG"), app_name());
    cfg->pg_conninfo = conninfo;
}

/* Rows of one entity, counted on a fresh connection. */
static long long entity_rows(const char *entity)
{
    return tu_q1("SELECT count(*) FROM provenance_ledger WHERE entity_id = $1", entity);
}

/* Waits (up to 10 s) until one of the library's sessions waits for a lock;
 * returns its pid. */
static long long wait_for_blocked_session(PGconn *pg)
{
    const char *p[1] = {app_name()};
    long long pid = tu_wait_ll(pg,
                               "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
                               "AND wait_event_type = 'Lock'",
                               1, p, 1000, 10);
    if (pid)
        return pid;
    ck_abort_msg("no session of %s ever waited for the lock", app_name());
    return 0;
}

/* Makes sure the primary is up, whatever an earlier failed test left. */
static void ensure_pg_up(void)
{
    tu_ctl("pg-start");
}

/* ------------------------------------------------------------------------ */
/* PostgreSQL restarted while threads read and write                         */
/* ------------------------------------------------------------------------ */

enum { READERS = 3, PLAIN_WRITERS = 3, KEYED_WRITERS = 2,
       THREADS = READERS + PLAIN_WRITERS + KEYED_WRITERS };
enum { RUN_BEFORE = 0, PAUSE = 1, RUN_AFTER = 2, STOP = 3 };

typedef struct restart_ctx {
    pl_ledger *l;
    atomic_int phase;
    atomic_int paused;
} restart_ctx;

typedef struct restart_thread {
    restart_ctx *ctx;
    int index;
    int kind; /* 0 reader, 1 plain writer, 2 keyed writer */
    char entity[32];
    long ops_before, ops_after;
    int errors_before, errors_after;
    int rc_before, rc_after;
    char msg_before[256], msg_after[256];
    int bad_codes;    /* write errors other than ECONNECT and EUNKNOWN */
    long ok_writes;   /* acknowledged */
    long maybe;       /* PL_EUNKNOWN: may or may not have landed */
    long keys;        /* keyed writes attempted (keys k0..k{keys-1}) */
} restart_thread;

static int restart_op(restart_thread *t, long n)
{
    pl_ledger *l = t->ctx->l;
    if (t->kind == 0) {
        pl_result *r = NULL;
        int rc;
        switch (n % 6) {
        case 0: rc = pl_current(&r, l, t->entity, "f", 0); break;
        case 1: rc = pl_history(&r, l, t->entity, NULL, 0); break;
        case 2: rc = pl_as_of(&r, l, t->entity, "f", PL_TIME_NOW, PL_TIME_ANY, 0); break;
        case 3: rc = pl_snapshot(&r, l, t->entity, PL_TIME_NOW, PL_TIME_NOW, 0); break;
        case 4: rc = pl_search_metadata(&r, NULL, l, "{\"restart\": 1}", NULL, 10); break;
        default: {
            pl_iter *it = NULL;
            const pl_record *rec;
            rc = pl_audit_open(&it, l, "restart-audit", PL_TIME_ANY, PL_TIME_ANY);
            while (rc == PL_OK)
                rc = pl_iter_next(&rec, it);
            if (rc == PL_ITEROVER)
                rc = PL_OK;
            pl_iter_free(it);
            break;
        }
        }
        pl_result_free(r);
        return rc;
    }
    char value[64], key[64];
    snprintf(value, sizeof value, "{\"n\": %ld}", n);
    pl_change c = tu_change(t->entity, "f", value);
    if (t->kind == 2) {
        snprintf(key, sizeof key, "%s-k%ld", t->entity, t->keys++);
        c.idempotency_key = key;
    }
    int rc = pl_insert(NULL, l, &c);
    if (rc == PL_OK)
        t->ok_writes++;
    else if (rc == PL_EUNKNOWN)
        t->maybe++;
    else if (rc != PL_ECONNECT)
        t->bad_codes++;
    return rc;
}

static void *restart_main(void *arg)
{
    restart_thread *t = arg;
    restart_ctx *ctx = t->ctx;
    long n = 0;
    for (;;) {
        int phase = atomic_load(&ctx->phase);
        if (phase == STOP)
            break;
        if (phase == PAUSE) {
            atomic_fetch_add(&ctx->paused, 1);
            while (atomic_load(&ctx->phase) == PAUSE)
                tu_sleep_ms(2);
            continue;
        }
        int rc = restart_op(t, n++);
        int failed = rc != PL_OK && rc != PL_NOT_FOUND;
        if (phase == RUN_BEFORE) {
            t->ops_before++;
            if (failed && t->errors_before++ == 0) {
                t->rc_before = rc;
                snprintf(t->msg_before, sizeof t->msg_before, "%s", pl_errmsg());
            }
        } else {
            t->ops_after++;
            if (failed && t->errors_after++ == 0) {
                t->rc_after = rc;
                snprintf(t->msg_after, sizeof t->msg_after, "%s", pl_errmsg());
            }
        }
        tu_sleep_ms(1);
    }
    return NULL;
}

START_TEST(restart_while_reading_and_writing)
{
    ensure_pg_up();
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 8;
    pl_ledger *l = tu_open_cfg(&cfg);
    restart_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.l = l;
    atomic_init(&ctx.phase, RUN_BEFORE);
    atomic_init(&ctx.paused, 0);

    restart_thread t[THREADS];
    pthread_t th[THREADS];
    memset(t, 0, sizeof t);
    for (int i = 0; i < THREADS; i++) {
        t[i].ctx = &ctx;
        t[i].index = i;
        t[i].kind = i < READERS ? 0 : i < READERS + PLAIN_WRITERS ? 1 : 2;
        snprintf(t[i].entity, sizeof t[i].entity, "restart-%d", i);
        if (t[i].kind == 0) {
            pl_change c = tu_change(t[i].entity, "f", "\"seed\"");
            c.metadata = "{\"restart\": 1}";
            tu_ok(pl_insert(NULL, l, &c));
            c.source_type = "restart-audit";
            tu_ok(pl_insert(NULL, l, &c));
        }
    }
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, restart_main, &t[i]), 0);
    tu_sleep_ms(1000); /* by design: the workload runs a while before the restart */

    /* Every thread idle between calls, then the restart: every pooled
     * connection dies under the library's feet. */
    atomic_store(&ctx.phase, PAUSE);
    while (atomic_load(&ctx.paused) < THREADS)
        tu_sleep_ms(5);
    pl_stats_info before;
    tu_ok(pl_stats(&before, l, sizeof before));
    int ctl = tu_ctl("pg-restart");
    atomic_store(&ctx.phase, RUN_AFTER);
    tu_sleep_ms(2000);
    atomic_store(&ctx.phase, STOP);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(ctl, 0);

    pl_stats_info after;
    tu_ok(pl_stats(&after, l, sizeof after));
    fprintf(stderr, "restart: %u connections open before, reconnects %llu -> %llu\n",
            before.pool_open, (unsigned long long)before.reconnects,
            (unsigned long long)after.reconnects);
    ck_assert_uint_gt(after.reconnects, before.reconnects);
    ck_assert_uint_le(after.pool_open, 8);

    PGconn *pg = tu_raw_open();
    for (int i = 0; i < THREADS; i++) {
        restart_thread *x = &t[i];
        fprintf(stderr, "restart: thread %d (%s): %ld calls before, %ld after, %d errors after%s%s\n",
                i, x->kind == 0 ? "reader" : x->kind == 1 ? "writer" : "keyed writer", x->ops_before,
                x->ops_after, x->errors_after, x->errors_after ? ": " : "", x->msg_after);
        ck_assert_msg(x->errors_before == 0, "thread %d failed before the restart: %d %s", i,
                      x->rc_before, x->msg_before);
        ck_assert_msg(x->ops_after > 10, "thread %d made no progress after the restart", i);
        if (x->kind == 0) {
            /* Reads retry once on a fresh connection: the caller never sees
             * the dead one. */
            ck_assert_msg(x->errors_after == 0,
                          "reader %d saw %d errors after the restart, first %d (%s): %s", i,
                          x->errors_after, x->rc_after, pl_strerror(x->rc_after), x->msg_after);
        } else {
            ck_assert_msg(x->errors_after <= 1,
                          "writer %d saw %d errors after the restart, first %d (%s): %s", i,
                          x->errors_after, x->rc_after, pl_strerror(x->rc_after), x->msg_after);
            ck_assert_msg(x->bad_codes == 0, "writer %d: an error other than ECONNECT/EUNKNOWN: %s",
                          i, x->msg_after);
            const char *p[1] = {x->entity};
            long long rows = tu_raw_ll(pg, "SELECT count(*) FROM provenance_ledger WHERE entity_id = $1",
                                       1, p);
            ck_assert_msg(rows >= x->ok_writes && rows <= x->ok_writes + x->maybe,
                          "writer %d: %lld rows for %ld acknowledged and %ld unknown writes", i, rows,
                          x->ok_writes, x->maybe);
        }
        if (x->kind == 2) {
            /* Keyed writes retry once themselves: no error, and every key
             * landed at most once. */
            ck_assert_msg(x->errors_after == 0, "keyed writer %d: %d errors after the restart: %s", i,
                          x->errors_after, x->msg_after);
            const char *p[1] = {x->entity};
            ck_assert_int_eq(tu_raw_ll(pg,
                                       "SELECT count(*) FROM (SELECT idempotency_key FROM provenance_ledger "
                                       "WHERE entity_id = $1 GROUP BY 1 HAVING count(*) > 1) d",
                                       1, p),
                             0);
        }
    }
    PQfinish(pg);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* PostgreSQL stopped, then started again                                    */
/* ------------------------------------------------------------------------ */

/* One call while the server is down: PL_ECONNECT (or PL_ETIMEOUT), a
 * message saying what failed, and no waiting for any timeout (the connect
 * timeout is 5 s, the statement timeout 30 s). */
#define EXPECT_DOWN(call)                                                                  \
    do {                                                                                   \
        double t0_ = tu_now_ms();                                                          \
        int rc_ = (call);                                                                  \
        double ms_ = tu_now_ms() - t0_;                                                    \
        ck_assert_msg(rc_ == PL_ECONNECT || rc_ == PL_ETIMEOUT, "%s -> %d (%s): %s", #call, rc_, \
                      pl_strerror(rc_), pl_errmsg());                                      \
        ck_assert_msg(strstr(pl_errmsg(), "PostgreSQL") != NULL,                           \
                      "%s: message does not say what failed: \"%s\"", #call, pl_errmsg()); \
        ck_assert_msg(ms_ < 4000, "%s took %.0f ms with the server down", #call, ms_);     \
    } while (0)

START_TEST(stopped_then_started)
{
    ensure_pg_up();
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 4;
    pl_ledger *l = tu_open_cfg(&cfg);
    pl_change c = tu_change("stop-1", "f", "1");
    tu_ok(pl_insert(NULL, l, &c));
    pl_result *r = NULL;
    tu_ok(pl_current(&r, l, "stop-1", "f", 0));
    pl_result_free(r);

    ck_assert_int_eq(tu_ctl("pg-stop"), 0);
    /* A read first: it finds its pooled connection dead, retries on a new
     * one, which cannot connect. */
    EXPECT_DOWN(pl_current(&r, l, "stop-1", "f", 0));
    ck_assert_ptr_null(r);
    c.new_value = "2";
    EXPECT_DOWN(pl_insert(NULL, l, &c));
    pl_change batch[2] = {c, c};
    EXPECT_DOWN(pl_insert_batch(NULL, l, batch, 2));
    EXPECT_DOWN(pl_as_of(&r, l, "stop-1", "f", PL_TIME_NOW, PL_TIME_ANY, 0));
    EXPECT_DOWN(pl_snapshot(&r, l, "stop-1", PL_TIME_NOW, PL_TIME_NOW, 0));
    EXPECT_DOWN(pl_range(&r, l, "stop-1", NULL, PL_TIME_ANY, PL_TIME_NOW, 0));
    EXPECT_DOWN(pl_history(&r, l, "stop-1", NULL, PL_REALTIME));
    int v = 0;
    EXPECT_DOWN(pl_schema_version(&v, l));
    EXPECT_DOWN(pl_migrate(l));
    ck_assert_ptr_null(r);
    EXPECT_DOWN(pl_search_metadata(&r, NULL, l, "{\"a\": 1}", NULL, 10));
    pl_iter *it = NULL;
    EXPECT_DOWN(pl_audit_open(&it, l, NULL, PL_TIME_ANY, PL_TIME_ANY));
    ck_assert_ptr_null(it);
    pl_table *tb = NULL;
    EXPECT_DOWN(pl_dashboard_changes(&tb, l, PL_TIME_ANY, PL_TIME_NOW, NULL, 0));
    ck_assert_ptr_null(tb);

    ck_assert_int_eq(tu_ctl("pg-start"), 0);
    /* The same handle works again. */
    c.new_value = "3";
    tu_ok(pl_insert(NULL, l, &c));
    tu_ok(pl_current(&r, l, "stop-1", "f", 0));
    ck_assert_str_eq(pl_result_get(r, 0)->new_value, "3");
    pl_result_free(r);
    tu_ok(pl_history(&r, l, "stop-1", NULL, 0));
    ck_assert_uint_eq(pl_result_count(r), 2); /* nothing written while down */
    pl_result_free(r);
    pl_stats_info st;
    tu_ok(pl_stats(&st, l, sizeof st));
    pl_close(l);
    /* A connection broke and was replaced. */
    ck_assert_uint_gt(st.reconnects, 0);
}
END_TEST

/* The first call after the stop is a write on a dead pooled connection.
 * The library cannot tell from the broken connection whether the server
 * ran the statement, so PL_EUNKNOWN is allowed besides PL_ECONNECT; what
 * must hold is that nothing landed and the handle recovers. */
START_TEST(stopped_first_call_is_a_write)
{
    ensure_pg_up();
    pl_ledger *l = tu_open(0);
    pl_change c = tu_change("stop-2", "f", "1");
    tu_ok(pl_insert(NULL, l, &c));
    ck_assert_int_eq(tu_ctl("pg-stop"), 0);
    c.new_value = "2";
    int rc = pl_insert(NULL, l, &c);
    fprintf(stderr, "first write after pg-stop: %d (%s): %s\n", rc, pl_strerror(rc), pl_errmsg());
    ck_assert_msg(rc == PL_ECONNECT || rc == PL_EUNKNOWN, "pl_insert -> %d: %s", rc, pl_errmsg());
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", pl_errmsg());
    EXPECT_DOWN(pl_insert(NULL, l, &c));
    ck_assert_int_eq(tu_ctl("pg-start"), 0);
    ck_assert_int_eq(entity_rows("stop-2"), 1);
    c.new_value = "3";
    tu_ok(pl_insert(NULL, l, &c));
    ck_assert_int_eq(entity_rows("stop-2"), 2);
    pl_close(l);
    /* The message keeps the cause (libpq's or the server's words). */
    ck_assert_msg(strstr(msg, "PostgreSQL") != NULL, "message lost the cause: \"%s\"", msg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Statement timeout                                                         */
/* ------------------------------------------------------------------------ */

START_TEST(statement_timeout_on_lock)
{
    ensure_pg_up();
    pl_config cfg;
    char conninfo[512];
    app_name_set("timeout");
    config_named(&cfg, conninfo, sizeof conninfo);
    cfg.statement_timeout_ms = 300;
    cfg.pool_size = 1;
    pl_ledger *l = tu_open_cfg(&cfg);
    pl_change c = tu_change("timeout-1", "f", "1");
    tu_ok(pl_insert(NULL, l, &c));

    PGconn *pg = tu_raw_open();
    const char *app[1] = {app_name()};
    long long backend = tu_raw_ll(pg, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", 1, app);

    /* A write blocked by a lock. */
    tu_raw_exec(pg, "BEGIN");
    tu_raw_exec(pg, "LOCK TABLE entity_head IN ACCESS EXCLUSIVE MODE");
    c.new_value = "2";
    double t0 = tu_now_ms();
    int rc = pl_insert(NULL, l, &c);
    double ms = tu_now_ms() - t0;
    ck_assert_msg(rc == PL_ETIMEOUT, "blocked pl_insert -> %d (%s): %s", rc, pl_strerror(rc),
                  pl_errmsg());
    ck_assert_str_ne(pl_errmsg(), "");
    ck_assert_msg(ms >= 290, "timed out after %.0f ms, before the 300 ms statement timeout", ms);
    tu_raw_exec(pg, "ROLLBACK");
    ck_assert_int_eq(entity_rows("timeout-1"), 1);

    /* A keyed write too: nothing written, and a retry lands it once. */
    tu_raw_exec(pg, "BEGIN");
    tu_raw_exec(pg, "LOCK TABLE entity_head IN ACCESS EXCLUSIVE MODE");
    c.idempotency_key = "timeout-1-key";
    rc = pl_insert(NULL, l, &c);
    ck_assert_msg(rc == PL_ETIMEOUT, "blocked keyed pl_insert -> %d: %s", rc, pl_errmsg());
    tu_raw_exec(pg, "ROLLBACK");
    ck_assert_int_eq(entity_rows("timeout-1"), 1);

    /* A read blocked by a lock. */
    tu_raw_exec(pg, "BEGIN");
    tu_raw_exec(pg, "LOCK TABLE provenance_ledger IN ACCESS EXCLUSIVE MODE");
    pl_result *r = NULL;
    rc = pl_history(&r, l, "timeout-1", NULL, 0);
    ck_assert_msg(rc == PL_ETIMEOUT, "blocked pl_history -> %d: %s", rc, pl_errmsg());
    ck_assert_ptr_null(r);
    tu_raw_exec(pg, "ROLLBACK");

    /* The same connection is usable afterwards. */
    tu_ok(pl_insert(NULL, l, &c));
    c.idempotency_key = NULL;
    c.new_value = "3";
    tu_ok(pl_insert(NULL, l, &c));
    tu_ok(pl_history(&r, l, "timeout-1", NULL, 0));
    ck_assert_uint_eq(pl_result_count(r), 3);
    ck_assert_str_eq(pl_result_get(r, 1)->new_value, "2");
    ck_assert_str_eq(pl_result_get(r, 2)->new_value, "3");
    pl_result_free(r);
    ck_assert_int_eq(tu_raw_ll(pg, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", 1, app),
                     backend);
    pl_stats_info st;
    tu_ok(pl_stats(&st, l, sizeof st));
    ck_assert_uint_eq(st.reconnects, 0);
    ck_assert_uint_eq(st.pool_open, 1);
    PQfinish(pg);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Pool wait timeout                                                         */
/* ------------------------------------------------------------------------ */

typedef struct blocked_call {
    pl_ledger *l;
    int rc;
    char msg[256];
} blocked_call;

static void *blocked_insert(void *arg)
{
    blocked_call *b = arg;
    pl_change c = tu_change("poolwait-1", "f", "2");
    b->rc = pl_insert(NULL, b->l, &c);
    snprintf(b->msg, sizeof b->msg, "%s", pl_errmsg());
    return NULL;
}

START_TEST(pool_wait_timeout)
{
    ensure_pg_up();
    pl_config cfg;
    char conninfo[512];
    app_name_set("poolwait");
    config_named(&cfg, conninfo, sizeof conninfo);
    cfg.pool_size = 1;
    cfg.pool_wait_timeout_ms = 200;
    cfg.statement_timeout_ms = 20000;
    pl_ledger *l = tu_open_cfg(&cfg);
    pl_change c = tu_change("poolwait-1", "f", "1");
    tu_ok(pl_insert(NULL, l, &c));

    PGconn *pg = tu_raw_open();
    tu_raw_exec(pg, "BEGIN");
    tu_raw_exec(pg, "LOCK TABLE entity_head IN ACCESS EXCLUSIVE MODE");
    blocked_call b = {l, 0, ""};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, blocked_insert, &b), 0);
    wait_for_blocked_session(pg);

    /* The only connection is busy: another call gives up after 200 ms. */
    pl_result *r = NULL;
    double t0 = tu_now_ms();
    int rc = pl_current(&r, l, "poolwait-1", "f", 0);
    double ms = tu_now_ms() - t0;
    ck_assert_msg(rc == PL_ETIMEOUT, "pl_current with the pool busy -> %d (%s): %s", rc,
                  pl_strerror(rc), pl_errmsg());
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(pl_errmsg(), "200") != NULL, "message: %s", pl_errmsg());
    ck_assert_msg(ms >= 190, "gave up after %.0f ms, before the 200 ms pool wait timeout", ms);
    c.new_value = "3";
    ck_assert_int_eq(pl_insert(NULL, l, &c), PL_ETIMEOUT);

    tu_raw_exec(pg, "COMMIT");
    pthread_join(th, NULL);
    ck_assert_msg(b.rc == PL_OK, "the blocked insert -> %d: %s", b.rc, b.msg);
    tu_ok(pl_current(&r, l, "poolwait-1", "f", 0));
    ck_assert_str_eq(pl_result_get(r, 0)->new_value, "2");
    pl_result_free(r);
    ck_assert_int_eq(entity_rows("poolwait-1"), 2);
    pl_stats_info st;
    tu_ok(pl_stats(&st, l, sizeof st));
    ck_assert_uint_ge(st.pool_waits, 2);
    ck_assert_uint_ge(st.pool_wait_us, 2 * 190000);
    PQfinish(pg);
    pl_close(l);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("failures");
    TCase *tc = tu_tcase("restart", 120);
    tcase_add_test(tc, restart_while_reading_and_writing);
    suite_add_tcase(s, tc);
    tc = tu_tcase("stopped", 120);
    tcase_add_test(tc, stopped_then_started);
    tcase_add_test(tc, stopped_first_call_is_a_write);
    suite_add_tcase(s, tc);
    tc = tu_tcase("timeouts", 60);
    tcase_add_test(tc, statement_timeout_on_lock);
    tcase_add_test(tc, pool_wait_timeout);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
