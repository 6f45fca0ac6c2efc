/* The design record's dataset: its shape, and loading it fast through the
 * library's own bulk path (pl_import_batch).
 *
 * Shape. E = records / 20 entities ("txn_<i>"), four fields each, over 24
 * months of transaction time ending now. Entity i is created at
 * t0 + i * step and writes all its records within `window` (60 days) after
 * that, so recent months hold more entities' activity; on top, the number
 * of records per entity grows linearly with recency (density 0.5 for the
 * oldest entity to 1.5 for the newest: three times as many). Each entity
 * first writes its four fields (bank_import), then changes: ~10%
 * retroactive corrections (valid_from before the transaction time,
 * old_value set, source user_correction), ~3% future-dated values, the
 * rest bank_import / rule_engine updates valid from their transaction time.
 *
 * Loading. Two loader threads (the machine has two cores), each with its own
 * handle, take runs of whole entities (~5,000 records) from a shared cursor
 * and import each run as one batch. An entity lives in exactly one batch and
 * its records are generated in time order, so per-entity transaction times
 * strictly increase within and across batches.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "progress.h"

const char *const bench_fields[BENCH_NFIELDS] = {"merchant_name", "amount", "category",
                                                 "status"};

#define SPAN_DAYS 730
#define WINDOW_DAYS 60
#define BATCH_TARGET 5000
#define LOADERS 2

static const char *const categories[] = {"groceries", "dining",    "travel",   "utilities",
                                         "shopping",  "health",    "transport", "entertainment"};
static const char *const statuses[] = {"pending", "cleared", "reconciled", "disputed"};

/* ------------------------------------------------------------------------ */
/* Shape                                                                     */
/* ------------------------------------------------------------------------ */

void dataset_plan(bench_dataset *ds, long long records, pl_time now)
{
    memset(ds, 0, sizeof *ds);
    ds->records = records;
    ds->entities = records / 20 > 0 ? (long)(records / 20) : 1;
    ds->t_end = (now / 1000000 - 120) * 1000000; /* whole seconds, 2 min ago */
    ds->t0 = ds->t_end - SPAN_DAYS * BENCH_US_PER_DAY;
    ds->step = SPAN_DAYS * BENCH_US_PER_DAY / ds->entities;
    ds->window = WINDOW_DAYS * BENCH_US_PER_DAY;
    /* last activity = min(created + window, t_end) */
    pl_time hot_from = ds->t_end - 90 * BENCH_US_PER_DAY - ds->window;
    pl_time warm_from = ds->t_end - 365 * BENCH_US_PER_DAY - ds->window;
    ds->hot_lo = (long)((hot_from - ds->t0 + ds->step - 1) / ds->step);
    ds->warm_lo = (long)((warm_from - ds->t0 + ds->step - 1) / ds->step);
    if (ds->hot_lo >= ds->entities)
        ds->hot_lo = ds->entities - 1;
    if (ds->hot_lo < 0)
        ds->hot_lo = 0;
    if (ds->warm_lo > ds->hot_lo)
        ds->warm_lo = ds->hot_lo;
    if (ds->warm_lo < 0)
        ds->warm_lo = 0;
}

/* Records of entities [0, i): floor(N * F(i / E)), F(x) = (x + x^2) / 2. */
static long long records_before(const bench_dataset *ds, long i)
{
    long double x = (long double)i / (long double)ds->entities;
    long long v = (long long)((long double)ds->records * (x + x * x) / 2.0L);
    return i >= ds->entities ? ds->records : v;
}

static long entity_records(const bench_dataset *ds, long i)
{
    return (long)(records_before(ds, i + 1) - records_before(ds, i));
}

void dataset_entity_id(char *buf, size_t len, long i)
{
    snprintf(buf, len, "txn_%ld", i);
}

static pl_time created_at(const bench_dataset *ds, long i)
{
    return ds->t0 + (pl_time)i * ds->step;
}

static pl_time active_len(const bench_dataset *ds, long i)
{
    pl_time c = created_at(ds, i), end = c + ds->window;
    if (end > ds->t_end)
        end = ds->t_end;
    return end - c;
}

long dataset_pick_entity(const bench_dataset *ds, uint64_t *rng)
{
    int r = (int)(bench_rand(rng) % 100);
    if (r >= 80 && ds->warm_lo < ds->hot_lo && (r < 95 || ds->warm_lo == 0))
        return (long)bench_uniform(rng, ds->warm_lo, ds->hot_lo - 1);
    if (r >= 95 && ds->warm_lo > 0)
        return (long)bench_uniform(rng, 0, ds->warm_lo - 1);
    return dataset_pick_hot(ds, rng);
}

