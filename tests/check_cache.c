/* The Redis result cache (issue 3), against the real PostgreSQL and Redis of
 * tests/servers.sh: hits are exact, PL_REALTIME bypasses in both directions,
 * misses fill, writes invalidate (also across handles), a fill that raced a
 * write is refused, time moves cached answers, awkward keys never collide,
 * the counters move as documented, and the connection variants work.
 *
 * White-box only where needed: the fill hook of lib/cache/cache.h holds a reader
 * between its database read and its fill.
 *
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stddef.h>

#include "cache.h"
#include "cachetest.h"
#include "ledger.h"

/* ------------------------------------------------------------------------ */
/* Hits are served, and are exact                                            */
/* ------------------------------------------------------------------------ */

typedef int (*read_fn)(pl_result **out, pl_ledger *l, const void *arg, unsigned flags);

typedef struct asof_arg {
    const char *entity, *field;
    pl_time tx, valid;
} asof_arg;

static int read_asof(pl_result **out, pl_ledger *l, const void *arg, unsigned flags)
{
    const asof_arg *a = arg;
    if (!a->field)
        return pl_snapshot(out, l, a->entity, a->tx, a->valid, flags);
    return pl_as_of(out, l, a->entity, a->field, a->tx, a->valid, flags);
}

/* Reads twice: the first is a miss (primary), the second a hit (cache) equal
 * field by field to a PL_REALTIME answer; counters move by one each. */
static void check_hit(pl_ledger *l, const asof_arg *a, size_t want_count, const char *what)
{
    pl_stats_info s0 = ct_stats(l);
    pl_result *first = NULL, *second = NULL, *real = NULL;
    tu_ok(read_asof(&first, l, a, 0));
    pl_stats_info s1 = ct_stats(l);
    tu_ok(read_asof(&second, l, a, 0));
    pl_stats_info s2 = ct_stats(l);
    tu_ok(read_asof(&real, l, a, PL_REALTIME));
    ck_assert_msg(pl_result_origin(first) == PL_ORIGIN_PRIMARY, "%s: first read origin %d", what,
                  pl_result_origin(first));
    ck_assert_msg(pl_result_origin(second) == PL_ORIGIN_CACHE, "%s: second read origin %d", what,
                  pl_result_origin(second));
    ck_assert_msg(pl_result_origin(real) == PL_ORIGIN_PRIMARY, "%s: realtime origin %d", what,
                  pl_result_origin(real));
    ck_assert_msg(pl_result_staleness_us(second) == 0, "%s: a cache hit is exact", what);
    ck_assert_uint_eq(pl_result_count(real), want_count);
    ct_same(second, real, what);
    ct_same(first, real, what);
    ck_assert_uint_eq(s1.cache_misses, s0.cache_misses + 1);
    ck_assert_uint_eq(s1.cache_fills, s0.cache_fills + 1);
    ck_assert_uint_eq(s1.cache_hits, s0.cache_hits);
    ck_assert_uint_eq(s2.cache_hits, s1.cache_hits + 1);
    ck_assert_uint_eq(s2.cache_misses, s1.cache_misses);
    pl_result_free(first);
    pl_result_free(second);
    pl_result_free(real);
}

START_TEST(test_hits_exact)
{
    pl_ledger *l = ct_open();
    pl_time now = pl_time_now();
    pl_change c = PL_CHANGE_INIT;
    c.entity_id = "order-1";
    c.field_name = "status";
    c.new_value = "{\"state\": \"open\", \"n\": [1, 2.5, null, true]}";
    c.old_value = "{\"state\": \"draft\"}";
    c.valid_from = now - 3600 * US;
    c.source_type = "import";
    c.change_reason = "customer called";
    c.metadata = "{\"by\": \"ann\", \"ticket\": 42}";
    pl_receipt r1;
    tu_ok(pl_insert(&r1, l, &c));
    pl_change d = PL_CHANGE_INIT; /* no old value, reason or metadata */
    d.entity_id = "order-1";
    d.field_name = "amount";
    d.new_value = "12.50";
    d.valid_from = now - 7200 * US;
    d.valid_to = now + 3600 * US;
    d.source_type = "api";
    pl_receipt r2;
    tu_ok(pl_insert(&r2, l, &d));

    asof_arg cur = {"order-1", "status", PL_TIME_NOW, PL_TIME_NOW};
    check_hit(l, &cur, 1, "current status");
    asof_arg cur2 = {"order-1", "amount", PL_TIME_NOW, PL_TIME_NOW};
    check_hit(l, &cur2, 1, "current amount");
    asof_arg snap = {"order-1", NULL, PL_TIME_NOW, PL_TIME_NOW};
    check_hit(l, &snap, 2, "snapshot");
    /* An explicit past valid time, as known now. */
    asof_arg past = {"order-1", "status", PL_TIME_NOW, now - 1800 * US};
    check_hit(l, &past, 1, "as_of(now, -30 min)");
    asof_arg snap_past = {"order-1", NULL, PL_TIME_NOW, now - 1800 * US};
    check_hit(l, &snap_past, 2, "snapshot(now, -30 min)");
    /* A settled transaction time (the receipt's) with explicit valid time,
     * and with any valid time. */
    asof_arg settled = {"order-1", "status", r2.transaction_time, now - 1800 * US};
    check_hit(l, &settled, 1, "as_of(receipt tt, -30 min)");
    asof_arg settled_any = {"order-1", "amount", r2.transaction_time, PL_TIME_ANY};
    asof_arg settled_old = {"order-1", "status", r1.transaction_time, PL_TIME_ANY};
    check_hit(l, &settled_old, 1, "as_of(first receipt tt, any)");
    check_hit(l, &settled_any, 1, "as_of(receipt tt, any)");
    asof_arg snap_settled = {"order-1", NULL, r2.transaction_time, PL_TIME_ANY};
    check_hit(l, &snap_settled, 2, "snapshot(receipt tt, any)");
    pl_close(l);
}
END_TEST

