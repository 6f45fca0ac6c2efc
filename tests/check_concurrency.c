/* Concurrency: one handle shared by many threads, one entity written by many
 * writers at once, and several processes writing one entity.
 *
 * What the header promises and these tests hold it to: within one entity,
 * transaction times strictly increase in commit order, so an as-of answer
 * for a transaction time already past never changes; every function taking
 * a pl_ledger may be called concurrently on one handle.
 *
 * Threads never call ck_assert (Check is not thread-safe): they count what
 * went wrong and the test's own thread asserts afterwards.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Like ck_assert_msg, but silent on success: in fork mode every passing
 * assertion is a message to the parent, which is slow in loops. */
#define require(expr, ...)                                                  \
    do {                                                                    \
        if (!(expr))                                                        \
            ck_abort_msg(__VA_ARGS__);                                      \
    } while (0)

#define USEC INT64_C(1000000)
#define HOUR_USEC (INT64_C(3600) * USEC)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static int cmp_receipt_tt(const void *a, const void *b)
{
    const pl_receipt *x = a, *y = b;
    if (x->transaction_time != y->transaction_time)
        return x->transaction_time < y->transaction_time ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_receipt_id(const void *a, const void *b)
{
    const pl_receipt *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Checks, for one entity written only through `receipts`: receipt times are
 * unique, the entity's history (sorted by (transaction_time, id)) has
 * strictly increasing times and is exactly the set of receipts, and the
 * entity head holds the maximum time and the count. Sorts `receipts`. */
static void check_entity_order(pl_ledger *l, const char *entity, pl_receipt *receipts, size_t n)
{
    qsort(receipts, n, sizeof *receipts, cmp_receipt_tt);
    for (size_t i = 1; i < n; i++)
        require(receipts[i].transaction_time > receipts[i - 1].transaction_time,
                "receipts %zu and %zu share transaction time %" PRId64 " (ids %" PRId64 ", %" PRId64 ")",
                i - 1, i, receipts[i].transaction_time, receipts[i - 1].id, receipts[i].id);
    pl_time max_tt = n ? receipts[n - 1].transaction_time : 0;

    pl_result *h = NULL;
    tu_ok(pl_history(&h, l, entity, NULL, PL_REALTIME));
    ck_assert_uint_eq(pl_result_count(h), n);
    qsort(receipts, n, sizeof *receipts, cmp_receipt_id);
    for (size_t i = 0; i < n; i++) {
        const pl_record *r = pl_result_get(h, i);
        require(r != NULL, "history record %zu missing", i);
        if (i > 0) {
            const pl_record *p = pl_result_get(h, i - 1);
            require(r->transaction_time > p->transaction_time,
                    "history %zu: transaction time %" PRId64 " not after %" PRId64, i,
                    r->transaction_time, p->transaction_time);
        }
        pl_receipt key = {r->id, 0};
        const pl_receipt *m = bsearch(&key, receipts, n, sizeof *receipts, cmp_receipt_id);
        require(m != NULL, "history record id %" PRId64 " has no receipt", r->id);
        require(m->transaction_time == r->transaction_time,
                "record %" PRId64 ": receipt time %" PRId64 " != stored %" PRId64, r->id,
                m->transaction_time, r->transaction_time);
    }
    pl_result_free(h);

    PGconn *pg = tu_raw_open();
    const char *p[1] = {entity};
    ck_assert_int_eq(tu_raw_ll(pg, "SELECT count(*) FROM provenance_ledger WHERE entity_id = $1", 1, p),
                     (long long)n);
    ck_assert_int_eq(tu_raw_ll(pg,
                               "SELECT count(DISTINCT transaction_time) FROM provenance_ledger "
                               "WHERE entity_id = $1",
                               1, p),
                     (long long)n);
    long long head_tt = tu_raw_ll(pg,
                                  "SELECT (extract(epoch FROM last_tt) * 1000000)::bigint "
                                  "FROM entity_head WHERE entity_id = $1",
                                  1, p);
    ck_assert_msg(head_tt == max_tt, "entity_head.last_tt %lld != max transaction time %" PRId64,
                  head_tt, max_tt);
    ck_assert_int_eq(tu_raw_ll(pg, "SELECT record_count FROM entity_head WHERE entity_id = $1", 1, p),
                     (long long)n);
    PQfinish(pg);
}

/* ------------------------------------------------------------------------ */
/* Many writers, one entity                                                  */
/* ------------------------------------------------------------------------ */

typedef struct writer {
    pl_ledger *l;
    const char *entity;
    int index;
    int count;
    pl_receipt *receipts; /* count slots; `ok` filled */
    int ok;
    int errors;
    int first_rc;
    char first_msg[256];
    int out_of_order; /* own receipts not increasing in call order */
} writer;

static void note_error(int *errors, int *first_rc, char *first_msg, size_t len, int rc)
{
    if ((*errors)++ == 0) {
        *first_rc = rc;
        snprintf(first_msg, len, "%s", pl_errmsg());
    }
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < w->count; i++) {
        char value[64];
        snprintf(value, sizeof value, "{\"w\": %d, \"i\": %d}", w->index, i);
        pl_change c = tu_change(w->entity, "f", value);
        pl_receipt r;
        int rc = pl_insert(&r, w->l, &c);
        if (rc) {
            note_error(&w->errors, &w->first_rc, w->first_msg, sizeof w->first_msg, rc);
            continue;
        }
        if (w->ok > 0 && r.transaction_time <= w->receipts[w->ok - 1].transaction_time)
            w->out_of_order++;
        w->receipts[w->ok++] = r;
    }
    return NULL;
}

START_TEST(one_entity_many_writers)
{
    enum { THREADS = 16, EACH = 200 };
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 8;
    pl_ledger *l = tu_open_cfg(&cfg);
    const char *entity = "conc-one-entity";

    writer w[THREADS];
    pthread_t th[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (writer){.l = l, .entity = entity, .index = i, .count = EACH};
        w[i].receipts = calloc(EACH, sizeof(pl_receipt));
        ck_assert_ptr_nonnull(w[i].receipts);
        ck_assert_int_eq(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    pl_receipt *all = calloc(THREADS * EACH, sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t n = 0;
    for (int i = 0; i < THREADS; i++) {
        ck_assert_msg(w[i].errors == 0, "writer %d: %d errors, first %d (%s): %s", i, w[i].errors,
                      w[i].first_rc, pl_strerror(w[i].first_rc), w[i].first_msg);
        ck_assert_msg(w[i].out_of_order == 0,
                      "writer %d: %d receipts not after the writer's previous one", i,
                      w[i].out_of_order);
        memcpy(all + n, w[i].receipts, (size_t)w[i].ok * sizeof *all);
        n += (size_t)w[i].ok;
        free(w[i].receipts);
    }
    ck_assert_uint_eq(n, THREADS * EACH);
    check_entity_order(l, entity, all, n);

    pl_stats_info st;
    tu_ok(pl_stats(&st, l, sizeof st));
    ck_assert_uint_eq(st.inserts, THREADS * EACH);
    ck_assert_uint_le(st.pool_open, 8);
    free(all);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* An as-of answer for a time already past never changes                    */
/* ------------------------------------------------------------------------ */

typedef struct published {
    pthread_mutex_t mu;
    pl_receipt *r;
    char *is_f; /* the receipt is of field "f" */
    int n, cap;
} published;

typedef struct observation {
    pl_time t;        /* asked at (t, any) */
    int t_is_f;       /* t is the time of an "f" record: that record is the answer */
    int64_t t_id;     /* ...with this id */
    int rc;
    int64_t id;
    pl_time tt;
    char value[64];
} observation;

typedef struct asof_ctx {
    pl_ledger *l;
    const char *entity;
    published pub;
    atomic_int writers_left;
} asof_ctx;

typedef struct asof_writer {
    asof_ctx *ctx;
    int index, count;
    int errors, first_rc;
    char first_msg[256];
} asof_writer;

typedef struct asof_reader {
    asof_ctx *ctx;
    uint64_t seed;
    unsigned flags;
    observation *obs;
    int nobs, cap;
    int errors, first_rc;
    char first_msg[256];
} asof_reader;

static void *asof_writer_main(void *arg)
{
    asof_writer *w = arg;
    asof_ctx *ctx = w->ctx;
    for (int i = 0; i < w->count; i++) {
        /* Two fields: an as-of answer for "f" at a time of a "g" record is
         * the latest "f" before it. */
        int is_f = (i + w->index) % 3 != 0;
        char value[64];
        snprintf(value, sizeof value, "{\"w\": %d, \"i\": %d}", w->index, i);
        pl_change c = tu_change(ctx->entity, is_f ? "f" : "g", value);
        pl_receipt r;
        int rc = pl_insert(&r, ctx->l, &c);
        if (rc) {
            note_error(&w->errors, &w->first_rc, w->first_msg, sizeof w->first_msg, rc);
            continue;
        }
        pthread_mutex_lock(&ctx->pub.mu);
        if (ctx->pub.n < ctx->pub.cap) {
            ctx->pub.r[ctx->pub.n] = r;
            ctx->pub.is_f[ctx->pub.n] = (char)is_f;
            ctx->pub.n++;
        }
        pthread_mutex_unlock(&ctx->pub.mu);
    }
    atomic_fetch_sub(&ctx->writers_left, 1);
    return NULL;
}

static int ask(observation *o, pl_ledger *l, const char *entity, unsigned flags)
{
    pl_result *res = NULL;
    o->rc = pl_as_of(&res, l, entity, "f", o->t, PL_TIME_ANY, flags);
    o->id = 0;
    o->tt = 0;
    o->value[0] = '\0';
    if (o->rc == PL_OK) {
        const pl_record *rec = pl_result_get(res, 0);
        if (rec) {
            o->id = rec->id;
            o->tt = rec->transaction_time;
            snprintf(o->value, sizeof o->value, "%s", rec->new_value);
        }
    }
    pl_result_free(res);
    return o->rc;
}

static void *asof_reader_main(void *arg)
{
    asof_reader *rd = arg;
    asof_ctx *ctx = rd->ctx;
    while (atomic_load(&ctx->writers_left) > 0 && rd->nobs < rd->cap) {
        observation o;
        memset(&o, 0, sizeof o);
        pthread_mutex_lock(&ctx->pub.mu);
        int n = ctx->pub.n;
        if (n > 0) {
            /* Half the time the newest published time: the one a writer
             * still in flight would most likely disturb. */
            int k = (tu_rand64(&rd->seed) & 1) ? n - 1 : (int)(tu_rand64(&rd->seed) % (uint64_t)n);
            o.t = ctx->pub.r[k].transaction_time;
            o.t_is_f = ctx->pub.is_f[k];
            o.t_id = ctx->pub.r[k].id;
        }
        pthread_mutex_unlock(&ctx->pub.mu);
        if (n == 0) {
            tu_sleep_ms(1);
            continue;
        }
        int rc = ask(&o, ctx->l, ctx->entity, rd->flags);
        if (rc != PL_OK && rc != PL_NOT_FOUND)
            note_error(&rd->errors, &rd->first_rc, rd->first_msg, sizeof rd->first_msg, rc);
        rd->obs[rd->nobs++] = o;
    }
    return NULL;
}

START_TEST(asof_past_never_changes)
{
    enum { WRITERS = 8, EACH = 120, READERS = 3, MAXOBS = 3000 };
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 8;
    pl_ledger *l = tu_open_cfg(&cfg);

    asof_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.l = l;
    ctx.entity = "conc-asof";
    pthread_mutex_init(&ctx.pub.mu, NULL);
    ctx.pub.cap = WRITERS * EACH;
    ctx.pub.r = calloc((size_t)ctx.pub.cap, sizeof *ctx.pub.r);
    ctx.pub.is_f = calloc((size_t)ctx.pub.cap, 1);
    ck_assert(ctx.pub.r && ctx.pub.is_f);
    atomic_init(&ctx.writers_left, WRITERS);

    asof_writer w[WRITERS];
    asof_reader rd[READERS];
    pthread_t wt[WRITERS], rt[READERS];
    memset(w, 0, sizeof w);
    memset(rd, 0, sizeof rd);
    for (int i = 0; i < READERS; i++) {
        rd[i].ctx = &ctx;
        rd[i].seed = (uint64_t)i * 7919u + 1;
        rd[i].flags = i == 0 ? 0 : i == 1 ? PL_REALTIME : PL_ALLOW_STALE;
        rd[i].cap = MAXOBS;
        rd[i].obs = calloc(MAXOBS, sizeof(observation));
        ck_assert_ptr_nonnull(rd[i].obs);
        ck_assert_int_eq(pthread_create(&rt[i], NULL, asof_reader_main, &rd[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (asof_writer){.ctx = &ctx, .index = i, .count = EACH};
        ck_assert_int_eq(pthread_create(&wt[i], NULL, asof_writer_main, &w[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(wt[i], NULL);
    for (int i = 0; i < READERS; i++)
        pthread_join(rt[i], NULL);
    for (int i = 0; i < WRITERS; i++)
        ck_assert_msg(w[i].errors == 0, "writer %d: %d errors, first %d: %s", i, w[i].errors,
                      w[i].first_rc, w[i].first_msg);

    /* The final history is the ground truth for every answer. */
    pl_result *h = NULL;
    tu_ok(pl_history(&h, l, ctx.entity, "f", PL_REALTIME));
    size_t nh = pl_result_count(h);
    ck_assert_uint_gt(nh, 0);

    int total = 0, during_hits = 0;
    for (int i = 0; i < READERS; i++) {
        ck_assert_msg(rd[i].errors == 0, "reader %d: %d errors, first %d: %s", i, rd[i].errors,
                      rd[i].first_rc, rd[i].first_msg);
        for (int k = 0; k < rd[i].nobs; k++) {
            observation *o = &rd[i].obs[k];
            observation again = *o;
            ask(&again, l, ctx.entity, rd[i].flags);
            require(again.rc == o->rc && again.id == o->id && again.tt == o->tt &&
                        strcmp(again.value, o->value) == 0,
                    "as_of(%" PRId64 ", any) changed: rc %d id %" PRId64 " %s while writing, "
                    "rc %d id %" PRId64 " %s afterwards (reader %d)",
                    o->t, o->rc, o->id, o->value, again.rc, again.id, again.value, i);
            /* The answer is the latest "f" record at or before t. */
            const pl_record *want = NULL;
            for (size_t j = 0; j < nh; j++) {
                const pl_record *r = pl_result_get(h, j);
                if (r->transaction_time <= o->t)
                    want = r;
            }
            if (want) {
                require(o->rc == PL_OK && o->id == want->id,
                        "as_of(%" PRId64 ", any) gave rc %d id %" PRId64 ", history says id %" PRId64,
                        o->t, o->rc, o->id, want->id);
            } else {
                require(o->rc == PL_NOT_FOUND, "as_of(%" PRId64 ", any) gave rc %d, want NOT_FOUND",
                        o->t, o->rc);
            }
            if (o->t_is_f) {
                require(o->id == o->t_id,
                        "as_of at the time of record %" PRId64 " answered %" PRId64, o->t_id, o->id);
                during_hits++;
            }
            total++;
        }
        free(rd[i].obs);
    }
    /* The readers really ran while the writers did. */
    ck_assert_int_gt(total, 50);
    ck_assert_int_gt(during_hits, 10);
    pl_result_free(h);

    /* And the entity's times are in order overall. */
    pl_receipt *all = malloc((size_t)ctx.pub.n * sizeof *all);
    ck_assert_ptr_nonnull(all);
    memcpy(all, ctx.pub.r, (size_t)ctx.pub.n * sizeof *all);
    ck_assert_int_eq(ctx.pub.n, WRITERS * EACH);
    check_entity_order(l, ctx.entity, all, (size_t)ctx.pub.n);
    free(all);
    free(ctx.pub.r);
    free(ctx.pub.is_f);
    pthread_mutex_destroy(&ctx.pub.mu);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 100 threads, every call, one handle                                       */
/* ------------------------------------------------------------------------ */

enum { MIX_ENTITIES = 12, MIX_FIELDS = 4 };

typedef struct mix_thread {
    pl_ledger *l;
    unsigned pool;
    uint64_t seed;
    double deadline_ms;
    long ops, inserted;
    int errors, first_rc;
    char first_msg[256];
    int anomalies;
    char first_anomaly[256];
} mix_thread;

/* Entity k of the mixed load with this pool size (tests sharing one
 * schema under CK_FORK=no must not share entities). */
static void mix_entity(char *buf, size_t n, unsigned pool, int k)
{
    snprintf(buf, n, "mix%u-%02d", pool, k);
}

static void anomaly(mix_thread *t, const char *fmt, const char *a, const char *b)
{
    if (t->anomalies++ == 0)
        snprintf(t->first_anomaly, sizeof t->first_anomaly, fmt, a, b);
}

/* Every record belongs to the entity (and field) asked for; ordered lists
 * are ordered. */
static void check_result(mix_thread *t, const pl_result *r, const char *entity, const char *field,
                         int by_time, int by_field)
{
    for (size_t i = 0; i < pl_result_count(r); i++) {
        const pl_record *rec = pl_result_get(r, i);
        if (!rec) {
            anomaly(t, "record missing%s%s", "", "");
            return;
        }
        if (strcmp(rec->entity_id, entity) != 0)
            anomaly(t, "asked %s, got entity %s", entity, rec->entity_id);
        if (field && strcmp(rec->field_name, field) != 0)
            anomaly(t, "asked field %s, got %s", field, rec->field_name);
        if (i > 0) {
            const pl_record *p = pl_result_get(r, i - 1);
            if (by_time && (rec->transaction_time < p->transaction_time ||
                            (rec->transaction_time == p->transaction_time && rec->id <= p->id)))
                anomaly(t, "%s: records not ordered by time%s", entity, "");
            if (by_field && strcmp(p->field_name, rec->field_name) >= 0)
                anomaly(t, "snapshot fields not ordered: %s, %s", p->field_name, rec->field_name);
        }
    }
}

static void fill_valid(pl_change *c, uint64_t *seed, pl_time now)
{
    switch (tu_rand64(seed) % 10) {
    case 0: /* wholly past: never current */
        c->valid_from = now - 2 * HOUR_USEC;
        c->valid_to = now - HOUR_USEC;
        break;
    case 1: /* from the future */
        c->valid_from = now + HOUR_USEC;
        break;
    case 2: /* a correction covering now */
        c->valid_from = now - HOUR_USEC;
        c->valid_to = now + HOUR_USEC;
        break;
    default:
        break;
    }
}

static void *mix_main(void *arg)
{
    mix_thread *t = arg;
    unsigned flag_choice[3] = {0, PL_REALTIME, PL_ALLOW_STALE};
    /* At least one call each, however late the thread started (valgrind
     * starts a hundred threads slowly). */
    do {
        char entity[32], field[16], value[64];
        mix_entity(entity, sizeof entity, t->pool, (int)(tu_rand64(&t->seed) % MIX_ENTITIES));
        snprintf(field, sizeof field, "f%d", (int)(tu_rand64(&t->seed) % MIX_FIELDS));
        unsigned flags = flag_choice[tu_rand64(&t->seed) % 3];
        pl_time now = pl_time_now();
        pl_time past = now - (pl_time)(tu_rand64(&t->seed) % (uint64_t)(2000 * 1000));
        pl_result *r = NULL;
        int rc;
        int op = (int)(tu_rand64(&t->seed) % 100);
        if (op < 30) {
            snprintf(value, sizeof value, "{\"n\": %ld}", t->ops);
            pl_change c = tu_change(entity, field, value);
            if (tu_rand64(&t->seed) % 4 == 0)
                c.metadata = "{\"mix\": true}";
            fill_valid(&c, &t->seed, now);
            rc = pl_insert(NULL, t->l, &c);
            if (rc == PL_OK)
                t->inserted++;
        } else if (op < 35) {
            pl_change cs[3];
            char fields[3][16];
            for (int k = 0; k < 3; k++) {
                snprintf(fields[k], sizeof fields[k], "f%d", (int)(tu_rand64(&t->seed) % MIX_FIELDS));
                cs[k] = tu_change(entity, fields[k], "[1, 2, 3]");
                fill_valid(&cs[k], &t->seed, now);
            }
            pl_receipt rec[3];
            rc = pl_insert_batch(rec, t->l, cs, 3);
            if (rc == PL_OK) {
                t->inserted += 3;
                if (!(rec[0].transaction_time < rec[1].transaction_time &&
                      rec[1].transaction_time < rec[2].transaction_time))
                    anomaly(t, "%s: batch receipts not increasing%s", entity, "");
            }
        } else if (op < 50) {
            rc = pl_current(&r, t->l, entity, field, flags);
            check_result(t, r, entity, field, 0, 0);
        } else if (op < 65) {
            pl_time tx[3] = {PL_TIME_NOW, PL_TIME_ANY, past};
            pl_time vt[3] = {PL_TIME_NOW, PL_TIME_ANY, past};
            rc = pl_as_of(&r, t->l, entity, field, tx[tu_rand64(&t->seed) % 3], vt[tu_rand64(&t->seed) % 3],
                          flags);
            check_result(t, r, entity, field, 0, 0);
        } else if (op < 75) {
            pl_time tx[3] = {PL_TIME_NOW, PL_TIME_ANY, past};
            pl_time vt[3] = {PL_TIME_NOW, PL_TIME_ANY, past};
            rc = pl_snapshot(&r, t->l, entity, tx[tu_rand64(&t->seed) % 3], vt[tu_rand64(&t->seed) % 3], flags);
            check_result(t, r, entity, NULL, 0, 1);
        } else if (op < 85) {
            pl_time from = (tu_rand64(&t->seed) & 1) ? PL_TIME_ANY : past;
            pl_time to = (tu_rand64(&t->seed) & 1) ? PL_TIME_NOW : PL_TIME_ANY;
            const char *f = (tu_rand64(&t->seed) & 1) ? field : NULL;
            rc = pl_range(&r, t->l, entity, f, from, to, flags);
            check_result(t, r, entity, f, 1, 0);
        } else if (op < 93) {
            const char *f = (tu_rand64(&t->seed) & 1) ? field : NULL;
            rc = pl_history(&r, t->l, entity, f, flags);
            check_result(t, r, entity, f, 1, 0);
        } else if (op < 96) {
            char *next = NULL;
            rc = pl_search_metadata(&r, &next, t->l, "{\"mix\": true}", NULL, 20);
            pl_free(next);
            for (size_t i = 0; i < pl_result_count(r); i++)
                if (!strstr(pl_result_get(r, i)->metadata, "\"mix\": true"))
                    anomaly(t, "search answered metadata %s%s", pl_result_get(r, i)->metadata, "");
        } else if (op < 98) {
            /* The audit report of the last 100 ms: holds a pooled
             * connection while it streams. */
            pl_iter *it = NULL;
            rc = pl_audit_open(&it, t->l, NULL, now - 100000, PL_TIME_ANY);
            const pl_record *rec, *prev = NULL;
            pl_time prev_tt = 0;
            int64_t prev_id = 0;
            while (rc == PL_OK && (rc = pl_iter_next(&rec, it)) == PL_OK) {
                if (prev && (rec->transaction_time < prev_tt ||
                             (rec->transaction_time == prev_tt && rec->id <= prev_id)))
                    anomaly(t, "audit report out of order%s%s", "", "");
                prev = rec;
                prev_tt = rec->transaction_time;
                prev_id = rec->id;
            }
            if (rc == PL_ITEROVER)
                rc = PL_OK;
            pl_iter_free(it);
        } else {
            pl_table *tb = NULL;
            rc = (op & 1) ? pl_dashboard_changes(&tb, t->l, now - HOUR_USEC, PL_TIME_NOW, NULL, flags)
                          : pl_dashboard_corrections(&tb, t->l, now - HOUR_USEC, PL_TIME_NOW, flags);
            pl_table_free(tb);
        }
        pl_result_free(r);
        if (rc != PL_OK && rc != PL_NOT_FOUND)
            note_error(&t->errors, &t->first_rc, t->first_msg, sizeof t->first_msg, rc);
        t->ops++;
    } while (tu_now_ms() < t->deadline_ms);
    return NULL;
}

/* The latest-state table against the ledger itself, in one statement so
 * both sides see the same now(): the number of (entity, field) pairs whose
 * current record differs. */
static const char *const CURRENT_MISMATCH_SQL =
    "WITH direct AS ("
    "  SELECT DISTINCT ON (entity_id, field_name) entity_id, field_name, id FROM provenance_ledger"
    "   WHERE entity_id LIKE $1 AND valid_time_start <= now() AND valid_time_end > now()"
    "   ORDER BY entity_id, field_name, transaction_time DESC, id DESC),"
    " cur AS ("
    "  SELECT DISTINCT ON (entity_id, field_name) entity_id, field_name, id FROM provenance_current"
    "   WHERE entity_id LIKE $1 AND valid_time_start <= now() AND valid_time_end > now()"
    "   ORDER BY entity_id, field_name, transaction_time DESC, id DESC)"
    " SELECT count(*) FROM direct d FULL JOIN cur c USING (entity_id, field_name)"
    " WHERE d.id IS DISTINCT FROM c.id";

static void mixed_load(unsigned pool_size)
{
    enum { THREADS = 100 };
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = pool_size;
    pl_ledger *l = tu_open_cfg(&cfg);

    mix_thread t[THREADS];
    pthread_t th[THREADS];
    memset(t, 0, sizeof t);
    double deadline = tu_now_ms() + 5000;
    for (int i = 0; i < THREADS; i++) {
        t[i].l = l;
        t[i].pool = pool_size;
        t[i].seed = (uint64_t)i * 104729u + pool_size;
        t[i].deadline_ms = deadline;
        ck_assert_int_eq(pthread_create(&th[i], NULL, mix_main, &t[i]), 0);
    }
    long ops = 0, inserted = 0;
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_msg(t[i].errors == 0, "thread %d: %d errors, first %d (%s): %s", i, t[i].errors,
                      t[i].first_rc, pl_strerror(t[i].first_rc), t[i].first_msg);
        ck_assert_msg(t[i].anomalies == 0, "thread %d: %d wrong answers, first: %s", i,
                      t[i].anomalies, t[i].first_anomaly);
        ck_assert_msg(t[i].ops > 0, "thread %d never ran", i);
        ops += t[i].ops;
        inserted += t[i].inserted;
    }
    ck_assert_int_gt(inserted, 0);

    pl_stats_info st;
    tu_ok(pl_stats(&st, l, sizeof st));
    ck_assert_uint_eq(st.pool_size, pool_size);
    ck_assert_uint_le(st.pool_open, pool_size);
    ck_assert_uint_eq(st.inserts, (uint64_t)inserted);
    ck_assert_uint_eq(st.reconnects, 0);
    if (pool_size < THREADS)
        ck_assert_msg(st.pool_waits > 0, "100 threads on %u connections never waited", pool_size);

    /* What the ledger holds is what was acknowledged. */
    PGconn *pg = tu_raw_open();
    char pattern[32];
    snprintf(pattern, sizeof pattern, "mix%u-%%", pool_size);
    const char *like[1] = {pattern};
    ck_assert_int_eq(tu_raw_ll(pg, "SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE $1", 1,
                               like),
                     inserted);
    ck_assert_int_eq(tu_raw_ll(pg, "SELECT coalesce(sum(record_count), 0) FROM entity_head WHERE entity_id LIKE $1",
                               1, like),
                     inserted);
    ck_assert_int_eq(tu_raw_ll(pg, CURRENT_MISMATCH_SQL, 1, like), 0);

    /* And pl_current, answered from the latest-state table, agrees with a
     * direct reading of the ledger for every entity and field. */
    for (int e = 0; e < MIX_ENTITIES; e++) {
        for (int f = 0; f < MIX_FIELDS; f++) {
            char entity[32], field[16];
            mix_entity(entity, sizeof entity, pool_size, e);
            snprintf(field, sizeof field, "f%d", f);
            const char *p[2] = {entity, field};
            PGresult *d = tu_raw_q(pg,
                                   "SELECT id FROM provenance_ledger WHERE entity_id = $1 AND field_name = $2"
                                   " AND valid_time_start <= now() AND valid_time_end > now()"
                                   " ORDER BY transaction_time DESC, id DESC LIMIT 1",
                                   2, p);
            pl_result *r = NULL;
            int rc = pl_current(&r, l, entity, field, PL_REALTIME);
            if (PQntuples(d) == 0) {
                require(rc == PL_NOT_FOUND, "%s.%s: pl_current %d, the ledger has no current record",
                        entity, field, rc);
            } else {
                require(rc == PL_OK, "%s.%s: pl_current %d: %s", entity, field, rc, pl_errmsg());
                long long want = atoll(PQgetvalue(d, 0, 0));
                require(pl_result_get(r, 0)->id == want, "%s.%s: pl_current id %" PRId64 ", ledger %lld",
                        entity, field, pl_result_get(r, 0)->id, want);
            }
            pl_result_free(r);
            PQclear(d);
        }
    }
    PQfinish(pg);
    fprintf(stderr, "mixed load, pool %u: %ld calls (%ld records appended), %llu pool waits\n",
            pool_size, ops, inserted, (unsigned long long)st.pool_waits);
    pl_close(l);
}

START_TEST(hundred_threads_pool_8)
{
    mixed_load(8);
}
END_TEST

START_TEST(hundred_threads_pool_20)
{
    mixed_load(20);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Two processes, one entity                                                 */
/* ------------------------------------------------------------------------ */

enum { PROC_THREADS = 4, PROC_EACH = 100 };

typedef struct proc_writer {
    pl_ledger *l;
    const char *entity;
    int index;
    pl_receipt r[PROC_EACH];
    int ok, bad;
} proc_writer;

static void *proc_writer_main(void *arg)
{
    proc_writer *w = arg;
    for (int i = 0; i < PROC_EACH; i++) {
        char value[64];
        snprintf(value, sizeof value, "{\"pid\": %ld, \"t\": %d, \"i\": %d}", (long)getpid(),
                 w->index, i);
        pl_change c = tu_change(w->entity, "f", value);
        pl_receipt r;
        if (pl_insert(&r, w->l, &c) != PL_OK) {
            w->bad++;
            continue;
        }
        if (w->ok > 0 && r.transaction_time <= w->r[w->ok - 1].transaction_time)
            w->bad++;
        w->r[w->ok++] = r;
    }
    return NULL;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static ssize_t read_all(int fd, void *p, size_t n)
{
    char *c = p;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, c + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* The child: its own handle, PROC_THREADS writers, receipts to `out`.
 * Never returns; no Check calls here. */
static void child_main(const char *schema, const char *entity, int ready_fd, int go_fd, int out_fd)
{
    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = getenv("PL_TEST_PG");
    cfg.schema = schema;
    cfg.pool_size = PROC_THREADS;
    pl_ledger *l = NULL;
    if (pl_open(&l, &cfg) != PL_OK)
        _exit(10);
    char b = 'r';
    if (write_all(ready_fd, &b, 1) != 0)
        _exit(11);
    (void)read_all(go_fd, &b, 1); /* returns at EOF: the parent's start signal */
    static proc_writer w[PROC_THREADS];
    pthread_t th[PROC_THREADS];
    for (int i = 0; i < PROC_THREADS; i++) {
        w[i].l = l;
        w[i].entity = entity;
        w[i].index = i;
        if (pthread_create(&th[i], NULL, proc_writer_main, &w[i]) != 0)
            _exit(12);
    }
    int bad = 0;
    for (int i = 0; i < PROC_THREADS; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
        if (write_all(out_fd, w[i].r, (size_t)w[i].ok * sizeof(pl_receipt)) != 0)
            _exit(13);
    }
    pl_close(l);
    _exit(bad ? 14 : 0);
}

START_TEST(two_processes_one_entity)
{
    /* The parent migrates; the children only write. The entity is new, so
     * the two processes also race to create its head. */
    pl_ledger *l = tu_open(0);
    char schema[64];
    snprintf(schema, sizeof schema, "%s", tu_schema());
    const char *entity = "conc-two-processes";

    int ready[2], go[2], out[2][2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(pipe(out[k]), 0);
        pid[k] = fork();
        ck_assert_int_ge(pid[k], 0);
        if (pid[k] == 0) {
            close(ready[0]);
            close(go[1]);
            close(out[k][0]);
            child_main(schema, entity, ready[1], go[0], out[k][1]);
        }
        close(out[k][1]);
    }
    close(ready[1]);
    close(go[0]);
    char b[2];
    ck_assert_int_eq(read_all(ready[0], b, 2), 2);
    close(go[1]); /* both start at once */
    close(ready[0]);

    pl_receipt *all = calloc(2 * PROC_THREADS * PROC_EACH, sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        ssize_t got = read_all(out[k][0], all + n, PROC_THREADS * PROC_EACH * sizeof(pl_receipt));
        close(out[k][0]);
        ck_assert_int_ge(got, 0);
        n += (size_t)got / sizeof(pl_receipt);
    }
    for (int k = 0; k < 2; k++) {
        int status = 0;
        ck_assert_int_eq(waitpid(pid[k], &status, 0), pid[k]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "child %d: status 0x%x (10 open, 14 a failed or out-of-order insert)", k,
                      status);
    }
    ck_assert_uint_eq(n, 2 * PROC_THREADS * PROC_EACH);
    check_entity_order(l, entity, all, n);
    free(all);
    pl_close(l);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("concurrency");
    TCase *tc = tu_tcase("one_entity", 120);
    tcase_add_test(tc, one_entity_many_writers);
    tcase_add_test(tc, asof_past_never_changes);
    suite_add_tcase(s, tc);
    tc = tu_tcase("shared_handle", 120);
    tcase_add_test(tc, hundred_threads_pool_8);
    tcase_add_test(tc, hundred_threads_pool_20);
    suite_add_tcase(s, tc);
    tc = tu_tcase("processes", 120);
    tcase_add_test(tc, two_processes_one_entity);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
