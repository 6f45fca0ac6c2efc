/* The read phases: the design record's mix (cache off and on) beside
 * pgbench running the same mix, each query type alone beside pgbench
 * running the library's statement, the primary-key and design-record
 * baselines, and an optional pool-size sweep. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phases.h"

static int has_client(const bench_opts *o, int c)
{
    for (int i = 0; i < o->nclients; i++)
        if (o->clients[i] == c)
            return 1;
    return 0;
}

static int max_clients(const bench_opts *o)
{
    int m = 0;
    for (int i = 0; i < o->nclients; i++)
        if (o->clients[i] > m)
            m = o->clients[i];
    return m;
}

static void run_label(char *buf, size_t len, const run_spec *s)
{
    snprintf(buf, len, "%s, %d clients, cache %s", s->label, s->clients, s->cache ? "on" : "off");
}

/* Merges every query type's latencies of a run into *all; returns its
 * failed calls. */
static uint64_t merge_types(const run_result *res, bench_hist *all)
{
    hist_reset(all);
    uint64_t errors = 0;
    for (int t = 0; t < Q_NTYPES; t++) {
        hist_merge(all, &res->hist[t]);
        errors += res->errors[t];
    }
    return errors;
}

/* Refreshes the materialized views and records how long it took under
 * `phase`; returns the library's code (noted when it failed). */
static int refresh_views(const bench_opts *o, const char *phase)
{
    pl_ledger *l = bench_open(o, 0, 1, 1, 0);
    double t0 = bench_now();
    int rc = l ? pl_refresh_views(l) : PL_ECONNECT;
    if (rc)
        report_note("%s: pl_refresh_views: %s: %s", phase, pl_strerror(rc), pl_errmsg());
    else
        report_value(phase, "refresh_views_s", bench_now() - t0, "s");
    pl_close(l);
    return rc;
}

/* Runs one workload and adds a row per query type that ran, plus one for
 * all of them together named `all_name`. */
static int run_rows(const bench_opts *o, const bench_dataset *ds, const char *phase,
                    const run_spec *spec, const char *all_name, int adr_targets,
                    run_result *res)
{
    char label[160];
    run_label(label, sizeof label, spec);
    bench_log("%s: %s (%.0f s)", phase, label, spec->duration);
    workload_run(o, ds, spec, res);
    if (res->failed)
        report_note("%s: %s could not run: %s", phase, label, res->first_error);
    bench_hist all;
    hist_reset(&all);
    uint64_t errors = 0;
    int types = 0;
    for (int t = 0; t < Q_NTYPES; t++) {
        if (spec->weights[t] <= 0)
            continue;
        types++;
        bench_row *r = report_row(phase, query_names[t], spec->clients, spec->cache);
        report_fill(r, &res->hist[t], res->errors[t], res->elapsed);
        if (adr_targets) {
            snprintf(r->target, sizeof r->target, "ADR p95<%gms", adr_p95_ms[t]);
            r->met = r->count ? r->p95 < adr_p95_ms[t] : 0;
        }
        hist_merge(&all, &res->hist[t]);
        errors += res->errors[t];
    }
    if (all_name && types > 1) {
        bench_row *r = report_row(phase, all_name, spec->clients, spec->cache);
        report_fill(r, &all, errors, res->elapsed);
    }
    if (errors)
        report_note("%s: %s: %llu failed calls, first: %s", phase, label,
                    (unsigned long long)errors, res->first_error);
    return res->failed ? -1 : 0;
}

static void set_pg_ops(const char *phase, const char *name, int clients, int cache, double v)
{
    bench_row *r = (bench_row *)report_find(phase, name, clients, cache);
    if (r)
        r->pg_ops = v;
}

static void pgbench_note(const char *what, const pgb_result *pr)
{
    if (pr->error[0])
        report_note("pgbench %s: %s", what, pr->error);
    if (pr->failed)
        report_note("pgbench %s: %lld failed transactions", what, pr->failed);
}

/* ------------------------------------------------------------------------ */

