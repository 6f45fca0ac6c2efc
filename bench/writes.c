/* Write load: single inserts (pl_insert) at 1 and 8 clients, cache off and
 * on (the difference is what invalidation adds to an insert), batch
 * inserts (pl_insert_batch, 1,000 and 10,000 changes per call) in records/s,
 * and both again with and without the dashboards' rollup step following
 * (issue 16: what exact dashboards cost writers). Writes go
 * to hot entities, as an application's updates would; one batch run instead
 * records new entities with their four fields each, as a bank import does. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "follow.h"
#include "phases.h"

#define BATCH 1000

typedef struct wshared {
    const bench_dataset *ds;
    pl_ledger *l;
    int batch;           /* 0: pl_insert; else changes per pl_insert_batch */
    int fresh;           /* new entities, four fields each, instead of hot ones */
    unsigned long long tag; /* makes this run's new entity ids unique */
    double t_end;
    pthread_mutex_t mu;
    char first_error[256];
} wshared;

typedef struct wworker {
    wshared *sh;
    int idx;
    long next_fresh;     /* changes made for new entities so far */
    uint64_t rng;
    bench_hist hist;
    uint64_t errors, records;
    pthread_t th;
} wworker;

void make_change(pl_change *c, change_buf *b, const bench_dataset *ds, uint64_t *rng)
{
    pl_change init = PL_CHANGE_INIT;
    *c = init;
    dataset_entity_id(b->eid, sizeof b->eid, dataset_pick_hot(ds, rng));
    int f = (int)(bench_rand(rng) % BENCH_NFIELDS);
    if (f == 1)
        snprintf(b->val, sizeof b->val, "%d.%02d", (int)(bench_rand(rng) % 5000),
                 (int)(bench_rand(rng) % 100));
    else
        snprintf(b->val, sizeof b->val, "\"bench %llu\"", (unsigned long long)(bench_rand(rng) % 100000));
    c->entity_id = b->eid;
    c->field_name = bench_fields[f];
    c->new_value = b->val;
    c->source_type = "api";
    c->metadata = "{\"import_batch_id\": \"bench_writes\"}";
}

/* The k-th change of a worker's stream of new entities: entity k / 4,
 * field k % 4, as an import records a new transaction. */
static void make_fresh_change(pl_change *c, change_buf *b, wworker *w)
{
    long k = w->next_fresh++;
    make_change(c, b, w->sh->ds, &w->rng);
    snprintf(b->eid, sizeof b->eid, "n%llx_%d_%ld", w->sh->tag, w->idx, k / BENCH_NFIELDS);
    c->field_name = bench_fields[k % BENCH_NFIELDS];
    c->source_type = "bank_import";
}

static void *wworker_main(void *arg)
{
    wworker *w = arg;
    wshared *sh = w->sh;
    size_t n = sh->batch ? (size_t)sh->batch : 1;
    pl_change *changes = calloc(n, sizeof *changes);
    change_buf *bufs = calloc(n, sizeof *bufs);
    if (!changes || !bufs) {
        free(changes);
        free(bufs);
        return NULL;
    }
    while (bench_now() < sh->t_end) {
        for (size_t i = 0; i < n; i++) {
            if (sh->fresh)
                make_fresh_change(&changes[i], &bufs[i], w);
            else
                make_change(&changes[i], &bufs[i], sh->ds, &w->rng);
        }
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = sh->batch ? pl_insert_batch(NULL, sh->l, changes, n)
                           : pl_insert(NULL, sh->l, &changes[0]);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc != PL_OK) {
            w->errors++;
            pthread_mutex_lock(&sh->mu);
            if (!sh->first_error[0])
                snprintf(sh->first_error, sizeof sh->first_error, "%s: %s", pl_strerror(rc),
                         pl_errmsg());
            pthread_mutex_unlock(&sh->mu);
            continue;
        }
        hist_record(&w->hist, (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u +
                                  (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec);
        w->records += n;
    }
    free(changes);
    free(bufs);
    return NULL;
}

double write_run(const bench_opts *o, const bench_dataset *ds, const char *phase,
                 const char *name, int clients, int cache, int batch, int fresh,
                 bench_hist *lat_out)
{
    wshared sh;
    memset(&sh, 0, sizeof sh);
    sh.ds = ds;
    sh.batch = batch;
    sh.fresh = fresh;
    sh.tag = (unsigned long long)(bench_now() * 1000);
    sh.l = bench_open(o, cache, clients, clients, 0);
    if (!sh.l) {
        report_note("%s: %s could not open the ledger: %s", phase, name, pl_errmsg());
        return -1;
    }
    pthread_mutex_init(&sh.mu, NULL);
    bench_log("%s: %s, %d clients, cache %s (%.0f s)", phase, name, clients, cache ? "on" : "off",
              o->short_duration);
    /* warm the pool: one connection per client, statements prepared */
    wworker *ws = calloc((size_t)clients, sizeof *ws);
    if (!ws) {
        pl_close(sh.l);
        return -1;
    }
    sh.t_end = bench_now() + o->short_duration;
    double t0 = bench_now();
    int started = 0;
    for (int i = 0; i < clients; i++) {
        ws[i].sh = &sh;
        ws[i].idx = i;
        ws[i].rng = (uint64_t)(i + 7) * 0x9e3779b97f4a7c15u ^ (uint64_t)(t0 * 1e6);
        if (pthread_create(&ws[i].th, NULL, wworker_main, &ws[i]) != 0)
            break;
        started++;
    }
    bench_hist h;
    hist_reset(&h);
    uint64_t errors = 0, records = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].th, NULL);
        hist_merge(&h, &ws[i].hist);
        errors += ws[i].errors;
        records += ws[i].records;
    }
    double el = bench_now() - t0;
    bench_row *r = report_row(phase, name, clients, cache);
    report_fill(r, &h, errors, el);
    r->ops = el > 0 ? (double)records / el : 0;
    if (errors)
        report_note("%s: %s, %d clients: %llu failed calls, first: %s", phase, name, clients,
                    (unsigned long long)errors, sh.first_error);
    if (lat_out)
        *lat_out = h;
    pl_close(sh.l);
    pthread_mutex_destroy(&sh.mu);
    free(ws);
    return r->ops;
}

