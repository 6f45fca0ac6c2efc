/* Cache figures (issue 3): hit latency and throughput on a hot set that is
 * all cached, beside `redis-benchmark GET` with the same value size and
 * concurrency; the miss path (lookup, PostgreSQL read, fill) beside the
 * uncached PL_REALTIME path on the same keys. The hit rate under the skewed
 * mix is recorded by the mix phase. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phases.h"

#define HOT_KEYS 1000

typedef struct hshared {
    const bench_dataset *ds;
    pl_ledger *l;
    long nkeys;
    double t_end;
} hshared;

typedef struct hworker {
    hshared *sh;
    uint64_t rng;
    bench_hist hist;
    uint64_t errors, misses;
    pthread_t th;
} hworker;

static void hot_key(const bench_dataset *ds, long k, char eid[24], const char **field)
{
    dataset_entity_id(eid, 24, ds->hot_lo + k / BENCH_NFIELDS);
    *field = bench_fields[k % BENCH_NFIELDS];
}

static long hot_key_count(const bench_dataset *ds)
{
    long n = (ds->entities - ds->hot_lo) * BENCH_NFIELDS;
    return n < HOT_KEYS ? n : HOT_KEYS;
}

static void *hit_main(void *arg)
{
    hworker *w = arg;
    hshared *sh = w->sh;
    while (bench_now() < sh->t_end) {
        char eid[24];
        const char *field;
        hot_key(sh->ds, (long)(bench_rand(&w->rng) % (uint64_t)sh->nkeys), eid, &field);
        pl_result *r = NULL;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = pl_current(&r, sh->l, eid, field, 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc < 0) {
            w->errors++;
        } else {
            if (r && pl_result_origin(r) != PL_ORIGIN_CACHE)
                w->misses++;
            hist_record(&w->hist, (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u +
                                      (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec);
        }
        pl_result_free(r);
    }
    return NULL;
}

/* Our hits at `clients` threads; returns the row. */
static bench_row *hits_run(const bench_opts *o, hshared *sh, int clients)
{
    hworker *ws = calloc((size_t)clients, sizeof *ws);
    if (!ws)
        return NULL;
    double t0 = bench_now();
    sh->t_end = t0 + o->short_duration;
    int started = 0;
    for (int i = 0; i < clients; i++) {
        ws[i].sh = sh;
        ws[i].rng = (uint64_t)(i + 3) * 0x9e3779b97f4a7c15u;
        if (pthread_create(&ws[i].th, NULL, hit_main, &ws[i]) != 0)
            break;
        started++;
    }
    bench_hist h;
    hist_reset(&h);
    uint64_t errors = 0, misses = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].th, NULL);
        hist_merge(&h, &ws[i].hist);
        errors += ws[i].errors;
        misses += ws[i].misses;
    }
    free(ws);
    bench_row *r = report_row("cache", "cache hit (pl_current)", clients, 1);
    report_fill(r, &h, errors, bench_now() - t0);
    if (misses)
        report_note("cache: %llu of %llu hot-set reads at %d clients were not hits",
                    (unsigned long long)misses, (unsigned long long)h.n, clients);
    return r;
}

/* Average size of the cached current answers of the hot set, from Redis.
 * A cache key is <prefix> NUL <ledger id>:<epoch>:<entity> (lib/cache/cache.c):
 * the command goes to redis-cli on stdin, whose parser reads \x00. */
static int cached_value_size(const bench_opts *o, const bench_dataset *ds)
{
    char *state = sql_scalar(o->pg, "SELECT ledger_id || ':' || epoch FROM " BENCH_SCHEMA
                                    ".cache_state");
    if (!state)
        return 0;
    long total = 0, n = 0;
    for (long k = 0; k < 8 && k < hot_key_count(ds); k++) {
        char eid[24], cmd[512];
        const char *field;
        hot_key(ds, k, eid, &field);
        snprintf(cmd, sizeof cmd,
                 "printf '%%s\\n' 'HSTRLEN \"%s\\x00%s:%s\" \"c%s\"' | redis-cli -p %s 2>/dev/null",
                 bench_cache_prefix, state, eid, field, o->redis_port);
        char *v = run_capture(cmd);
        if (v && atol(v) > 0) {
            total += atol(v);
            n++;
        }
        free(v);
    }
    free(state);
    return n ? (int)(total / n) : 0;
}

typedef struct rb_result {
    int ok;
    double rps, avg, p50, p95, p99;
} rb_result;

/* redis-benchmark GET with a value of `size` bytes at `clients`. */
static rb_result redis_bench(const bench_opts *o, int size, int clients, long n)
{
    rb_result rb;
    memset(&rb, 0, sizeof rb);
    char cmd[512];
    /* GET needs the key to exist with a value of that size: SET it first */
    snprintf(cmd, sizeof cmd, "redis-benchmark -p %s -t set -d %d -c 1 -n 100 -q 2>&1",
             o->redis_port, size);
    free(run_capture(cmd));
    snprintf(cmd, sizeof cmd, "redis-benchmark -p %s -t get -d %d -c %d -n %ld --csv 2>&1",
             o->redis_port, size, clients, n);
    FILE *p = popen(cmd, "r");
    if (!p)
        return rb;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "\"GET\"", 5) != 0)
            continue;
        double v[7];
        if (sscanf(line, "\"GET\",\"%lf\",\"%lf\",\"%lf\",\"%lf\",\"%lf\",\"%lf\",\"%lf\"", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7) {
            rb.ok = 1;
            rb.rps = v[0];
            rb.avg = v[1];
            rb.p50 = v[3];
            rb.p95 = v[4];
            rb.p99 = v[5];
        }
    }
    pclose(p);
    snprintf(cmd, sizeof cmd, "redis-cli -p %s DEL key:__rand_int__ 2>&1", o->redis_port);
    free(run_capture(cmd));
    return rb;
}