void mix_phase(const bench_opts *o, const bench_dataset *ds)
{
    for (int i = 0; i < o->nclients; i++) {
        int c = o->clients[i];
        for (int cache = 0; cache <= (o->redis ? 1 : 0); cache++) {
            run_spec s = {.label = "design-record mix",
                          .clients = c,
                          .cache = cache,
                          .duration = o->duration};
            memcpy(s.weights, mix_weights, sizeof s.weights);
            run_result *res = malloc(sizeof *res);
            if (!res)
                return;
            run_rows(o, ds, "mix", &s, "all (mix)", 1, res);
            if (cache) {
                char key[64];
                snprintf(key, sizeof key, "cache_hit_rate_%d_clients", c);
                report_value("mix", key, res->stats.cache_hit_rate, "");
                snprintf(key, sizeof key, "pool_waits_%d_clients_cache_on", c);
                report_value("mix", key, (double)res->stats.pool_waits, "");
            } else {
                char key[64];
                snprintf(key, sizeof key, "pool_waits_%d_clients_cache_off", c);
                report_value("mix", key, (double)res->stats.pool_waits, "");
            }
            free(res);
        }
        if (pgb_available(o)) {
            double w[PGB_NSCRIPTS] = {0};
            for (int t = 0; t < Q_NTYPES; t++)
                w[t] = mix_weights[t];
            pgb_result pr;
            bench_log("mix: pgbench, same mix, %d clients (%.0f s)", c, o->short_duration);
            pgb_run(o, w, c, o->short_duration, &pr);
            pgbench_note("mix", &pr);
            for (int cache = 0; cache <= 1; cache++) {
                for (int t = 0; t < Q_NTYPES; t++)
                    set_pg_ops("mix", query_names[t], c, cache, pr.script_tps[t]);
                set_pg_ops("mix", "all (mix)", c, cache, pr.tps);
            }
        }
    }
    /* The same mix without the dashboard query, at the largest client count:
     * how far the point queries go when no aggregate competes for the CPU. */
    int c = max_clients(o);
    if (o->records > 20000) {
        for (int cache = 0; cache <= (o->redis ? 1 : 0); cache++) {
            run_spec s = {.label = "mix without analytics",
                          .clients = c,
                          .cache = cache,
                          .duration = o->short_duration};
            memcpy(s.weights, mix_weights, sizeof s.weights);
            s.weights[Q_ANALYTICS] = 0;
            run_result *res = malloc(sizeof *res);
            if (!res)
                return;
            workload_run(o, ds, &s, res);
            bench_hist all;
            uint64_t errors = merge_types(res, &all);
            bench_row *r = report_row("mix", "all (mix w/o analytics)", c, cache);
            report_fill(r, &all, errors, res->elapsed);
            free(res);
        }
    }
    report_print_phase("mix", "Design-record query mix (65/15/12/5/3, recency skew 80/15/5)");
    /* Steady state at the largest client count, cache on: the hot entities'
     * current state prefilled, one unmeasured run-length of warm-up, and
     * the dashboard read from the materialized view (PL_ALLOW_STALE on the
     * dashboard call only; every point query stays exact), which is how
     * the design record serves dashboards. */
    if (o->redis && o->records > 20000) {
        refresh_views(o, "steady");
        run_spec s = {.label = "steady-state mix",
                      .clients = c,
                      .cache = 1,
                      .duration = o->duration};
        memcpy(s.weights, mix_weights, sizeof s.weights);
        s.analytics_flags = PL_ALLOW_STALE;
        s.warmup = o->duration;
        s.prefill = 1;
        run_result *res = malloc(sizeof *res);
        if (!res)
            return;
        run_rows(o, ds, "steady", &s, "all (mix)", 1, res);
        char key[64];
        snprintf(key, sizeof key, "warm_cache_hit_rate_%d_clients", c);
        report_value("steady", key, res->window_hit_rate, "");
        report_value("steady", "prefill_s", res->prefill_s, "s");
        if (res->from_view < res->hist[Q_ANALYTICS].n)
            report_note("steady: only %llu of %llu dashboard answers came from the view",
                        (unsigned long long)res->from_view,
                        (unsigned long long)res->hist[Q_ANALYTICS].n);
        free(res);
        report_print_phase("steady", "Steady-state mix: warmed cache, dashboard from the view "
                                     "(stale ok for the dashboard only)");
    }
}

/* ------------------------------------------------------------------------ */

static const double issue4_p95_ms[Q_NTYPES] = {1, 7.5, 2.5, 10, 0};

#define MAX_ROUNDS 5

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    if (n <= 0)
        return -1;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One query type at one client count: the library, pgbench on the same SQL
 * and (for current state) pgbench's primary-key lookup, in alternating
 * rounds, so that a drift in the machine's load does not land on one side of
 * a ratio. Throughputs are medians of the rounds; the library's latencies
 * are over all its rounds. */
