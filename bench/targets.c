/* Every target of issues 3, 4, 5, 10, 13 and 16 and the design record, evaluated on the
 * rows the phases recorded. A target whose phase did not run is NOT RUN. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "phases.h"

static int max_clients(const bench_opts *o)
{
    int m = 0;
    for (int i = 0; i < o->nclients; i++)
        if (o->clients[i] > m)
            m = o->clients[i];
    return m;
}

/* NAN when the row is missing; INFINITY when every call failed. */
static double row_p95(const char *phase, const char *name, int c, int cache)
{
    const bench_row *r = report_find(phase, name, c, cache);
    if (!r)
        return NAN;
    return r->count ? r->p95 : r->errors ? INFINITY : NAN;
}

static double row_ops(const char *phase, const char *name, int c, int cache)
{
    const bench_row *r = report_find(phase, name, c, cache);
    return r && r->ops >= 0 ? r->ops : NAN;
}

static double best_ops(const char *phase, const char *name, int cache)
{
    double best = NAN;
    for (int c = 1; c <= 1000; c++) {
        double v = row_ops(phase, name, c, cache);
        if (!isnan(v) && (isnan(best) || v > best))
            best = v;
    }
    return best;
}

void collect_targets(const bench_opts *o, const bench_dataset *ds)
{
    (void)ds;
    char d[160];
    int top = max_clients(o);
    static const double p95[Q_NTYPES] = {1, 7.5, 2.5, 10, 0};

    /* issue 4: current state vs the primary-key lookup, 1 and 8 clients */
    for (int c = 1; c <= 8; c += 7) {
        double lib = row_ops("point", query_names[Q_CURRENT], c, 0);
        double pk = row_ops("point", "pgbench PK lookup", c, -1);
        snprintf(d, sizeof d, "#4 uncached current >= 80%% of pgbench PK lookup, %d client%s", c,
                 c > 1 ? "s" : "");
        report_target("4.current.pk", d, pk > 0 ? lib / pk : NAN, 0.8, 1, "x");
    }
    /* issue 4: p95 at 100 clients, each query type alone, uncached */
    for (int t = 0; t < Q_ANALYTICS; t++) {
        double v = row_p95("point", query_names[t], top, 0);
        const char *where = "alone";
        if (isnan(v)) {
            v = row_p95("mix", query_names[t], top, 0);
            where = "in the mix";
        }
        snprintf(d, sizeof d, "#4 %s p95, %d clients, uncached (%s)", query_names[t], top, where);
        report_target("4.p95", d, top >= 100 ? v : NAN, p95[t], 0, "ms");
    }
    /* issue 4: library overhead vs pgbench on the same statement */
    for (int t = 0; t < Q_ANALYTICS; t++)
        for (int c = 1; c <= 8; c += 7) {
            const bench_row *r = report_find("point", query_names[t], c, 0);
            snprintf(d, sizeof d, "#4 %s throughput >= 90%% of pgbench, same SQL, %d client%s",
                     query_names[t], c, c > 1 ? "s" : "");
            report_target("4.overhead", d, r && r->pg_ops > 0 ? r->ops / r->pg_ops : NAN, 0.9, 1,
                          "x");
        }
    snprintf(d, sizeof d, "#4 mixed workload, %d clients, cache on", top);
    report_target("4.mix", d, top >= 100 ? row_ops("mix", "all (mix)", top, 1) : NAN, 10000, 1,
                  "q/s");
    snprintf(d, sizeof d, "#4 mixed workload without analytics, %d clients, cache on", top);
    report_target("4.mix.noan", d,
                  top >= 100 ? row_ops("mix", "all (mix w/o analytics)", top, 1) : NAN, 10000, 1,
                  "q/s");
    snprintf(d, sizeof d,
             "#4 steady-state mix, %d clients, warmed cache, dashboard from the view", top);
    report_target("4.mix.steady", d, top >= 100 ? row_ops("steady", "all (mix)", top, 1) : NAN,
                  10000, 1, "q/s");
    report_target("4.batch", "#4 batch ingest (pl_insert_batch, 1000/call)",
                  best_ops("writes", "batch insert (1000/call)", 0), 50000, 1, "rec/s");
    report_target("4.batch.10k", "#4 batch ingest (pl_insert_batch, 10000/call)",
                  best_ops("writes", "batch insert (10000/call)", 0), 50000, 1, "rec/s");
    report_target("4.batch.new", "#4 batch ingest of new entities, 4 fields each (1000/call)",
                  best_ops("writes", "batch insert, new entities (1000/call)", 0), 50000, 1,
                  "rec/s");
    report_target("4.import", "#4 bulk load (pl_import_batch, 2 threads), informative",
                  report_get_value("load", "records_per_s"), 50000, 1, "rec/s");
    report_target("4.single", "#4 single inserts, 8 clients, cache off",
                  row_ops("writes", "single insert", 8, 0), 2000, 1, "/s");
    report_target("4.single.c", "#4 single inserts, 8 clients, cache on",
                  row_ops("writes", "single insert", 8, 1), 2000, 1, "/s");

    /* issue 3 */
    for (int c = 1; c <= 8; c += 7) {
        const bench_row *ours = report_find("cache", "cache hit (pl_current)", c, 1);
        const bench_row *rb = report_find("cache", "redis-benchmark GET", c, -1);
        snprintf(d, sizeof d, "#3 cache hit p50 within 1.3x redis-benchmark GET, %d client%s", c,
                 c > 1 ? "s" : "");
        report_target("3.hit", d, ours && rb && rb->p50 > 0 ? ours->p50 / rb->p50 : NAN, 1.3, 0,
                      "x");
    }
    snprintf(d, sizeof d, "#3 hit rate under the skewed mix (%d clients, cache on)", top);
    char key[64];
    snprintf(key, sizeof key, "cache_hit_rate_%d_clients", top);
    report_target("3.hitrate", d, report_get_value("mix", key), 0.85, 1, "");
    snprintf(d, sizeof d, "#3 hit rate, steady state (%d clients, warmed cache)", top);
    snprintf(key, sizeof key, "warm_cache_hit_rate_%d_clients", top);
    report_target("3.hitrate.warm", d, report_get_value("steady", key), 0.85, 1, "");

    /* issue 5: analytics at 10M through the library */
    for (int i = 0; i < o->nclients; i++) {
        int c = o->clients[i];
        snprintf(d, sizeof d, "#16 exact dashboard over 30 days alone, p95, %d client%s", c,
                 c > 1 ? "s" : "");
        report_target("16.dashboard", d, row_p95("point", query_names[Q_ANALYTICS], c, 0), 50, 0,
                      "ms");
    }
    snprintf(d, sizeof d, "#16 exact dashboard p95 in the mix, %d clients, cache on", top);
    report_target("16.dashboard.mix", d, row_p95("mix", query_names[Q_ANALYTICS], top, 1), 50, 0,
                  "ms");
    /* What the rollup step costs writers: held to the sealer's bounds. */
    report_target("16.writers", "#16 single inserts, 8 clients: loss with the rollup following",
                  report_get_value("writes", "rollup_single_loss"), 0.10, 0, "x");
    report_target("16.writers.b", "#16 batch ingest (1000/call, 2 clients): loss with the rollup",
                  report_get_value("writes", "rollup_batch_loss"), 0.15, 0, "x");
    report_target("5.dashboard", "#5 dashboard over 30 days, exact, p95",
                  row_p95("point", query_names[Q_ANALYTICS], 1, 0), 200, 0, "ms");
    report_target("5.dashboard.view", "#5 dashboard over 30 days, view (PL_ALLOW_STALE), p95",
                  row_p95("point", "dashboard (view, stale ok)", 1, 0), 200, 0, "ms");
    report_target("5.audit", "#5 audit report over 30 days, every source, p95",
                  row_p95("point", "audit report (30 days)", 1, 0), 500, 0, "ms");
    report_target("5.audit.src", "#5 audit report over 30 days, one source, p95",
                  row_p95("point", "audit report (30 days, one source)", 1, 0), 500, 0, "ms");

    /* issue 10: tamper evidence (at 10M records) */
    report_target("10.verify", "#10 full verification (pl_verify, every record)",
                  report_get_value("tlog", "verify_seconds"), 120, 0, "s");
    report_target("10.verify.mem", "#10 full verification, peak memory of its process",
                  report_get_value("tlog", "verify_peak_rss_mb"), 256, 0, "MB");
    report_target("10.proof", "#10 inclusion proof served, p95, 1 client",
                  report_get_value("tlog", "proof_serve_p95_ms_1_client"), 5, 0, "ms");
    report_target("10.proof.verify", "#10 inclusion proof verified, p95",
                  report_get_value("tlog", "proof_verify_p95_us_1_client"), 100, 0, "us");
    report_target("10.single", "#10 single inserts, 8 clients: loss with a sealer following",
                  report_get_value("tlog", "single_insert_8_clients_loss"), 0.10, 0, "x");
    report_target("10.batch", "#10 batch ingest (1000/call, 2 clients): loss with a sealer",
                  report_get_value("tlog", "batch_insert_2_clients_loss"), 0.15, 0, "x");
    report_target("10.wait", "#10 committed record sealed within, p99, at 3,000 records/s",
                  report_get_value("tlog", "seal_wait_p99_s"), 1, 0, "s");

    /* issue 13: ingest beside raw COPY into the design record's table and
     * pgbench's single-row INSERT (latency ratios: pgbench's over ours) */
    static const struct {
        const char *id, *key, *desc;
        double min;
    } ingest[] = {
        {"13.batch", "batch_1000_vs_copy", "#13 pl_insert_batch 1000/call (hot) / raw COPY", 0.5},
        {"13.batch", "batch_10000_vs_copy", "#13 pl_insert_batch 10000/call (hot) / raw COPY", 0.5},
        {"13.batch", "batch_new_vs_copy", "#13 pl_insert_batch 1000/call (new) / raw COPY", 0.5},
        {"13.import", "import_vs_copy", "#13 pl_import_batch 1000/call / raw COPY", 0.7},
        {"13.single", "single_1_p50_ratio", "#13 pl_insert p50, 1 client, vs pgbench INSERT", 0.7},
        {"13.single", "single_1_p99_ratio", "#13 pl_insert p99, 1 client, vs pgbench INSERT", 0.7},
        {"13.single", "single_8_p50_ratio", "#13 pl_insert p50, 8 clients, vs pgbench INSERT", 0.7},
        {"13.single", "single_8_p99_ratio", "#13 pl_insert p99, 8 clients, vs pgbench INSERT", 0.7},
    };
    for (size_t i = 0; i < sizeof ingest / sizeof ingest[0]; i++)
        report_target(ingest[i].id, ingest[i].desc, report_get_value("ingest", ingest[i].key),
                      ingest[i].min, 1, "x");

    /* design record: p95 at 100 concurrent users, its mix, no cache */
    for (int t = 0; t < Q_NTYPES; t++) {
        snprintf(d, sizeof d, "ADR %s p95, mix, %d clients, cache off", query_names[t], top);
        report_target("adr.p95", d, row_p95("mix", query_names[t], top, 0), adr_p95_ms[t], 0,
                      "ms");
    }
    report_target("adr.writes", "ADR 500 inserts/s (single inserts, 8 clients, cache on)",
                  row_ops("writes", "single insert", 8, o->redis ? 1 : 0), 500, 1, "/s");
}