/* The miss path against PL_REALTIME on the same keys (cold entities). */
static void miss_vs_realtime(const bench_opts *o, const bench_dataset *ds, pl_ledger *l)
{
    long m = o->records <= 20000 ? 200 : 2000;
    long span = ds->warm_lo > 0 ? ds->warm_lo : ds->entities;
    if (m > span)
        m = span;
    bench_hist rt, miss;
    hist_reset(&rt);
    hist_reset(&miss);
    uint64_t errors = 0, not_miss = 0;
    for (int pass = 0; pass < 3; pass++) {
        /* pass 0 warms PostgreSQL's buffers, 1 times PL_REALTIME, 2 misses */
        for (long k = 0; k < m; k++) {
            char eid[24];
            dataset_entity_id(eid, sizeof eid, k * (span / m));
            const char *field = bench_fields[(k + 2) % BENCH_NFIELDS];
            pl_result *r = NULL;
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            int rc = pl_current(&r, l, eid, field, pass < 2 ? PL_REALTIME : 0);
            clock_gettime(CLOCK_MONOTONIC, &b);
            uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
                          (uint64_t)a.tv_nsec;
            if (rc < 0)
                errors++;
            else if (pass == 1)
                hist_record(&rt, ns);
            else if (pass == 2 && r && pl_result_origin(r) == PL_ORIGIN_CACHE)
                not_miss++; /* cached earlier by the mix: not a miss */
            else if (pass == 2)
                hist_record(&miss, ns);
            pl_result_free(r);
        }
    }
    bench_row *r = report_row("cache", "uncached (PL_REALTIME)", 1, 1);
    report_fill(r, &rt, 0, 0);
    r->ops = -1;
    r = report_row("cache", "cache miss + fill", 1, 1);
    report_fill(r, &miss, errors, 0);
    r->ops = -1;
    if (rt.n && miss.n)
        report_value("cache", "miss_over_realtime_p50", hist_ms(&miss, 0.5) / hist_ms(&rt, 0.5),
                     "x");
    if (not_miss)
        report_value("cache", "miss_keys_already_cached_skipped", (double)not_miss, "");
}

void cache_phase(const bench_opts *o, const bench_dataset *ds)
{
    if (!o->redis) {
        report_note("cache: skipped (PL_TEST_REDIS not set)");
        return;
    }
    int conc[3] = {1, 8, 0}, nconc = 2;
    for (int i = 0; i < o->nclients; i++)
        if (o->clients[i] > conc[2])
            conc[2] = o->clients[i];
    if (conc[2] > 8 && o->records > 20000)
        nconc = 3;
    hshared sh;
    memset(&sh, 0, sizeof sh);
    sh.ds = ds;
    sh.nkeys = hot_key_count(ds);
    sh.l = bench_open(o, 1, 16, 100, 0);
    if (!sh.l) {
        report_note("cache: could not open the ledger: %s", pl_errmsg());
        return;
    }
    bench_log("cache: filling a hot set of %ld keys", sh.nkeys);
    for (int pass = 0; pass < 2; pass++)
        for (long k = 0; k < sh.nkeys; k++) {
            char eid[24];
            const char *field;
            hot_key(ds, k, eid, &field);
            pl_result *r = NULL;
            pl_current(&r, sh.l, eid, field, 0);
            pl_result_free(r);
        }
    int size = o->redis_port ? cached_value_size(o, ds) : 0;
    report_value("cache", "cached_value_bytes", size, "B");
    for (int i = 0; i < nconc; i++) {
        bench_log("cache: hits at %d clients (%.0f s)", conc[i], o->short_duration);
        bench_row *ours = hits_run(o, &sh, conc[i]);
        if (!o->redis_port || size <= 0)
            continue;
        long n = (long)(o->short_duration * (conc[i] == 1 ? 20000 : 60000));
        rb_result rb = redis_bench(o, size, conc[i], n);
        if (!rb.ok) {
            report_note("cache: redis-benchmark did not run");
            continue;
        }
        bench_row *r = report_row("cache", "redis-benchmark GET", conc[i], -1);
        r->p50 = rb.p50;
        r->p95 = rb.p95;
        r->p99 = rb.p99;
        r->ops = rb.rps;
        if (ours) {
            ours->pg_ops = -1;
            char key[64];
            snprintf(key, sizeof key, "hit_over_redis_get_p50_%d_clients", conc[i]);
            report_value("cache", key, rb.p50 > 0 ? ours->p50 / rb.p50 : -1, "x");
            snprintf(key, sizeof key, "hit_over_redis_get_p99_%d_clients", conc[i]);
            report_value("cache", key, rb.p99 > 0 ? ours->p99 / rb.p99 : -1, "x");
            snprintf(key, sizeof key, "hit_throughput_over_redis_%d_clients", conc[i]);
            report_value("cache", key, rb.rps > 0 ? ours->ops / rb.rps : -1, "x");
            snprintf(ours->target, sizeof ours->target, "#3 p50<=1.3x redis GET");
            ours->met = ours->p50 <= 1.3 * rb.p50;
        }
    }
    miss_vs_realtime(o, ds, sh.l);
    pl_stats_info st;
    pl_stats(&st, sh.l, sizeof st);
    report_value("cache", "hot_set_hit_rate", st.cache_hit_rate, "");
    pl_close(sh.l);
    report_print_phase("cache", "Cache (issue 3): hits vs redis-benchmark GET, miss vs uncached");
}