static void point_pair(const bench_opts *o, const bench_dataset *ds, int t, int c, int maxc)
{
    int rounds = (int)(o->short_duration / 3);
    rounds = rounds < 1 ? 1 : rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds;
    double secs = o->short_duration / rounds;
    double lib[MAX_ROUNDS], pg[MAX_ROUNDS], pk[MAX_ROUNDS], pk_lat = 0;
    int nlib = 0, npg = 0, npk = 0;
    bench_hist all;
    hist_reset(&all);
    uint64_t errors = 0;
    double elapsed = 0;
    run_result *res = malloc(sizeof *res);
    if (!res)
        return;
    for (int round = 0; round < rounds; round++) {
        run_spec s = {.label = query_names[t],
                      .clients = c,
                      .cache = 0,
                      .duration = secs};
        s.weights[t] = 1;
        bench_log("point: %s, %d clients, round %d/%d (%.1f s each side)", query_names[t], c,
                  round + 1, rounds, secs);
        workload_run(o, ds, &s, res);
        if (res->failed) {
            report_note("point: %s, %d clients could not run: %s", query_names[t], c,
                        res->first_error);
        } else {
            hist_merge(&all, &res->hist[t]);
            errors += res->errors[t];
            elapsed += res->elapsed;
            lib[nlib++] = (double)res->hist[t].n / res->elapsed;
            if (res->errors[t])
                report_note("point: %s, %d clients: %llu failed calls, first: %s",
                            query_names[t], c, (unsigned long long)res->errors[t],
                            res->first_error);
        }
        if (!pgb_available(o))
            continue;
        double w[PGB_NSCRIPTS] = {0};
        w[t] = 1;
        pgb_result pr;
        pgb_run(o, w, c, secs, &pr);
        pgbench_note(query_names[t], &pr);
        if (pr.ok)
            pg[npg++] = pr.tps;
        if (t == Q_CURRENT) {
            double wpk[PGB_NSCRIPTS] = {0};
            wpk[PGB_PK] = 1;
            pgb_run(o, wpk, c, secs, &pr);
            pgbench_note("PK lookup", &pr);
            if (pr.ok) {
                pk[npk++] = pr.tps;
                pk_lat += pr.lat_ms;
            }
        }
    }
    free(res);
    bench_row *r = report_row("point", query_names[t], c, 0);
    report_fill(r, &all, errors, elapsed);
    r->ops = median(lib, nlib);
    r->pg_ops = median(pg, npg);
    if (c == maxc && c >= 100) {
        snprintf(r->target, sizeof r->target, "#4 p95<%gms@%d", issue4_p95_ms[t], c);
        r->met = r->count ? r->p95 < issue4_p95_ms[t] : 0;
    }
    if (t == Q_CURRENT && npk) {
        bench_row *k = report_row("point", "pgbench PK lookup", c, -1);
        k->ops = median(pk, npk);
        char key[64];
        snprintf(key, sizeof key, "pgbench_pk_latency_avg_%d_clients", c);
        report_value("point", key, pk_lat / npk, "ms");
        if ((c == 1 || c == 8) && !(c == maxc && c >= 100)) {
            snprintf(r->target, sizeof r->target, "#4 >=0.8x PK");
            r->met = r->ops >= 0.8 * k->ops;
        }
    }
}

/* The audit report over the last 30 days through pl_audit_open(), read to
 * the end (every record touched, as a report writer would), beside pgbench
 * running its statement. Whole reports per second; latency per report. */