/* The rollup follower's pause between steps: the CLI's default. */
#define ROLLUP_INTERVAL_MS 1000

static int rollup_step(void *arg, pl_ledger *l, int64_t *done)
{
    (void)arg;
    return pl_rollup_advance(done, l);
}

void writes_phase(const bench_opts *o, const bench_dataset *ds)
{
    static const int single_clients[] = {1, 8};
    bench_hist *lat = calloc(4, sizeof *lat);
    if (!lat)
        return;
    for (int i = 0; i < 2; i++)
        for (int cache = 0; cache <= (o->redis ? 1 : 0); cache++)
            write_run(o, ds, "writes", "single insert", single_clients[i], cache, 0, 0,
                      &lat[i * 2 + cache]);
    if (o->redis && lat[0].n && lat[1].n) {
        report_value("writes", "invalidation_adds_p50_ms_1_client",
                     hist_ms(&lat[1], 0.5) - hist_ms(&lat[0], 0.5), "ms");
        report_value("writes", "invalidation_adds_mean_ms_1_client",
                     hist_mean_ms(&lat[1]) - hist_mean_ms(&lat[0]), "ms");
    }
    if (o->redis && lat[2].n && lat[3].n)
        report_value("writes", "invalidation_adds_p50_ms_8_clients",
                     hist_ms(&lat[3], 0.5) - hist_ms(&lat[2], 0.5), "ms");
    free(lat);
    double best = 0;
    for (int clients = 1; clients <= (o->records <= 20000 ? 1 : 2); clients++) {
        double v = write_run(o, ds, "writes", "batch insert (1000/call)", clients, 0, BATCH, 0, NULL);
        if (v > best)
            best = v;
    }
    /* Larger calls amortise the per-call round trip and trigger work. */
    if (o->records > 20000)
        for (int clients = 1; clients <= 2; clients++) {
            double v =
                write_run(o, ds, "writes", "batch insert (10000/call)", clients, 0, BATCH * 10, 0, NULL);
            if (v > best)
                best = v;
        }
    /* An import's shape: new entities, all four fields of each in one call. */
    if (o->records > 20000)
        for (int clients = 1; clients <= 2; clients++)
            write_run(o, ds, "writes", "batch insert, new entities (1000/call)", clients, 0, BATCH, 1,
                      NULL);
    report_value("writes", "batch_insert_best_records_per_s", best, "rec/s");
    /* The rollup step as `provledger rollup --follow --interval-ms 1000`
     * runs it; inserts themselves do no rollup work. */
    follow_ab_writes(o, ds, "writes", "rollup", rollup_step, NULL, ROLLUP_INTERVAL_MS, "single insert",
                     "rollup_single", 8, 0, 3);
    follow_ab_writes(o, ds, "writes", "rollup", rollup_step, NULL, ROLLUP_INTERVAL_MS,
                     "batch insert (1000/call)", "rollup_batch", 2, BATCH, 3);
    report_print_phase("writes", "Writes (ops/s = records/s; latency per call)");
}
