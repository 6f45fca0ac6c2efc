/* Client threads running the design record's query mix on ONE shared
 * pl_ledger handle. Every thread picks a query type by weight and an entity
 * with the recency skew, times the call, and records it in its own
 * histograms (merged at the end). A warm-up (pool connections opened,
 * statements prepared) precedes the measured window; only calls that start
 * inside the window count. The dashboard query is pl_dashboard_changes()
 * over the last 30 days (the base table, exact; with PL_ALLOW_STALE the
 * materialized view provenance_daily_stats when it covers the window). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

const char *const query_names[Q_NTYPES] = {"current", "range (1 month)", "as-of", "history",
                                           "dashboard (30 days)"};
const double mix_weights[Q_NTYPES] = {65, 15, 12, 5, 3};
const double adr_p95_ms[Q_NTYPES] = {10, 75, 25, 100, 2000};

/* The SQL pl_dashboard_changes() runs on the base table (lib/sql/statements/
 * pl_dashboard_base.sql) for [UTC midnight 30 days ago, now), all sources:
 * pgbench runs this text. */
const char analytics_sql[] =
    "SELECT (extract(epoch FROM d.day) * 1000000)::int8 AS day, d.source_type, d.changes, "
    "d.entities FROM (SELECT date_trunc('day', transaction_time, 'UTC') AS day, source_type, "
    "count(*) AS changes, count(DISTINCT entity_id) AS entities "
    "FROM \"" BENCH_SCHEMA "\".provenance_ledger "
    "WHERE transaction_time >= coalesce(date_trunc('day', now(), 'UTC') - interval '30 days', "
    "'-infinity') AND transaction_time < coalesce(now(), 'infinity') "
    "AND (NULL::text IS NULL OR source_type = NULL::text) "
    "GROUP BY 1, 2) d ORDER BY d.day, d.source_type";

char bench_cache_prefix[64] = "plbench:";

int pool_for(const bench_opts *o, int clients)
{
    if (o->pool_override > 0)
        return o->pool_override;
    return clients < o->pool_cap ? clients : o->pool_cap;
}

pl_ledger *bench_open(const bench_opts *o, int cache, int pool_size, int clients, int import)
{
    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = o->pg;
    cfg.schema = BENCH_SCHEMA;
    cfg.pool_size = (unsigned)(pool_size > 0 ? pool_size : 1);
    cfg.pool_wait_timeout_ms = 60000;
    cfg.statement_timeout_ms = 120000;
    cfg.prepare = PL_PREPARE_NAMED;
    cfg.allow_import = import;
    if (cache && o->redis) {
        cfg.redis_url = o->redis;
        cfg.cache_key_prefix = bench_cache_prefix;
        int rp = o->redis_pool > 0 ? o->redis_pool : clients;
        cfg.redis_pool_size = (unsigned)(rp > 0 ? rp : 1);
    }
    pl_ledger *l = NULL;
    int rc = pl_open(&l, &cfg);
    if (rc) {
        bench_log("pl_open: %s: %s", pl_strerror(rc), pl_errmsg());
        return NULL;
    }
    return l;
}

/* ------------------------------------------------------------------------ */

typedef struct shared {
    const bench_opts *o;
    const bench_dataset *ds;
    const run_spec *spec;
    pl_ledger *l;
    pthread_cond_t cv;
    int arrived, open;
    double t_measure, t_end; /* set by the main thread before the barrier opens */
    double cum[Q_NTYPES];
    pthread_mutex_t mu;
    run_result *res;
    atomic_ullong from_view; /* dashboard answers served by the view */
    int nworkers;
} shared;

typedef struct worker {
    shared *sh;
    int idx;
    uint64_t rng;
    bench_hist hist[Q_NTYPES];
    uint64_t errors[Q_NTYPES], not_found[Q_NTYPES];
    pthread_t th;
} worker;