static void audit_report(const bench_opts *o, const char *source, const char *name, int script)
{
    pl_ledger *l = bench_open(o, 0, 1, 1, 0);
    if (!l) {
        report_note("point: %s could not open: %s", name, pl_errmsg());
        return;
    }
    bench_hist h;
    hist_reset(&h);
    uint64_t errors = 0;
    long long rows = 0;
    char first[256] = "";
    double t_end = bench_now() + o->short_duration;
    int runs = 0;
    bench_log("point: %s (%.0f s, at least 2 reports)", name, o->short_duration);
    while (runs < 2 || bench_now() < t_end) {
        double a = bench_now();
        pl_iter *it = NULL;
        pl_time to = pl_time_now();
        int rc = pl_audit_open(&it, l, source, to - 30 * BENCH_US_PER_DAY, PL_TIME_NOW);
        long long n = 0;
        const pl_record *rec;
        while (rc == PL_OK && (rc = pl_iter_next(&rec, it)) == PL_OK)
            n++;
        pl_iter_free(it);
        if (rc != PL_ITEROVER) {
            errors++;
            if (!first[0])
                snprintf(first, sizeof first, "%s: %s", pl_strerror(rc), pl_errmsg());
        } else {
            hist_record(&h, (uint64_t)((bench_now() - a) * 1e9));
            rows = n;
        }
        runs++;
        if (runs >= 50 || errors > 2)
            break;
    }
    pl_close(l);
    bench_row *r = report_row("point", name, 1, 0);
    report_fill(r, &h, errors, bench_now() - (t_end - o->short_duration));
    snprintf(r->target, sizeof r->target, "#5 p95<500ms");
    r->met = r->count ? r->p95 < 500 : 0;
    char key[96];
    snprintf(key, sizeof key, "%s_rows", source ? "audit_one_source" : "audit_all_sources");
    report_value("point", key, (double)rows, "");
    /* Issue 16: rows per second at the median report, beside pgbench's. */
    const char *tag = source ? "audit_one_source" : "audit_all_sources";
    if (r->count && r->p50 > 0) {
        snprintf(key, sizeof key, "%s_rows_per_s", tag);
        report_value("point", key, (double)rows / (r->p50 / 1000.0), "rows/s");
    }
    if (errors)
        report_note("point: %s: %llu failed reports, first: %s", name, (unsigned long long)errors,
                    first);
    if (pgb_available(o)) {
        double w[PGB_NSCRIPTS] = {0};
        w[script] = 1;
        pgb_result pr;
        pgb_run(o, w, 1, o->short_duration, &pr);
        pgbench_note(name, &pr);
        if (pr.ok) {
            r->pg_ops = pr.tps;
            snprintf(key, sizeof key, "%s_pgbench_rows_per_s", tag);
            report_value("point", key, (double)rows * pr.tps, "rows/s");
        }
    }
}

void point_phase(const bench_opts *o, const bench_dataset *ds)
{
    /* tiny scale (CI) keeps to current state at 1 and 8 clients */
    int tiny = o->records <= 20000;
    int maxc = max_clients(o);
    for (int t = 0; t < Q_ANALYTICS; t++) {
        if (tiny && t != Q_CURRENT)
            continue;
        for (int i = 0; i < o->nclients; i++) {
            int c = o->clients[i];
            if (tiny && c != 1 && c != 8)
                continue;
            point_pair(o, ds, t, c, maxc);
        }
    }
    /* The dashboard alone: exact (base table), then from the materialized
     * view (PL_ALLOW_STALE) after a refresh, the design record's layer 2. */
    if (!tiny) {
        /* The exact one at every client count (issue 16), the view at 1. */
        for (int k = 0; k <= o->nclients; k++) {
            int stale = k == o->nclients, clients = stale ? 1 : o->clients[k];
            if (stale && refresh_views(o, "point"))
                break;
            run_spec s = {.label = stale ? "dashboard (view)" : query_names[Q_ANALYTICS],
                          .clients = clients,
                          .cache = 0,
                          .flags = stale ? PL_ALLOW_STALE : 0u,
                          .duration = o->short_duration};
            s.weights[Q_ANALYTICS] = 1;
            run_result *res = malloc(sizeof *res);
            if (!res)
                break;
            workload_run(o, ds, &s, res);
            bench_row *r = report_row("point", stale ? "dashboard (view, stale ok)"
                                                     : query_names[Q_ANALYTICS], clients, 0);
            report_fill(r, &res->hist[Q_ANALYTICS], res->errors[Q_ANALYTICS], res->elapsed);
            if (res->errors[Q_ANALYTICS])
                report_note("point: %s: %llu failed calls, first: %s", s.label,
                            (unsigned long long)res->errors[Q_ANALYTICS], res->first_error);
            if (stale && res->from_view < res->hist[Q_ANALYTICS].n)
                report_note("point: only %llu of %llu stale-ok dashboard answers came from the view",
                            (unsigned long long)res->from_view,
                            (unsigned long long)res->hist[Q_ANALYTICS].n);
            free(res);
            snprintf(r->target, sizeof r->target, "ADR p95<%gms", adr_p95_ms[Q_ANALYTICS]);
            r->met = r->count ? r->p95 < adr_p95_ms[Q_ANALYTICS] : 0;
            if (!stale && pgb_available(o)) {
                double w[PGB_NSCRIPTS] = {0};
                w[PGB_ANALYTICS] = 1;
                pgb_result pr;
                pgb_run(o, w, 1, o->short_duration, &pr);
                pgbench_note("dashboard", &pr);
                if (pr.ok)
                    r->pg_ops = pr.tps;
            }
        }
    }
    if (!tiny) {
        audit_report(o, NULL, "audit report (30 days)", PGB_AUDIT);
        audit_report(o, BENCH_AUDIT_SOURCE, "audit report (30 days, one source)", PGB_AUDIT_SRC);
    }
    report_print_phase("point", "Each query type alone, no cache, vs pgbench on the same statement "
                                "(medians of alternating rounds)");
}