START_TEST(test_realtime_bypasses)
{
    pl_ledger *l = ct_open();
    ct_put(l, "rt", "f", "\"v1\"");
    pl_stats_info s0 = ct_stats(l);
    int origin;
    char *v = ct_value(l, "rt", "f", PL_REALTIME, &origin);
    ck_assert_str_eq(v, "\"v1\"");
    free(v);
    ck_assert_int_eq(origin, PL_ORIGIN_PRIMARY);
    pl_stats_info s1 = ct_stats(l);
    ck_assert_uint_eq(s1.cache_bypassed, s0.cache_bypassed + 1);
    ck_assert_uint_eq(s1.cache_fills, s0.cache_fills);
    ck_assert_uint_eq(s1.cache_misses, s0.cache_misses);
    ck_assert_uint_eq(s1.cache_hits, s0.cache_hits);
    /* PL_REALTIME did not fill: Redis holds nothing of ours ... */
    int nkeys = -1;
    const char *prefix = ct_prefix();
    ck_assert_int_eq(ct_redis_values_with(prefix, "\"v1\"", &nkeys), 0);
    ck_assert_int_eq(nkeys, 0);
    /* ... and the next normal read is a miss. */
    ck_assert_int_eq(ct_expect(l, "rt", "f", "\"v1\"", "after realtime"), PL_ORIGIN_PRIMARY);
    pl_stats_info s2 = ct_stats(l);
    ck_assert_uint_eq(s2.cache_misses, s1.cache_misses + 1);
    ck_assert_uint_eq(s2.cache_fills, s1.cache_fills + 1);
    ck_assert_int_eq(ct_redis_values_with(prefix, "\"v1\"", &nkeys), 1);
    /* A realtime read of a cached answer still goes to the primary and
     * leaves the counters of lookups alone. */
    v = ct_value(l, "rt", "f", PL_REALTIME, &origin);
    free(v);
    ck_assert_int_eq(origin, PL_ORIGIN_PRIMARY);
    pl_stats_info s3 = ct_stats(l);
    ck_assert_uint_eq(s3.cache_bypassed, s2.cache_bypassed + 1);
    ck_assert_uint_eq(s3.cache_hits, s2.cache_hits);
    ck_assert_int_eq(ct_expect(l, "rt", "f", "\"v1\"", "cached"), PL_ORIGIN_CACHE);
    /* Snapshots and as-of reads bypass too. */
    pl_result *r = NULL;
    tu_ok(pl_snapshot(&r, l, "rt", PL_TIME_NOW, PL_TIME_NOW, PL_REALTIME));
    ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY);
    pl_result_free(r);
    tu_ok(pl_snapshot(&r, l, "rt", PL_TIME_NOW, PL_TIME_NOW, 0));
    ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY); /* realtime did not fill */
    pl_result_free(r);
    tu_ok(pl_snapshot(&r, l, "rt", PL_TIME_NOW, PL_TIME_NOW, PL_REALTIME));
    ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY); /* though cached now */
    pl_result_free(r);
    tu_ok(pl_snapshot(&r, l, "rt", PL_TIME_NOW, PL_TIME_NOW, 0));
    ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_CACHE);
    pl_result_free(r);
    pl_close(l);
}
END_TEST