static void note_error(shared *sh, int type, const char *msg)
{
    pthread_mutex_lock(&sh->mu);
    if (!sh->res->first_error[0])
        snprintf(sh->res->first_error, sizeof sh->res->first_error, "%s: %s", query_names[type],
                 msg);
    pthread_mutex_unlock(&sh->mu);
}

static int pick_type(const shared *sh, uint64_t *rng)
{
    double r = (double)(bench_rand(rng) >> 11) / 9007199254740992.0 * sh->cum[Q_NTYPES - 1];
    for (int t = 0; t < Q_NTYPES; t++)
        if (r < sh->cum[t])
            return t;
    return Q_CURRENT;
}

/* One call; returns 1 for an error, 2 for "not found", 0 otherwise. */
static int one_call(worker *w, int type)
{
    shared *sh = w->sh;
    const bench_dataset *ds = sh->ds;
    unsigned flags = sh->spec->flags;
    if (type == Q_ANALYTICS) {
        pl_time day = pl_time_now() / BENCH_US_PER_DAY * BENCH_US_PER_DAY;
        pl_table *t = NULL;
        int rc = pl_dashboard_changes(&t, sh->l, day - 30 * BENCH_US_PER_DAY, PL_TIME_NOW, NULL,
                                      flags | sh->spec->analytics_flags);
        if (rc >= 0 && t && pl_table_origin(t) == PL_ORIGIN_VIEW)
            atomic_fetch_add(&sh->from_view, 1);
        pl_table_free(t);
        if (rc < 0) {
            note_error(sh, type, pl_errmsg());
            return 1;
        }
        return 0;
    }
    long e = dataset_pick_entity(ds, &w->rng);
    char eid[24];
    dataset_entity_id(eid, sizeof eid, e);
    const char *field = bench_fields[bench_rand(&w->rng) % BENCH_NFIELDS];
    pl_result *out = NULL;
    int rc;
    switch (type) {
    case Q_CURRENT:
        rc = pl_current(&out, sh->l, eid, field, flags);
        break;
    case Q_RANGE: {
        pl_time from = dataset_pick_month(ds, e, &w->rng);
        rc = pl_range(&out, sh->l, eid, NULL, from, from + 30 * BENCH_US_PER_DAY, flags);
        break;
    }
    case Q_ASOF:
        rc = pl_as_of(&out, sh->l, eid, field, dataset_pick_time(ds, e, &w->rng), PL_TIME_ANY,
                      flags);
        break;
    default:
        rc = pl_history(&out, sh->l, eid, NULL, flags);
        break;
    }
    pl_result_free(out);
    if (rc < 0) {
        note_error(sh, type, pl_errmsg());
        return 1;
    }
    return rc == PL_NOT_FOUND ? 2 : 0;
}

/* This worker's share of the hot entities' current state, read once so
 * the cache holds it (a long-running service's steady state). */