/* ------------------------------------------------------------------------ */

void baseline_phase(const bench_opts *o, const bench_dataset *ds)
{
    (void)ds;
    if (!pgb_available(o)) {
        report_note("baseline: skipped (no pgbench)");
        return;
    }
    for (int i = 0; i < o->nclients; i++) {
        int c = o->clients[i];
        if (c != 1 && (c != 8 || o->records <= 20000))
            continue;
        double w[PGB_NSCRIPTS] = {0};
        w[PGB_LEDGER_TT] = 1;
        pgb_result pr;
        bench_log("baseline: design record's indexed current query on the ledger, %d clients", c);
        pgb_run(o, w, c, o->short_duration, &pr);
        pgbench_note("ledger query", &pr);
        bench_row *r = report_row("baseline", "ADR query via idx_prov_tt", c, -1);
        r->ops = pr.ok ? pr.tps : -1;
        char key[64];
        snprintf(key, sizeof key, "ledger_query_latency_avg_%d_clients", c);
        report_value("baseline", key, pr.lat_ms, "ms");
    }
    double w[PGB_NSCRIPTS] = {0};
    w[PGB_NAIVE] = 1;
    pgb_result pr;
    double secs = o->short_duration < 10 ? o->short_duration : 10;
    bench_log("baseline: design record's naive query without indexes, 1 client (%.0f s)", secs);
    pgb_run(o, w, 1, secs, &pr);
    pgbench_note("naive query", &pr);
    bench_row *r = report_row("baseline", "ADR naive query, no index", 1, -1);
    r->ops = pr.ok ? pr.tps : -1;
    report_value("baseline", "naive_query_latency_avg", pr.lat_ms, "ms");
    (void)has_client;
    report_print_phase("baseline", "Design-record baselines (pgbench)");
}

/* ------------------------------------------------------------------------ */

void pool_phase(const bench_opts *o, const bench_dataset *ds)
{
    static const int sizes[] = {2, 4, 8, 16, 32};
    int c = max_clients(o);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int cache = 0; cache <= (o->redis ? 1 : 0); cache++) {
            run_spec s = {.label = "pool sweep",
                          .clients = c,
                          .cache = cache,
                          .duration = o->short_duration,
                          .pool_size = sizes[i]};
            memcpy(s.weights, mix_weights, sizeof s.weights);
            s.weights[Q_ANALYTICS] = 0;
            run_result *res = malloc(sizeof *res);
            if (!res)
                return;
            workload_run(o, ds, &s, res);
            bench_hist all;
            uint64_t errors = merge_types(res, &all);
            char name[48];
            snprintf(name, sizeof name, "mix w/o analytics, pool %d", sizes[i]);
            bench_row *r = report_row("pool", name, c, cache);
            report_fill(r, &all, errors, res->elapsed);
            free(res);
        }
    }
    report_print_phase("pool", "Pool size sweep (mix without analytics, largest client count)");
}

void phase_sizes(const bench_opts *o)
{
    char *v = sql_scalar(o->pg,
                         "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) || ' total, ' ||"
                         " count(*) FILTER (WHERE c.relkind = 'r' AND c.relispartition) ||"
                         " ' ledger partitions' FROM pg_class c JOIN pg_namespace n ON"
                         " n.oid = c.relnamespace WHERE n.nspname = '" BENCH_SCHEMA "'"
                         " AND c.relkind IN ('r', 'p')");
    if (v)
        report_text("load", "schema_size", v);
    free(v);
    v = sql_scalar(o->pg, "SELECT count(*) FROM " BENCH_SCHEMA ".provenance_current");
    if (v)
        report_text("load", "provenance_current_rows", v);
    free(v);
}