long dataset_pick_hot(const bench_dataset *ds, uint64_t *rng)
{
    return (long)bench_uniform(rng, ds->hot_lo, ds->entities - 1);
}

pl_time dataset_pick_time(const bench_dataset *ds, long i, uint64_t *rng)
{
    pl_time c = created_at(ds, i) / 1000000;
    return (c + bench_uniform(rng, 0, active_len(ds, i) / 1000000)) * 1000000;
}

pl_time dataset_pick_month(const bench_dataset *ds, long i, uint64_t *rng)
{
    pl_time c = created_at(ds, i) / 1000000;
    pl_time room = active_len(ds, i) / 1000000 - 30 * 86400;
    return (c + (room > 0 ? bench_uniform(rng, 0, room) : 0)) * 1000000;
}

/* ------------------------------------------------------------------------ */
/* Generation                                                                */
/* ------------------------------------------------------------------------ */

#define VAL_LEN 48

typedef struct gen_rec {
    char eid[24];
    char nv[VAL_LEN];
    char ov[VAL_LEN];
    char meta[40];
} gen_rec;

typedef struct batch {
    size_t n, cap;
    gen_rec *recs;
    pl_change *changes;
    pl_time *tts;
} batch;

static void value_for(char *buf, int field, uint64_t *rng)
{
    switch (field) {
    case 0:
        snprintf(buf, VAL_LEN, "\"Merchant %04d\"", (int)(bench_rand(rng) % 5000));
        break;
    case 1:
        snprintf(buf, VAL_LEN, "%d.%02d", (int)(bench_rand(rng) % 5000) + 1,
                 (int)(bench_rand(rng) % 100));
        break;
    case 2:
        snprintf(buf, VAL_LEN, "\"%s\"", categories[bench_rand(rng) % 8]);
        break;
    default:
        snprintf(buf, VAL_LEN, "\"%s\"", statuses[bench_rand(rng) % 4]);
        break;
    }
}

static int cmp_time(const void *a, const void *b)
{
    pl_time x = *(const pl_time *)a, y = *(const pl_time *)b;
    return (x > y) - (x < y);
}