static void prefill(worker *w)
{
    shared *sh = w->sh;
    for (long e = sh->ds->hot_lo + w->idx; e < sh->ds->entities; e += sh->nworkers) {
        char eid[24];
        dataset_entity_id(eid, sizeof eid, e);
        for (int f = 0; f < BENCH_NFIELDS; f++) {
            pl_result *out = NULL;
            if (pl_current(&out, sh->l, eid, bench_fields[f], 0) < 0)
                note_error(sh, Q_CURRENT, pl_errmsg());
            pl_result_free(out);
        }
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    if (sh->spec->prefill && sh->spec->cache)
        prefill(w);
    pthread_mutex_lock(&sh->mu);
    sh->arrived++;
    pthread_cond_broadcast(&sh->cv);
    while (!sh->open)
        pthread_cond_wait(&sh->cv, &sh->mu);
    pthread_mutex_unlock(&sh->mu);
    while (1) {
        int type = pick_type(sh, &w->rng);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        double start = (double)a.tv_sec + (double)a.tv_nsec / 1e9;
        if (start >= sh->t_end)
            break;
        int r = one_call(w, type);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (start < sh->t_measure)
            continue;
        uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
                      (uint64_t)a.tv_nsec;
        if (r == 1) {
            w->errors[type]++;
        } else {
            hist_record(&w->hist[type], ns);
            if (r == 2)
                w->not_found[type]++;
        }
    }
    return NULL;
}

int workload_run(const bench_opts *o, const bench_dataset *ds, const run_spec *spec,
                 run_result *res)
{
    memset(res, 0, sizeof *res);
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.o = o;
    sh.ds = ds;
    sh.spec = spec;
    sh.res = res;
    double acc = 0;
    for (int t = 0; t < Q_NTYPES; t++) {
        acc += spec->weights[t];
        sh.cum[t] = acc;
    }
    int pool = spec->pool_size > 0 ? spec->pool_size : pool_for(o, spec->clients);
    sh.l = bench_open(o, spec->cache, pool, spec->clients, 0);
    if (!sh.l || acc <= 0) {
        res->failed = 1;
        snprintf(res->first_error, sizeof res->first_error, "open: %s", pl_errmsg());
        return -1;
    }
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cv, NULL);
    int n = spec->clients;
    sh.nworkers = n;
    double t_prefill = bench_now();
    worker *ws = calloc((size_t)n, sizeof *ws);
    int started = 0;
    for (int i = 0; ws && i < n; i++) {
        ws[i].sh = &sh;
        ws[i].idx = i;
        ws[i].rng = (uint64_t)(i + 1) * 0x9e3779b97f4a7c15u ^ (uint64_t)(bench_now() * 1e6);
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0)
            break;
        started++;
    }
    if (started < n) {
        bench_log("only %d of %d client threads started", started, n);
        snprintf(res->first_error, sizeof res->first_error, "only %d of %d threads started",
                 started, n);
    }
    /* Everyone connected and waiting: open the gate. */
    pthread_mutex_lock(&sh.mu);
    while (sh.arrived < started)
        pthread_cond_wait(&sh.cv, &sh.mu);
    if (spec->prefill)
        res->prefill_s = bench_now() - t_prefill;
    double warm = spec->warmup > 0            ? spec->warmup
                  : spec->duration >= 10      ? 2.0
                  : o->records <= 20000       ? 0.1
                                              : 0.5;
    sh.t_measure = bench_now() + warm;
    sh.t_end = started < n ? 0 : sh.t_measure + spec->duration;
    sh.open = 1;
    pthread_cond_broadcast(&sh.cv);
    pthread_mutex_unlock(&sh.mu);
    /* The cache counters at the start of the window, for its hit rate. */
    pl_stats_info s0, s1;
    memset(&s0, 0, sizeof s0);
    double wait = sh.t_measure - bench_now();
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
    pl_stats(&s0, sh.l, sizeof s0);
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].th, NULL);
    pl_stats(&s1, sh.l, sizeof s1);
    uint64_t hits = s1.cache_hits - s0.cache_hits, misses = s1.cache_misses - s0.cache_misses;
    res->window_hit_rate = hits + misses ? (double)hits / (double)(hits + misses) : 0;
    res->elapsed = spec->duration;
    for (int i = 0; i < started; i++)
        for (int t = 0; t < Q_NTYPES; t++) {
            hist_merge(&res->hist[t], &ws[i].hist[t]);
            res->errors[t] += ws[i].errors[t];
            res->not_found[t] += ws[i].not_found[t];
            res->total += ws[i].hist[t].n + ws[i].errors[t];
        }
    res->from_view = atomic_load(&sh.from_view);
    pl_stats(&res->stats, sh.l, sizeof res->stats);
    pl_close(sh.l);
    pthread_cond_destroy(&sh.cv);
    pthread_mutex_destroy(&sh.mu);
    free(ws);
    if (started < n)
        res->failed = 1;
    return started == n ? 0 : -1;
}