START_TEST(test_writes_invalidate)
{
    pl_ledger *l = ct_open();
    ct_put(l, "inv", "f", "1");
    ct_put(l, "inv", "g", "\"other field\"");
    ck_assert_int_eq(ct_expect(l, "inv", "f", "1", "first"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(ct_expect(l, "inv", "f", "1", "second"), PL_ORIGIN_CACHE);
    ck_assert_int_eq(ct_expect(l, "inv", "g", "\"other field\"", "g"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(ct_expect(l, "inv", "g", "\"other field\"", "g"), PL_ORIGIN_CACHE);
    pl_result *r = NULL;
    tu_ok(pl_snapshot(&r, l, "inv", PL_TIME_NOW, PL_TIME_NOW, 0));
    pl_result_free(r);
    for (int i = 2; i < 12; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        pl_stats_info s0 = ct_stats(l);
        ct_put(l, "inv", "f", v);
        pl_stats_info s1 = ct_stats(l);
        ck_assert_uint_eq(s1.cache_invalidations, s0.cache_invalidations + 1);
        ck_assert_int_eq(ct_expect(l, "inv", "f", v, "after write"), PL_ORIGIN_PRIMARY);
        pl_stats_info s2 = ct_stats(l);
        ck_assert_uint_eq(s2.cache_misses, s1.cache_misses + 1);
        ck_assert_uint_eq(s2.cache_hits, s1.cache_hits);
        ck_assert_int_eq(ct_expect(l, "inv", "f", v, "hit after write"), PL_ORIGIN_CACHE);
        /* A write to one field drops the entity's other answers too: they
         * are read again (still correct). */
        ck_assert_int_eq(ct_expect(l, "inv", "g", "\"other field\"", "g"), PL_ORIGIN_PRIMARY);
        ck_assert_int_eq(ct_expect(l, "inv", "g", "\"other field\"", "g"), PL_ORIGIN_CACHE);
        tu_ok(pl_snapshot(&r, l, "inv", PL_TIME_NOW, PL_TIME_NOW, 0));
        ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY);
        ck_assert_uint_eq(pl_result_count(r), 2);
        ck_assert_str_eq(pl_result_get(r, 0)->new_value, v);
        pl_result_free(r);
        tu_ok(pl_snapshot(&r, l, "inv", PL_TIME_NOW, PL_TIME_NOW, 0));
        ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_CACHE);
        ck_assert_str_eq(pl_result_get(r, 0)->new_value, v);
        pl_result_free(r);
    }
    /* A batch invalidates every entity it wrote. */
    ct_put(l, "inv2", "f", "\"x\"");
    ct_expect(l, "inv2", "f", "\"x\"", "inv2");
    ck_assert_int_eq(ct_expect(l, "inv2", "f", "\"x\"", "inv2"), PL_ORIGIN_CACHE);
    pl_change b[2] = {PL_CHANGE_INIT, PL_CHANGE_INIT};
    b[0].entity_id = "inv";
    b[0].field_name = "f";
    b[0].new_value = "\"batch\"";
    b[0].source_type = "test";
    b[1] = b[0];
    b[1].entity_id = "inv2";
    tu_ok(pl_insert_batch(NULL, l, b, 2));
    ck_assert_int_eq(ct_expect(l, "inv", "f", "\"batch\"", "batch inv"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(ct_expect(l, "inv2", "f", "\"batch\"", "batch inv2"), PL_ORIGIN_PRIMARY);
    pl_close(l);
}
END_TEST

START_TEST(test_not_found_cached)
{
    pl_ledger *l = ct_open();
    pl_stats_info s0 = ct_stats(l);
    pl_result *r = (pl_result *)&r; /* must be reset to NULL */
    ck_assert_int_eq(pl_current(&r, l, "nobody", "f", 0), PL_NOT_FOUND);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(pl_current(&r, l, "nobody", "f", 0), PL_NOT_FOUND);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(pl_snapshot(&r, l, "nobody", PL_TIME_NOW, PL_TIME_NOW, 0), PL_NOT_FOUND);
    ck_assert_int_eq(pl_snapshot(&r, l, "nobody", PL_TIME_NOW, PL_TIME_NOW, 0), PL_NOT_FOUND);
    pl_time past = pl_time_now() - 60 * US;
    ck_assert_int_eq(pl_as_of(&r, l, "nobody", "f", PL_TIME_NOW, past, 0), PL_NOT_FOUND);
    ck_assert_int_eq(pl_as_of(&r, l, "nobody", "f", PL_TIME_NOW, past, 0), PL_NOT_FOUND);
    pl_stats_info s1 = ct_stats(l);
    ck_assert_uint_eq(s1.cache_misses, s0.cache_misses + 3);
    ck_assert_uint_eq(s1.cache_fills, s0.cache_fills + 3);
    ck_assert_uint_eq(s1.cache_hits, s0.cache_hits + 3);

    /* The first insert invalidates the cached "not found". */
    ct_put_full(l, "nobody", "f", "\"here\"", past - 60 * US, PL_TIME_INFINITY);
    ck_assert_int_eq(ct_expect(l, "nobody", "f", "\"here\"", "after first insert"),
                     PL_ORIGIN_PRIMARY);
    tu_ok(pl_snapshot(&r, l, "nobody", PL_TIME_NOW, PL_TIME_NOW, 0));
    ck_assert_uint_eq(pl_result_count(r), 1);
    ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY);
    pl_result_free(r);
    tu_ok(pl_as_of(&r, l, "nobody", "f", PL_TIME_NOW, past, 0));
    ck_assert_str_eq(pl_result_get(r, 0)->new_value, "\"here\"");
    ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY);
    pl_result_free(r);
    /* A field with no answer while another field has one. */
    ck_assert_int_eq(pl_current(&r, l, "nobody", "g", 0), PL_NOT_FOUND);
    ck_assert_int_eq(pl_current(&r, l, "nobody", "g", 0), PL_NOT_FOUND);
    ct_put(l, "nobody", "g", "true");
    ck_assert_int_eq(ct_expect(l, "nobody", "g", "true", "g after insert"), PL_ORIGIN_PRIMARY);
    pl_close(l);
}
END_TEST

/* An import with a past transaction time changes settled as-of answers:
 * it invalidates them like any write. */
START_TEST(test_import_invalidates)
{
    pl_config cfg;
    ct_config(&cfg);
    cfg.allow_import = 1;
    pl_ledger *l = tu_open_cfg(&cfg);
    pl_receipt r1 = ct_put(l, "imp", "f", "\"v1\"");
    tu_sleep_ms(100); /* by design: room for an import time after r1 and before now */
    pl_time t = pl_time_now() - 10000;
    ck_assert_int_gt(t - 20000, r1.transaction_time);
    pl_result *r = NULL;
    for (int pass = 0; pass < 2; pass++) {
        tu_ok(pl_as_of(&r, l, "imp", "f", t, PL_TIME_ANY, 0));
        ck_assert_str_eq(pl_result_get(r, 0)->new_value, "\"v1\"");
        ck_assert_int_eq(pl_result_origin(r), pass ? PL_ORIGIN_CACHE : PL_ORIGIN_PRIMARY);
        pl_result_free(r);
    }
    pl_change c = PL_CHANGE_INIT;
    c.entity_id = "imp";
    c.field_name = "f";
    c.new_value = "\"imported\"";
    c.source_type = "import";
    pl_time tt = t - 20000;
    tu_ok(pl_import_batch(NULL, l, &c, &tt, 1));
    tu_ok(pl_as_of(&r, l, "imp", "f", t, PL_TIME_ANY, 0));
    ck_assert_str_eq(pl_result_get(r, 0)->new_value, "\"imported\"");
    pl_result_free(r);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Read-after-write across handles                                           */
/* ------------------------------------------------------------------------ */

START_TEST(test_two_handles)
{
    pl_config cfg;
    ct_config(&cfg);
    pl_ledger *a = tu_open_cfg(&cfg);
    pl_ledger *b = tu_open_cfg(&cfg);
    ct_put(b, "shared", "f", "0");
    for (int i = 1; i <= 30; i++) {
        char prev[16], v[16];
        snprintf(prev, sizeof prev, "%d", i - 1);
        snprintf(v, sizeof v, "%d", i);
        ct_expect(a, "shared", "f", prev, "A before B's write");
        ck_assert_int_eq(ct_expect(a, "shared", "f", prev, "A cached"), PL_ORIGIN_CACHE);
        pl_result *r = NULL;
        tu_ok(pl_snapshot(&r, a, "shared", PL_TIME_NOW, PL_TIME_NOW, 0));
        pl_result_free(r);
        /* Alternate the writer: each handle must see the other's writes. */
        ct_put(i % 2 ? b : a, "shared", "f", v);
        ct_expect(a, "shared", "f", v, "A after the write");
        ct_expect(b, "shared", "f", v, "B after the write");
        tu_ok(pl_snapshot(&r, a, "shared", PL_TIME_NOW, PL_TIME_NOW, 0));
        ck_assert_str_eq(pl_result_get(r, 0)->new_value, v);
        pl_result_free(r);
    }
    pl_stats_info sa = ct_stats(a);
    ck_assert_uint_gt(sa.cache_hits, 30);
    pl_close(a);
    pl_close(b);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* No stale fill                                                             */
/* ------------------------------------------------------------------------ */

typedef struct race {
    pl_ledger *writer;
    const char *entity, *value;
    int calls;
    /* thread variant */
    int use_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go, done;
} race;

static void write_new(race *rc)
{
    ct_put(rc->writer, rc->entity, "f", rc->value);
}

static void *writer_thread(void *arg)
{
    race *rc = arg;
    pthread_mutex_lock(&rc->mu);
    while (!rc->go)
        pthread_cond_wait(&rc->cv, &rc->mu);
    pthread_mutex_unlock(&rc->mu);
    pl_change c = PL_CHANGE_INIT;
    c.entity_id = rc->entity;
    c.field_name = "f";
    c.new_value = rc->value;
    c.source_type = "test";
    int ok = pl_insert(NULL, rc->writer, &c) == PL_OK;
    pthread_mutex_lock(&rc->mu);
    rc->done = ok ? 1 : -1;
    pthread_cond_broadcast(&rc->cv);
    pthread_mutex_unlock(&rc->mu);
    return NULL;
}

/* Runs between the reader's database read and its fill: the first time,
 * a write of a new value completes on another handle. */
static void fill_hook(void *arg)
{
    race *rc = arg;
    if (rc->calls++ != 0)
        return;
    if (!rc->use_thread) {
        write_new(rc);
        return;
    }
    pthread_mutex_lock(&rc->mu);
    rc->go = 1;
    pthread_cond_broadcast(&rc->cv);
    while (!rc->done)
        pthread_cond_wait(&rc->cv, &rc->mu);
    pthread_mutex_unlock(&rc->mu);
}

static void no_stale_fill(int use_thread, int snapshot)
{
    pl_config cfg;
    ct_config(&cfg);
    pl_ledger *a = tu_open_cfg(&cfg);
    pl_ledger *b = tu_open_cfg(&cfg);
    const char *entity = snapshot ? "raced-snap" : "raced";
    ct_put(b, entity, "f", "\"OLD-7f3a-value\"");
    race rc;
    memset(&rc, 0, sizeof rc);
    rc.writer = b;
    rc.entity = entity;
    rc.value = "\"NEW-91bc-value\"";
    rc.use_thread = use_thread;
    pthread_mutex_init(&rc.mu, NULL);
    pthread_cond_init(&rc.cv, NULL);
    pthread_t th;
    if (use_thread)
        ck_assert_int_eq(pthread_create(&th, NULL, writer_thread, &rc), 0);
    pl_cache_set_fill_hook(a->cache, fill_hook, &rc);

    /* A misses, reads the old value, and B's write completes before A's
     * fill: A's (concurrent) answer may be old, but its fill is refused. */
    pl_result *r = NULL;
    if (snapshot)
        tu_ok(pl_snapshot(&r, a, entity, PL_TIME_NOW, PL_TIME_NOW, 0));
    else
        tu_ok(pl_current(&r, a, entity, "f", 0));
    ck_assert_int_eq(rc.calls, 1);
    ck_assert_str_eq(pl_result_get(r, 0)->new_value, "\"OLD-7f3a-value\"");
    pl_result_free(r);
    if (use_thread) {
        pthread_join(th, NULL);
        ck_assert_int_eq(rc.done, 1);
    }
    pl_stats_info sa = ct_stats(a);
    ck_assert_uint_eq(sa.cache_fills_refused, 1);
    ck_assert_uint_eq(sa.cache_fills, 0);

    /* Redis holds no answer with the old value (under any epoch). */
    const char *prefix = ct_prefix();
    ck_assert_int_eq(ct_redis_values_with(prefix, "OLD-7f3a-value", NULL), 0);

    /* A's next reads: the new value, read again and then served. */
    for (int i = 0; i < 2; i++) {
        if (snapshot)
            tu_ok(pl_snapshot(&r, a, entity, PL_TIME_NOW, PL_TIME_NOW, 0));
        else
            tu_ok(pl_current(&r, a, entity, "f", 0));
        ck_assert_str_eq(pl_result_get(r, 0)->new_value, "\"NEW-91bc-value\"");
        ck_assert_int_eq(pl_result_origin(r), i == 0 ? PL_ORIGIN_PRIMARY : PL_ORIGIN_CACHE);
        pl_result_free(r);
    }
    ck_assert_int_eq(rc.calls, 2);
    sa = ct_stats(a);
    ck_assert_uint_eq(sa.cache_fills, 1);
    ck_assert_uint_eq(sa.cache_fills_refused, 1);
    /* The inspection above can see an answer: the new one is there now. */
    ck_assert_int_eq(ct_redis_values_with(prefix, "NEW-91bc-value", NULL), 1);
    ck_assert_int_eq(ct_redis_values_with(prefix, "OLD-7f3a-value", NULL), 0);
    pl_close(a);
    pl_close(b);
    pthread_cond_destroy(&rc.cv);
    pthread_mutex_destroy(&rc.mu);
}

START_TEST(test_no_stale_fill)
{
    no_stale_fill(0, 0);
}
END_TEST

START_TEST(test_no_stale_fill_thread)
{
    no_stale_fill(1, 0);
}
END_TEST

START_TEST(test_no_stale_fill_snapshot)
{
    no_stale_fill(1, 1);
}
END_TEST

/* A fill whose token was found in the hash (not created by this reader)
 * races a write followed by another reader's miss, which creates a new
 * token: the first fill must still be refused. */
typedef struct race2 {
    pl_ledger *writer, *other;
    int calls;
} race2;

static void fill_hook2(void *arg)
{
    race2 *rc = arg;
    if (rc->calls++ != 0)
        return;
    ct_put(rc->writer, "raced2", "f", "\"NEW-2\"");
    /* Another reader misses (new token) and fills the new value. */
    ct_expect(rc->other, "raced2", "f", "\"NEW-2\"", "other reader");
}

START_TEST(test_no_stale_fill_token_reused)
{
    pl_config cfg;
    ct_config(&cfg);
    pl_ledger *a = tu_open_cfg(&cfg);
    pl_ledger *b = tu_open_cfg(&cfg);
    pl_ledger *c = tu_open_cfg(&cfg);
    ct_put(b, "raced2", "f", "\"OLD-2\"");
    ct_put(b, "raced2", "g", "0");
    /* Another answer of the entity is cached: its hash and token exist. */
    ct_expect(a, "raced2", "g", "0", "g");
    ck_assert_int_eq(ct_expect(a, "raced2", "g", "0", "g"), PL_ORIGIN_CACHE);
    race2 rc = {b, c, 0};
    pl_cache_set_fill_hook(a->cache, fill_hook2, &rc);
    ck_assert_int_eq(ct_expect(a, "raced2", "f", "\"OLD-2\"", "raced read"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(rc.calls, 1);
    pl_stats_info sa = ct_stats(a);
    ck_assert_uint_eq(sa.cache_fills_refused, 1);
    const char *prefix = ct_prefix();
    ck_assert_int_eq(ct_redis_values_with(prefix, "OLD-2", NULL), 0);
    ck_assert_int_eq(ct_expect(a, "raced2", "f", "\"NEW-2\"", "after"), PL_ORIGIN_CACHE);
    pl_close(a);
    pl_close(b);
    pl_close(c);
}
END_TEST

/* The race of issue "the cache breaks linearizability", step by step: a
 * reader's fill is held between its database read (old value) and its
 * store; a write commits and is held before it clears its intents (where
 * the old protocol invalidated); a second reader reads the new value and
 * returns; the first fill is released. No read that starts after the second
 * reader returned may go back to the old value: not while the writer is
 * still held, not after. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived, released;
} gate;

static void gate_init(gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

static void gate_destroy(gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

/* Hook side: say we are here, wait to be let go (the first time only). */
static void gate_hold(void *arg)
{
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    if (!g->arrived) {
        g->arrived = 1;
        pthread_cond_broadcast(&g->cv);
        while (!g->released)
            pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

static void gate_wait_arrived(gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->arrived)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->released = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

typedef struct held_call {
    pl_ledger *l;
    const char *entity, *value; /* value: write it; NULL: read */
    int rc;
    char got[64];
} held_call;

static void *held_call_main(void *arg)
{
    held_call *h = arg;
    if (h->value) {
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = h->entity;
        c.field_name = "f";
        c.new_value = h->value;
        c.source_type = "test";
        h->rc = pl_insert(NULL, h->l, &c);
    } else {
        pl_result *r = NULL;
        h->rc = pl_current(&r, h->l, h->entity, "f", 0);
        if (h->rc == PL_OK)
            snprintf(h->got, sizeof h->got, "%s", pl_result_get(r, 0)->new_value);
        pl_result_free(r);
    }
    return NULL;
}

START_TEST(test_held_fill_never_goes_back)
{
    pl_config cfg;
    ct_config(&cfg);
    pl_ledger *a = tu_open_cfg(&cfg); /* the reader whose fill is held */
    pl_ledger *b = tu_open_cfg(&cfg); /* the writer, held after its commit */
    pl_ledger *c = tu_open_cfg(&cfg); /* later readers */
    const char *entity = "held-race";
    ct_put(b, entity, "f", "\"OLD-held\"");
    gate fill_gate, write_gate;
    gate_init(&fill_gate);
    gate_init(&write_gate);
    pl_cache_set_fill_hook(a->cache, gate_hold, &fill_gate);
    pl_cache_set_write_hook(b->cache, gate_hold, &write_gate);

    held_call reader = {a, entity, NULL, -1, ""};
    held_call writer = {b, entity, "\"NEW-held\"", -1, ""};
    pthread_t rt, wt;
    ck_assert_int_eq(pthread_create(&rt, NULL, held_call_main, &reader), 0);
    gate_wait_arrived(&fill_gate); /* read the old value, fill not stored yet */
    ck_assert_int_eq(pthread_create(&wt, NULL, held_call_main, &writer), 0);
    gate_wait_arrived(&write_gate); /* committed, intents not cleared yet */

    /* The second reader sees the commit (PostgreSQL is linearizable). */
    ck_assert_int_eq(ct_expect(c, entity, "f", "\"NEW-held\"", "second reader"), PL_ORIGIN_PRIMARY);
    gate_release(&fill_gate);
    pthread_join(rt, NULL);
    ck_assert_int_eq(reader.rc, PL_OK);
    ck_assert_str_eq(reader.got, "\"OLD-held\""); /* its read overlapped the write */
    /* Started after the second reader returned: never the old value. */
    for (int i = 0; i < 3; i++) {
        ct_expect(c, entity, "f", "\"NEW-held\"", "while the writer is held");
        ct_expect(a, entity, "f", "\"NEW-held\"", "first handle, writer held");
    }
    gate_release(&write_gate);
    pthread_join(wt, NULL);
    ck_assert_int_eq(writer.rc, PL_OK);
    for (int i = 0; i < 3; i++) {
        ct_expect(c, entity, "f", "\"NEW-held\"", "after the write returned");
        ct_expect(a, entity, "f", "\"NEW-held\"", "first handle, after the write");
    }
    /* And the cache serves it again once the write is over. */
    ck_assert_int_eq(ct_expect(c, entity, "f", "\"NEW-held\"", "cached again"), PL_ORIGIN_CACHE);
    pl_cache_set_fill_hook(a->cache, NULL, NULL);
    pl_cache_set_write_hook(b->cache, NULL, NULL);
    gate_destroy(&fill_gate);
    gate_destroy(&write_gate);
    pl_close(a);
    pl_close(b);
    pl_close(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Time moves answers                                                        */
/* ------------------------------------------------------------------------ */

static int snap_expect(pl_ledger *l, const char *entity, const char *const *want, size_t n,
                       const char *what)
{
    pl_result *r = NULL;
    int rc = pl_snapshot(&r, l, entity, PL_TIME_NOW, PL_TIME_NOW, 0);
    if (n == 0) {
        ck_assert_msg(rc == PL_NOT_FOUND, "%s: snapshot(%s) -> %d, want not found", what, entity,
                      rc);
        return -1;
    }
    ck_assert_msg(rc == PL_OK, "%s: snapshot(%s) -> %d: %s", what, entity, rc, pl_errmsg());
    ck_assert_msg(pl_result_count(r) == n, "%s: snapshot(%s) has %zu records, want %zu", what,
                  entity, pl_result_count(r), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strcmp(pl_result_get(r, i)->new_value, want[i]) == 0,
                      "%s: snapshot(%s)[%zu] = %s, want %s", what, entity, i,
                      pl_result_get(r, i)->new_value, want[i]);
    int origin = pl_result_origin(r);
    pl_result_free(r);
    return origin;
}

/* One attempt with the boundary `offset_us` from now; returns 0 (nothing
 * asserted about the cache) when the machine was too slow to finish the
 * reads before the boundary. */
static int time_attempt(pl_ledger *l, int attempt, pl_time offset_us)
{
    char e1[16], e2[16], e3[16], e4[16];
    snprintf(e1, sizeof e1, "t%d-e1", attempt);
    snprintf(e2, sizeof e2, "t%d-e2", attempt);
    snprintf(e3, sizeof e3, "t%d-e3", attempt);
    snprintf(e4, sizeof e4, "t%d-e4", attempt);
    pl_time boundary = pl_time_now() + offset_us;
    /* e1: a value valid from the boundary over an existing current one. */
    ct_put(l, e1, "f", "\"old\"");
    ct_put_full(l, e1, "f", "\"new\"", boundary, PL_TIME_INFINITY);
    ct_put(l, e1, "g", "\"stable\"");
    /* e2: a temporary value over a base one, ending at the boundary. */
    ct_put(l, e2, "f", "\"base\"");
    ct_put_full(l, e2, "f", "\"temp\"", PL_TIME_NOW, boundary);
    /* e3: the only value ends at the boundary. */
    ct_put_full(l, e3, "f", "\"brief\"", PL_TIME_NOW, boundary);
    /* e4: the only value starts at the boundary. */
    ct_put_full(l, e4, "f", "\"later\"", boundary, PL_TIME_INFINITY);

    static const char *const e1_before[] = {"\"old\"", "\"stable\""};
    static const char *const e1_after[] = {"\"new\"", "\"stable\""};
    static const char *const e3_before[] = {"\"brief\""};
    static const char *const e4_after[] = {"\"later\""};
    pl_stats_info s0 = ct_stats(l);
    int origins[2][5];
    for (int pass = 0; pass < 2; pass++) {
        origins[pass][0] = ct_expect(l, e1, "f", "\"old\"", "e1 before");
        origins[pass][1] = ct_expect(l, e2, "f", "\"temp\"", "e2 before");
        origins[pass][2] = ct_expect(l, e3, "f", "\"brief\"", "e3 before");
        ct_expect(l, e4, "f", NULL, "e4 before");
        origins[pass][3] = snap_expect(l, e1, e1_before, 2, "snapshot e1 before");
        origins[pass][4] = snap_expect(l, e3, e3_before, 1, "snapshot e3 before");
        snap_expect(l, e4, NULL, 0, "snapshot e4 before");
    }
    pl_stats_info s1 = ct_stats(l);
    if (pl_time_now() > boundary - 50000) {
        fprintf(stderr, "time test: the boundary (%lld ms ahead) passed during set-up: retrying\n",
                (long long)(offset_us / 1000));
        return 0;
    }
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(origins[0][k], PL_ORIGIN_PRIMARY);
        ck_assert_int_eq(origins[1][k], PL_ORIGIN_CACHE);
    }
    ck_assert_uint_eq(s1.cache_hits, s0.cache_hits + 7); /* not-found answers included */
    while (pl_time_now() < boundary + 50000)
        tu_sleep_ms(20);

    /* No write since: the answers moved with the clock, each a miss. */
    ck_assert_int_eq(ct_expect(l, e1, "f", "\"new\"", "e1 after"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(ct_expect(l, e2, "f", "\"base\"", "e2 after"), PL_ORIGIN_PRIMARY);
    ct_expect(l, e3, "f", NULL, "e3 after");
    ck_assert_int_eq(ct_expect(l, e4, "f", "\"later\"", "e4 after"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(snap_expect(l, e1, e1_after, 2, "snapshot e1 after"), PL_ORIGIN_PRIMARY);
    snap_expect(l, e3, NULL, 0, "snapshot e3 after");
    ck_assert_int_eq(snap_expect(l, e4, e4_after, 1, "snapshot e4 after"), PL_ORIGIN_PRIMARY);
    /* A field of e1 never read alone: a miss, then served. */
    ck_assert_int_eq(ct_expect(l, e1, "g", "\"stable\"", "e1 g"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(ct_expect(l, e1, "g", "\"stable\"", "e1 g"), PL_ORIGIN_CACHE);
    pl_stats_info s2 = ct_stats(l);
    ck_assert_uint_eq(s2.cache_hits, s1.cache_hits + 1);
    ck_assert_uint_eq(s2.cache_misses, s1.cache_misses + 8);
    ck_assert_uint_eq(s2.inserts, s1.inserts);
    /* And the new answers are served from now on. */
    ck_assert_int_eq(ct_expect(l, e1, "f", "\"new\"", "e1 after"), PL_ORIGIN_CACHE);
    ck_assert_int_eq(ct_expect(l, e2, "f", "\"base\"", "e2 after"), PL_ORIGIN_CACHE);
    ck_assert_int_eq(snap_expect(l, e1, e1_after, 2, "snapshot e1 after"), PL_ORIGIN_CACHE);
    return 1;
}

START_TEST(test_time_moves_answers)
{
    pl_ledger *l = ct_open();
    ct_put(l, "warm", "f", "0");
    ct_expect(l, "warm", "f", "0", "warm-up");
    /* 1.5 s ahead; further on a machine too loaded for that. */
    int done = 0;
    pl_time offset = 1500000;
    for (int attempt = 0; attempt < 3 && !done; attempt++, offset *= 3)
        done = time_attempt(l, attempt, offset);
    ck_assert_msg(done, "the machine was too slow for every attempt");
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Keys that are hard                                                        */
/* ------------------------------------------------------------------------ */

START_TEST(test_hard_keys)
{
    pl_ledger *l = ct_open();
    enum { NIDS = 22, NFIELDS = 5 };
    static char ctrl[32], long1[PL_MAX_KEY_BYTES + 1], long2[PL_MAX_KEY_BYTES + 1],
        long_utf8[PL_MAX_KEY_BYTES + 1], long_field[PL_MAX_KEY_BYTES + 1];
    for (int i = 1; i < 32; i++)
        ctrl[i - 1] = (char)i;
    memset(long1, 'x', PL_MAX_KEY_BYTES);
    memset(long2, 'x', PL_MAX_KEY_BYTES);
    long2[PL_MAX_KEY_BYTES - 1] = 'y'; /* differs in the last byte only */
    size_t n = 0;
    while (n + 3 <= PL_MAX_KEY_BYTES - 1) {
        memcpy(long_utf8 + n, "\xe6\x97\xa5", 3); /* U+65E5 */
        n += 3;
    }
    long_utf8[n] = 'z';
    memset(long_field, 'f', PL_MAX_KEY_BYTES);
    const char *ids[NIDS] = {
        "a", "a:", "a:1", "1:a", "a*", "*", "?", "[a-z]", "a b c", " a", "a ",
        "cr\rlf\nboth\r\n", "q\"uo'te`s\\", ctrl, "\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89",
        long1, long2, long_utf8, "t", "c", "s", "{hash}tag"};
    const char *fields[NFIELDS] = {"t", "c", "s", "ct", long_field};
    char value[NIDS][NFIELDS][32];
    for (int i = 0; i < NIDS; i++)
        for (int j = 0; j < NFIELDS; j++) {
            snprintf(value[i][j], sizeof value[i][j], "\"id%d-field%d\"", i, j);
            ct_put(l, ids[i], fields[j], value[i][j]);
        }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < NIDS; i++)
            for (int j = 0; j < NFIELDS; j++) {
                char what[64];
                snprintf(what, sizeof what, "id %d field %d pass %d", i, j, pass);
                int origin = ct_expect(l, ids[i], fields[j], value[i][j], what);
                REQUIRE(origin == (pass ? PL_ORIGIN_CACHE : PL_ORIGIN_PRIMARY), "%s: origin %d",
                        what, origin);
            }
    /* Snapshots: fields in byte order "c", "ct", "f...", "s", "t". */
    static const int order[NFIELDS] = {1, 3, 4, 2, 0};
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < NIDS; i++) {
            pl_result *r = NULL;
            tu_ok(pl_snapshot(&r, l, ids[i], PL_TIME_NOW, PL_TIME_NOW, 0));
            REQUIRE(pl_result_origin(r) == (pass ? PL_ORIGIN_CACHE : PL_ORIGIN_PRIMARY),
                    "snapshot id %d pass %d: origin %d", i, pass, pl_result_origin(r));
            REQUIRE(pl_result_count(r) == NFIELDS, "snapshot id %d: %zu records", i,
                    pl_result_count(r));
            for (int k = 0; k < NFIELDS; k++) {
                const pl_record *rec = pl_result_get(r, (size_t)k);
                REQUIRE(strcmp(rec->entity_id, ids[i]) == 0, "snapshot id %d: another entity", i);
                REQUIRE(strcmp(rec->field_name, fields[order[k]]) == 0,
                        "snapshot id %d record %d: field %.20s", i, k, rec->field_name);
                REQUIRE(strcmp(rec->new_value, value[i][order[k]]) == 0,
                        "snapshot id %d record %d: %s, want %s", i, k, rec->new_value,
                        value[i][order[k]]);
            }
            pl_result_free(r);
        }
    /* A write to "a" (and to the glob "*") invalidates exactly that entity:
     * "a:", "a:1", "a*" keep their (correct) cached answers. */
    ct_put(l, "a", "t", "\"a-new\"");
    ct_put(l, "*", "t", "\"star-new\"");
    ck_assert_int_eq(ct_expect(l, "a", "t", "\"a-new\"", "a after write"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(ct_expect(l, "*", "t", "\"star-new\"", "* after write"), PL_ORIGIN_PRIMARY);
    for (int i = 1; i < NIDS; i++) {
        if (i == 5)
            continue; /* "*" */
        char what[64];
        snprintf(what, sizeof what, "id %d after writes to a and *", i);
        int origin = ct_expect(l, ids[i], "t", value[i][0], what);
        REQUIRE(origin == PL_ORIGIN_CACHE, "%s: origin %d", what, origin);
    }
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Counters                                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(test_stats_move)
{
    pl_ledger *l = ct_open();
    pl_stats_info s = ct_stats(l);
    ck_assert_uint_eq(s.cache_hits, 0);
    ck_assert_uint_eq(s.cache_misses, 0);
    ck_assert_uint_eq(s.cache_fills, 0);
    ck_assert_uint_eq(s.cache_fills_refused, 0);
    ck_assert_uint_eq(s.cache_invalidations, 0);
    ck_assert_uint_eq(s.cache_bypassed, 0);
    ck_assert_uint_eq(s.redis_errors, 0);
    ck_assert_int_eq(s.cache_degraded, 0);
    ck_assert(s.cache_hit_rate == 0.0);

    ct_put(l, "st", "f", "1");
    s = ct_stats(l);
    ck_assert_uint_eq(s.cache_invalidations, 1);
    ck_assert_uint_eq(s.inserts, 1);
    ct_expect(l, "st", "f", "1", "miss");
    s = ct_stats(l);
    ck_assert_uint_eq(s.cache_misses, 1);
    ck_assert_uint_eq(s.cache_fills, 1);
    ck_assert_uint_eq(s.cache_hits, 0);
    ck_assert(s.cache_hit_rate == 0.0);
    for (int i = 0; i < 3; i++)
        ct_expect(l, "st", "f", "1", "hit");
    s = ct_stats(l);
    ck_assert_uint_eq(s.cache_hits, 3);
    ck_assert_uint_eq(s.cache_misses, 1);
    ck_assert_double_eq_tol(s.cache_hit_rate, 0.75, 1e-9);
    char *v = ct_value(l, "st", "f", PL_REALTIME, NULL);
    free(v);
    s = ct_stats(l);
    ck_assert_uint_eq(s.cache_bypassed, 1);
    ck_assert_uint_eq(s.cache_hits + s.cache_misses, 4);
    pl_result *r = NULL;
    ck_assert_int_eq(pl_current(&r, l, "st-none", "f", 0), PL_NOT_FOUND);
    ck_assert_int_eq(pl_current(&r, l, "st-none", "f", 0), PL_NOT_FOUND);
    s = ct_stats(l);
    ck_assert_uint_eq(s.cache_misses, 2);
    ck_assert_uint_eq(s.cache_fills, 2);
    ck_assert_uint_eq(s.cache_hits, 4);
    ck_assert_double_eq_tol(s.cache_hit_rate, 4.0 / 6.0, 1e-9);
    /* Histories and ranges are not cached: no lookup is counted. */
    tu_ok(pl_history(&r, l, "st", "f", 0));
    pl_result_free(r);
    tu_ok(pl_range(&r, l, "st", NULL, PL_TIME_ANY, PL_TIME_NOW, 0));
    pl_result_free(r);
    pl_stats_info s2 = ct_stats(l);
    ck_assert_uint_eq(s2.cache_hits + s2.cache_misses, s.cache_hits + s.cache_misses);
    /* A batch counts one invalidation per change. */
    pl_change b[3] = {PL_CHANGE_INIT, PL_CHANGE_INIT, PL_CHANGE_INIT};
    for (int i = 0; i < 3; i++) {
        b[i].entity_id = i == 2 ? "st2" : "st";
        b[i].field_name = i == 1 ? "g" : "f";
        b[i].new_value = "2";
        b[i].source_type = "test";
    }
    tu_ok(pl_insert_batch(NULL, l, b, 3));
    s = ct_stats(l);
    /* 1 before; then one per entity written at least (2), per change at most (3) */
    ck_assert_uint_ge(s.cache_invalidations, 1 + 2);
    ck_assert_uint_le(s.cache_invalidations, 1 + 3);
    ck_assert_uint_eq(s.redis_errors, 0);
    ck_assert_int_eq(s.cache_degraded, 0);
    ck_assert_uint_eq(s.cache_degraded_us, 0);
    ck_assert_uint_eq(s.cache_fills_refused, 0);
    /* The struct can grow: an older caller's size is honoured. */
    pl_stats_info small;
    memset(&small, 0xa5, sizeof small);
    tu_ok(pl_stats(&small, l, offsetof(pl_stats_info, cache_fills)));
    ck_assert_uint_eq(small.cache_hits, s.cache_hits);
    ck_assert_uint_eq(small.cache_misses, s.cache_misses);
    unsigned char *tail = (unsigned char *)&small + offsetof(pl_stats_info, cache_fills);
    for (size_t i = 0; i < sizeof small - offsetof(pl_stats_info, cache_fills); i++)
        REQUIRE(tail[i] == 0xa5, "pl_stats wrote past the size it was given (byte %zu)", i);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Connections                                                               */
/* ------------------------------------------------------------------------ */

START_TEST(test_unix_socket)
{
    const char *unix_url = getenv("PL_TEST_REDIS_UNIX");
    ck_assert_msg(unix_url && *unix_url, "PL_TEST_REDIS_UNIX is not set");
    pl_config cfg;
    ct_config(&cfg);
    cfg.redis_url = unix_url;
    pl_ledger *l = tu_open_cfg(&cfg);
    ct_put(l, "ux", "f", "\"unix-db0\"");
    ck_assert_int_eq(ct_expect(l, "ux", "f", "\"unix-db0\"", "unix"), PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(ct_expect(l, "ux", "f", "\"unix-db0\"", "unix"), PL_ORIGIN_CACHE);
    pl_stats_info s = ct_stats(l);
    ck_assert_int_eq(s.cache_degraded, 0);
    ck_assert_uint_eq(s.redis_errors, 0);
    pl_close(l);

    /* ?db=N selects the database: the answer lands in db 3, not in db 0. */
    char url[512];
    snprintf(url, sizeof url, "%s?db=3", unix_url);
    cfg.redis_url = url;
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%sdb3:", ct_prefix());
    cfg.cache_key_prefix = prefix;
    l = tu_open_cfg(&cfg);
    ct_put(l, "ux3", "f", "\"unix-db3\"");
    ct_expect(l, "ux3", "f", "\"unix-db3\"", "db3");
    ck_assert_int_eq(ct_expect(l, "ux3", "f", "\"unix-db3\"", "db3"), PL_ORIGIN_CACHE);
    ck_assert_int_eq(ct_redis_values_with(prefix, "unix-db3", NULL), 0); /* db 0 */
    redisContext *rc = ct_redis();
    redisReply *rep = ct_rcmd(rc, "SELECT 3");
    freeReplyObject(rep);
    rep = ct_rcmd(rc, "KEYS %s*", prefix);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(rep->elements, 2); /* the entity's hash and the epoch marker */
    freeReplyObject(rep);
    redisFree(rc);
    pl_close(l);
}
END_TEST

START_TEST(test_wrong_password)
{
    char url[256];
    snprintf(url, sizeof url, "redis://:not-the-password@127.0.0.1:%s/0",
             getenv("PL_TEST_REDIS_PORT"));
    pl_config cfg;
    ct_config(&cfg);
    cfg.redis_url = url;
    pl_ledger *l = NULL;
    tu_ok(pl_open(&l, &cfg)); /* an unusable Redis does not fail pl_open */
    tu_ok(pl_migrate(l));
    ct_put(l, "pw", "f", "1");
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(ct_expect(l, "pw", "f", "1", "wrong password"), PL_ORIGIN_PRIMARY);
    ct_put(l, "pw", "f", "2");
    ck_assert_int_eq(ct_expect(l, "pw", "f", "2", "wrong password"), PL_ORIGIN_PRIMARY);
    pl_stats_info s = ct_stats(l);
    ck_assert_int_ne(s.cache_degraded, 0);
    ck_assert_uint_gt(s.redis_errors, 0);
    ck_assert_uint_eq(s.cache_hits, 0);
    ck_assert_uint_ge(s.cache_bypassed, 6);
    ck_assert_uint_gt(s.cache_degraded_us, 0);
    pl_close(l);

    /* A malformed URL is a configuration error. */
    const char *bad[] = {"redis://127.0.0.1", "redis://user@127.0.0.1:1", "http://x:1",
                         "unix://relative.sock", "redis://127.0.0.1:0", "redis://127.0.0.1:1/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.redis_url = bad[i];
        l = NULL;
        int rc = pl_open(&l, &cfg);
        ck_assert_msg(rc == PL_EINVAL, "pl_open(redis_url %s) -> %d, want PL_EINVAL", bad[i], rc);
        ck_assert_ptr_null(l);
    }
}
END_TEST

/* Opens a ledger on its own schema (another database, as far as the cache
 * can tell) with the given key prefix. */
static pl_ledger *open_other(const char *schema, const char *prefix)
{
    pl_config cfg;
    ct_config(&cfg);
    cfg.schema = schema;
    cfg.cache_key_prefix = prefix;
    return tu_open_cfg(&cfg);
}

START_TEST(test_prefixes_isolate)
{
    char s2[80], p1[160], p2[160];
    snprintf(s2, sizeof s2, "%s_b", ct_schema());
    snprintf(p1, sizeof p1, "%sone:", ct_prefix());
    snprintf(p2, sizeof p2, "%stwo:", ct_prefix());
    pl_ledger *l1 = open_other(ct_schema(), p1);
    pl_ledger *l2 = open_other(s2, p2);
    ct_put(l1, "same", "f", "\"ledger-one\"");
    ct_put(l2, "same", "f", "\"ledger-two\"");
    for (int pass = 0; pass < 2; pass++) {
        int want = pass ? PL_ORIGIN_CACHE : PL_ORIGIN_PRIMARY;
        ck_assert_int_eq(ct_expect(l1, "same", "f", "\"ledger-one\"", "l1"), want);
        ck_assert_int_eq(ct_expect(l2, "same", "f", "\"ledger-two\"", "l2"), want);
    }
    ck_assert_int_eq(ct_redis_values_with(p1, "ledger-two", NULL), 0);
    ck_assert_int_eq(ct_redis_values_with(p2, "ledger-one", NULL), 0);
    ck_assert_int_eq(ct_redis_values_with(p1, "ledger-one", NULL), 1);
    /* A write on one does not touch the other's entries. */
    ct_put(l1, "same", "f", "\"ledger-one-b\"");
    ck_assert_int_eq(ct_expect(l2, "same", "f", "\"ledger-two\"", "l2 after l1's write"),
                     PL_ORIGIN_CACHE);
    ck_assert_int_eq(ct_expect(l1, "same", "f", "\"ledger-one-b\"", "l1 after its write"),
                     PL_ORIGIN_PRIMARY);
    pl_close(l1);
    pl_close(l2);
}
END_TEST

/* Two prefixes where one extends the other ("X" and "X<epoch>:") are
 * different prefixes too: their ledgers must not answer for each other. */
START_TEST(test_prefixes_nested)
{
    char s2[80], p1[160], p2[192], id1[64];
    snprintf(s2, sizeof s2, "%s_n", ct_schema());
    snprintf(p1, sizeof p1, "%sn:", ct_prefix());
    pl_ledger *l1 = open_other(ct_schema(), p1);
    ct_put(l1, "warm", "f", "0");
    ct_expect(l1, "warm", "f", "0", "bind l1");
    long long e1 = ct_epoch(ct_schema());
    snprintf(p2, sizeof p2, "%s%lld:", p1, e1);
    pl_ledger *l2 = open_other(s2, p2);
    ct_put(l2, "warm", "f", "0");
    ct_expect(l2, "warm", "f", "0", "bind l2");
    long long e2 = ct_epoch(s2);
    /* l1's key for id1 is p1 + e1 + ":" + e2 + ":dup", exactly l2's key
     * for "dup". */
    snprintf(id1, sizeof id1, "%lld:dup", e2);
    ct_put(l1, id1, "f", "\"answer-of-ledger-one\"");
    ct_put(l2, "dup", "f", "\"answer-of-ledger-two\"");
    ct_expect(l2, "dup", "f", "\"answer-of-ledger-two\"", "l2 fills");
    ck_assert_int_eq(ct_expect(l2, "dup", "f", "\"answer-of-ledger-two\"", "l2 hit"),
                     PL_ORIGIN_CACHE);
    ct_expect(l1, id1, "f", "\"answer-of-ledger-one\"", "l1 must get its own answer");
    ct_expect(l1, id1, "f", "\"answer-of-ledger-one\"", "l1 must get its own answer");
    ct_expect(l2, "dup", "f", "\"answer-of-ledger-two\"", "l2 must get its own answer");
    pl_close(l1);
    pl_close(l2);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("cache");
    TCase *tc = tu_tcase("hits", 120);
    tcase_add_checked_fixture(tc, ct_fresh, NULL);
    tcase_add_test(tc, test_hits_exact);
    tcase_add_test(tc, test_realtime_bypasses);
    tcase_add_test(tc, test_writes_invalidate);
    tcase_add_test(tc, test_not_found_cached);
    tcase_add_test(tc, test_import_invalidates);
    suite_add_tcase(s, tc);
    tc = tu_tcase("read_after_write", 120);
    tcase_add_checked_fixture(tc, ct_fresh, NULL);
    tcase_add_test(tc, test_two_handles);
    tcase_add_test(tc, test_no_stale_fill);
    tcase_add_test(tc, test_no_stale_fill_thread);
    tcase_add_test(tc, test_no_stale_fill_snapshot);
    tcase_add_test(tc, test_no_stale_fill_token_reused);
    tcase_add_test(tc, test_held_fill_never_goes_back);
    suite_add_tcase(s, tc);
    tc = tu_tcase("time", 120);
    tcase_add_checked_fixture(tc, ct_fresh, NULL);
    tcase_add_test(tc, test_time_moves_answers);
    suite_add_tcase(s, tc);
    tc = tu_tcase("keys", 120);
    tcase_add_checked_fixture(tc, ct_fresh, NULL);
    tcase_add_test(tc, test_hard_keys);
    tcase_add_test(tc, test_prefixes_isolate);
    tcase_add_test(tc, test_prefixes_nested);
    suite_add_tcase(s, tc);
    tc = tu_tcase("stats", 120);
    tcase_add_checked_fixture(tc, ct_fresh, NULL);
    tcase_add_test(tc, test_stats_move);
    suite_add_tcase(s, tc);
    tc = tu_tcase("connections", 120);
    tcase_add_checked_fixture(tc, ct_fresh, NULL);
    tcase_add_test(tc, test_unix_socket);
    tcase_add_test(tc, test_wrong_password);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