static int batch_reserve(batch *b, size_t n)
{
    if (b->n + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : BATCH_TARGET * 2;
    while (cap < b->n + n)
        cap *= 2;
    gen_rec *r = realloc(b->recs, cap * sizeof *r);
    if (!r)
        return -1;
    b->recs = r;
    pl_change *c = realloc(b->changes, cap * sizeof *c);
    if (!c)
        return -1;
    b->changes = c;
    pl_time *t = realloc(b->tts, cap * sizeof *t);
    if (!t)
        return -1;
    b->tts = t;
    b->cap = cap;
    return 0;
}

/* Appends entity i's records, oldest first. */
static int gen_entity(const bench_dataset *ds, long i, long batch_no, batch *b)
{
    long n = entity_records(ds, i);
    if (n <= 0)
        return 0;
    if (batch_reserve(b, (size_t)n) < 0)
        return -1;
    uint64_t rng = (uint64_t)i * 0x2545f4914f6cdd1du + 12345;
    pl_time c = created_at(ds, i), len = active_len(ds, i);
    pl_time *times = b->tts + b->n;
    for (long k = 0; k < n; k++)
        times[k] = k < BENCH_NFIELDS ? c + k : c + BENCH_NFIELDS + bench_uniform(&rng, 0, len);
    if (n > BENCH_NFIELDS)
        qsort(times + BENCH_NFIELDS, (size_t)(n - BENCH_NFIELDS), sizeof *times, cmp_time);
    for (long k = 1; k < n; k++)
        if (times[k] <= times[k - 1])
            times[k] = times[k - 1] + 1;

    char last[BENCH_NFIELDS][VAL_LEN];
    int has_last[BENCH_NFIELDS] = {0};
    for (long k = 0; k < n; k++) {
        gen_rec *r = &b->recs[b->n];
        pl_change *ch = &b->changes[b->n];
        pl_change init = PL_CHANGE_INIT;
        *ch = init;
        pl_time tt = times[k];
        int field = k < BENCH_NFIELDS ? (int)k : (int)(bench_rand(&rng) % BENCH_NFIELDS);
        int kind = k < BENCH_NFIELDS ? 100 : (int)(bench_rand(&rng) % 100);
        dataset_entity_id(r->eid, sizeof r->eid, i);
        value_for(r->nv, field, &rng);
        snprintf(r->meta, sizeof r->meta, "{\"import_batch_id\": \"batch_%ld\"}", batch_no);
        ch->entity_id = r->eid;
        ch->field_name = bench_fields[field];
        ch->new_value = r->nv;
        ch->metadata = r->meta;
        if (has_last[field]) {
            memcpy(r->ov, last[field], VAL_LEN);
            ch->old_value = r->ov;
        }
        if (kind < 10 && has_last[field]) {
            /* retroactive correction: true since some time before we knew */
            pl_time back = bench_uniform(&rng, 3600, 30 * 86400) * INT64_C(1000000);
            ch->valid_from = tt - back < c ? c : tt - back;
            if (ch->valid_from >= tt)
                ch->valid_from = tt - 1;
            ch->source_type = "user_correction";
            ch->change_reason = "corrected by the account holder";
        } else if (kind < 13) {
            /* future-dated: becomes true 1 to 30 days after it was recorded */
            ch->valid_from = tt + bench_uniform(&rng, 1, 30) * BENCH_US_PER_DAY;
            ch->source_type = "rule_engine";
            ch->change_reason = "scheduled change";
        } else {
            ch->source_type = (k < BENCH_NFIELDS || bench_rand(&rng) % 100 < 60) ? "bank_import"
                                                                                 : "rule_engine";
        }
        memcpy(last[field], r->nv, VAL_LEN);
        has_last[field] = 1;
        b->n++;
    }
    return 0;
}

/* The pointers into recs move when the arrays grow: fix them up at the end. */
static void batch_fix_pointers(batch *b)
{
    for (size_t k = 0; k < b->n; k++) {
        gen_rec *r = &b->recs[k];
        pl_change *ch = &b->changes[k];
        ch->entity_id = r->eid;
        ch->new_value = r->nv;
        ch->metadata = r->meta;
        if (ch->old_value)
            ch->old_value = r->ov;
    }
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct loader_shared {
    const bench_opts *o;
    const bench_dataset *ds;
    pthread_mutex_t mu;
    long next_entity;
    long next_batch;
    atomic_llong loaded;
    atomic_int failed;
    atomic_int running;
    char error[512];
} loader_shared;

static void *loader_main(void *arg)
{
    loader_shared *sh = arg;
    const bench_dataset *ds = sh->ds;
    pl_ledger *l = bench_open(sh->o, 0, 1, 1, 1);
    if (!l) {
        pthread_mutex_lock(&sh->mu);
        snprintf(sh->error, sizeof sh->error, "open: %s", pl_errmsg());
        pthread_mutex_unlock(&sh->mu);
        atomic_store(&sh->failed, 1);
        atomic_fetch_sub(&sh->running, 1);
        return NULL;
    }
    batch b;
    memset(&b, 0, sizeof b);
    while (!atomic_load(&sh->failed)) {
        pthread_mutex_lock(&sh->mu);
        long from = sh->next_entity, to = from;
        long long want = 0;
        while (to < ds->entities && want < BATCH_TARGET)
            want += entity_records(ds, to++);
        sh->next_entity = to;
        long batch_no = sh->next_batch++;
        pthread_mutex_unlock(&sh->mu);
        if (from >= ds->entities)
            break;
        b.n = 0;
        int bad = 0;
        for (long i = from; i < to && !bad; i++)
            bad = gen_entity(ds, i, batch_no, &b) < 0;
        if (bad) {
            pthread_mutex_lock(&sh->mu);
            snprintf(sh->error, sizeof sh->error, "out of memory generating batch %ld", batch_no);
            pthread_mutex_unlock(&sh->mu);
            atomic_store(&sh->failed, 1);
            break;
        }
        batch_fix_pointers(&b);
        int rc = pl_import_batch(NULL, l, b.changes, b.tts, b.n);
        if (rc != PL_OK) {
            pthread_mutex_lock(&sh->mu);
            snprintf(sh->error, sizeof sh->error, "pl_import_batch (entities %ld..%ld): %s: %s",
                     from, to - 1, pl_strerror(rc), pl_errmsg());
            pthread_mutex_unlock(&sh->mu);
            atomic_store(&sh->failed, 1);
            break;
        }
        atomic_fetch_add(&sh->loaded, (long long)b.n);
    }
    free(b.recs);
    free(b.changes);
    free(b.tts);
    pl_close(l);
    atomic_fetch_sub(&sh->running, 1);
    return NULL;
}

static int prepare_schema(const bench_opts *o, const bench_dataset *ds)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "DROP SCHEMA IF EXISTS " BENCH_SCHEMA " CASCADE;"
             "DROP SCHEMA IF EXISTS " BENCH_META_SCHEMA " CASCADE;"
             "CREATE SCHEMA " BENCH_META_SCHEMA ";"
             "CREATE TABLE " BENCH_META_SCHEMA ".dataset (records bigint, entities bigint,"
             " t0 bigint, t_end bigint, step bigint, win bigint, hot_lo bigint, warm_lo bigint,"
             " loaded boolean NOT NULL DEFAULT false);"
             "INSERT INTO " BENCH_META_SCHEMA ".dataset VALUES (%lld, %ld, %lld, %lld, %lld, %lld,"
             " %ld, %ld, false);",
             ds->records, ds->entities, (long long)ds->t0, (long long)ds->t_end,
             (long long)ds->step, (long long)ds->window, ds->hot_lo, ds->warm_lo);
    if (sql_exec(o->pg, sql) < 0)
        return -1;
    pl_ledger *l = bench_open(o, 0, 1, 1, 0);
    if (!l)
        return -1;
    int rc = pl_migrate(l);
    if (rc)
        bench_log("pl_migrate: %s: %s", pl_strerror(rc), pl_errmsg());
    pl_close(l);
    if (rc)
        return -1;
    /* Every month's partition up front, from one session: two loaders that
     * both reach a month without a partition race in pl_ensure_partition
     * (one fails with 42P07; see bench/RESULTS.md, library findings). */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FILTER (WHERE " BENCH_SCHEMA ".pl_ensure_partition(m)) FROM"
             " generate_series(to_timestamp(%lld) - interval '1 month', now(), interval '1 month') m",
             (long long)(ds->t0 / 1000000));
    return sql_exec(o->pg, sql);
}

int dataset_load(const bench_opts *o, bench_dataset *ds, double *rate_out, double *secs_out)
{
    dataset_plan(ds, o->records, pl_time_now());
    bench_log("loading %lld records, %ld entities into schema \"%s\" (%d loader threads)",
              ds->records, ds->entities, BENCH_SCHEMA, LOADERS);
    if (prepare_schema(o, ds) < 0)
        return -1;

    loader_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.o = o;
    sh.ds = ds;
    pthread_mutex_init(&sh.mu, NULL);
    pthread_t th[LOADERS];
    int started = 0;
    double t0 = bench_now();
    for (int k = 0; k < LOADERS; k++) {
        atomic_fetch_add(&sh.running, 1);
        if (pthread_create(&th[k], NULL, loader_main, &sh) == 0)
            started++;
        else
            atomic_fetch_sub(&sh.running, 1);
    }
    progress pr;
    progress_begin(&pr, "load", ds->records);
    while (atomic_load(&sh.running) > 0) {
        progress_update(&pr, atomic_load(&sh.loaded));
        progress_sleep(&pr);
    }
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    double secs = bench_now() - t0;
    progress_end(&pr, atomic_load(&sh.loaded));
    pthread_mutex_destroy(&sh.mu);
    if (atomic_load(&sh.failed) || started == 0) {
        bench_log("load failed: %s", sh.error[0] ? sh.error : "no loader thread started");
        return -1;
    }
    *rate_out = secs > 0 ? (double)ds->records / secs : 0;
    *secs_out = secs;
    bench_log("loaded %lld records in %.1f s (%.0f records/s); VACUUM ANALYZE", ds->records, secs,
              *rate_out);
    double v0 = bench_now();
    if (sql_exec(o->pg, "VACUUM (ANALYZE) " BENCH_SCHEMA ".provenance_ledger, " BENCH_SCHEMA
                        ".provenance_current, " BENCH_SCHEMA ".entity_head") < 0 ||
        sql_exec(o->pg, "CHECKPOINT") < 0 ||
        sql_exec(o->pg, "UPDATE " BENCH_META_SCHEMA ".dataset SET loaded = true") < 0)
        return -1;
    report_value("load", "vacuum_analyze_s", bench_now() - v0, "s");
    return 0;
}

int dataset_read(const bench_opts *o, bench_dataset *ds)
{
    char *v = sql_scalar(o->pg, "SELECT concat_ws(' ', records, entities, t0, t_end, step, win,"
                                " hot_lo, warm_lo) FROM " BENCH_META_SCHEMA ".dataset WHERE loaded");
    if (!v) {
        bench_log("--skip-load: no complete dataset in schema %s (run without --skip-load)",
                  BENCH_SCHEMA);
        return -1;
    }
    long long t0, tend, step, win;
    memset(ds, 0, sizeof *ds);
    int n = sscanf(v, "%lld %ld %lld %lld %lld %lld %ld %ld", &ds->records, &ds->entities, &t0,
                   &tend, &step, &win, &ds->hot_lo, &ds->warm_lo);
    free(v);
    if (n != 8)
        return -1;
    ds->t0 = t0;
    ds->t_end = tend;
    ds->step = step;
    ds->window = win;
    return 0;
}
