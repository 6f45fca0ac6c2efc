/* provledger-bench: options, environment, and the order of the phases.
 *
 *   provledger-bench [--scale tiny|small|full|N] [--duration S]
 *                    [--clients 1,8,32,100] [--out DIR] [--skip-load]
 *                    [--phases load,mix,point,baseline,cache,writes,ingest,tlog,pool]
 *                    [--pool N] [--pool-cap N]
 *
 * Connection settings come from the environment that
 * `tests/servers.sh run --bench -- ...` exports: PL_TEST_PG (conninfo),
 * PL_TEST_REDIS (optional: the cache runs are skipped without it),
 * PL_TEST_PG_BIN (for pgbench), PL_TEST_REDIS_PORT (for redis-benchmark).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "phases.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: provledger-bench [options]\n"
            "  --scale tiny|small|full|N  dataset: 20,000 / 1,000,000 / 10,000,000 / N records\n"
            "                             (default full)\n"
            "  --duration S               seconds per mixed-workload run (default 30 at full\n"
            "                             scale, 3 at tiny, 10 otherwise); pgbench, isolated\n"
            "                             and write runs take a third of it (at least 1 s)\n"
            "  --clients LIST             client thread counts (default 1,8,32,100)\n"
            "  --out DIR                  results.json, latency.png, pgbench scripts\n"
            "                             (default bench/out)\n"
            "  --skip-load                reuse the dataset already in schema \"bench\"\n"
            "  --phases LIST              load,mix,point,baseline,cache,writes,ingest,tlog\n"
            "                             (default all); ingest compares batches, imports\n"
            "                             and single inserts with raw COPY and pgbench's\n"
            "                             INSERT into the design record's table; tlog seals\n"
            "                             the dataset, verifies it, serves\n"
            "                             proofs and repeats the writes with a sealer;\n"
            "                             'pool' sweeps the pool size at the largest client count\n"
            "  --pool N                   pool size for every run (default min(clients, cap))\n"
            "  --pool-cap N               cap of the default pool size (default 16)\n"
            "  --redis-pool N             Redis pool size (default: one per client thread)\n"
            "environment: PL_TEST_PG (required), PL_TEST_REDIS, PL_TEST_PG_BIN,\n"
            "             PL_TEST_REDIS_PORT, as exported by tests/servers.sh run --bench\n");
}

static int parse_scale(bench_opts *o, const char *s)
{
    if (!strcmp(s, "tiny"))
        o->records = 20000;
    else if (!strcmp(s, "small"))
        o->records = 1000000;
    else if (!strcmp(s, "full"))
        o->records = 10000000;
    else {
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (errno || *end || n < 20 || n > 1000000000LL)
            return -1;
        o->records = n;
    }
    o->scale_name = s;
    return 0;
}

static int parse_clients(bench_opts *o, const char *s)
{
    o->nclients = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (*end || v < 1 || v > 1000 || o->nclients >= BENCH_MAX_CLIENTS)
            return -1;
        o->clients[o->nclients++] = (int)v;
    }
    return o->nclients ? 0 : -1;
}

static int parse_phases(bench_opts *o, const char *s)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"load", PH_LOAD},     {"mix", PH_MIX},     {"point", PH_POINT},
                 {"baseline", PH_BASELINE}, {"cache", PH_CACHE}, {"writes", PH_WRITES},
                 {"pool", PH_POOL},     {"tlog", PH_TLOG}, {"ingest", PH_INGEST}, {"all", PH_ALL}};
    o->phases = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(tok, names[i].name))
                break;
        if (i == sizeof names / sizeof names[0])
            return -1;
        o->phases |= names[i].bit;
    }
    return o->phases ? 0 : -1;
}

static int mkdir_p(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int parse_args(bench_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    parse_scale(o, "full");
    o->out_dir = "bench/out";
    o->phases = PH_ALL;
    o->pool_cap = 16;
    double duration = -1;
    parse_clients(o, "1,8,32,100");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--skip-load")) {
            o->skip_load = 1;
            continue;
        } else if (!v) {
            bad = 1;
        } else if (!strcmp(a, "--scale")) {
            bad = parse_scale(o, v) < 0;
        } else if (!strcmp(a, "--duration")) {
            duration = atof(v);
            bad = duration <= 0;
        } else if (!strcmp(a, "--clients")) {
            bad = parse_clients(o, v) < 0;
        } else if (!strcmp(a, "--out")) {
            o->out_dir = v;
        } else if (!strcmp(a, "--phases")) {
            bad = parse_phases(o, v) < 0;
        } else if (!strcmp(a, "--pool")) {
            o->pool_override = atoi(v);
            bad = o->pool_override < 1 || o->pool_override > 1000;
        } else if (!strcmp(a, "--redis-pool")) {
            o->redis_pool = atoi(v);
            bad = o->redis_pool < 1 || o->redis_pool > 1000;
        } else if (!strcmp(a, "--pool-cap")) {
            o->pool_cap = atoi(v);
            bad = o->pool_cap < 1 || o->pool_cap > 1000;
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "provledger-bench: bad option %s%s%s\n", a, v ? " " : "", v ? v : "");
            usage(stderr);
            return -1;
        }
        i++;
    }
    if (duration <= 0)
        duration = o->records >= 10000000 ? 30 : o->records <= 20000 ? 3 : 10;
    o->duration = duration;
    o->short_duration = duration / 3 < 1 ? 1 : duration / 3;
    if (!(o->phases & PH_LOAD))
        o->skip_load = 1;
    o->pg = env_or_null("PL_TEST_PG");
    o->redis = env_or_null("PL_TEST_REDIS");
    o->pg_bin = env_or_null("PL_TEST_PG_BIN");
    o->redis_port = env_or_null("PL_TEST_REDIS_PORT");
    if (!o->pg) {
        fprintf(stderr, "provledger-bench: PL_TEST_PG is not set; run it as\n"
                        "  bash tests/servers.sh run --bench -- build/bench/provledger-bench\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o;
    if (parse_args(&o, argc, argv) < 0)
        return 2;
    if (mkdir_p(o.out_dir) < 0) {
        fprintf(stderr, "provledger-bench: cannot create %s: %s\n", o.out_dir, strerror(errno));
        return 1;
    }
    double t_start = bench_now();
    report_init(&o);
    sysinfo_collect(&o);
    printf("provledger-bench %s: scale %s (%lld records), %.0f s per mix run, clients", pl_version(),
           o.scale_name, o.records, o.duration);
    for (int i = 0; i < o.nclients; i++)
        printf("%s%d", i ? "," : " ", o.clients[i]);
    printf(", cache %s, pgbench %s\n", o.redis ? "on/off" : "off (no PL_TEST_REDIS)",
           pgb_available(&o) ? "yes" : "no (no PL_TEST_PG_BIN)");
    report_print_phase("machine", "Machine");

    bench_dataset ds;
    if (o.skip_load) {
        if (dataset_read(&o, &ds) < 0)
            return 1;
        if (ds.records != o.records)
            report_note("--skip-load: the loaded dataset has %lld records, not %lld", ds.records,
                        o.records);
        report_text("load", "dataset", "reused (--skip-load)");
    } else {
        double rate = 0, secs = 0;
        if (dataset_load(&o, &ds, &rate, &secs) < 0)
            return 1;
        report_value("load", "records", (double)ds.records, "");
        report_value("load", "entities", (double)ds.entities, "");
        report_value("load", "seconds", secs, "s");
        report_value("load", "records_per_s", rate, "rec/s");
    }
    report_value("load", "hot_entities (last 90 days)", (double)(ds.entities - ds.hot_lo), "");
    report_value("load", "warm_entities (90 days-1 year)", (double)(ds.hot_lo - ds.warm_lo), "");
    report_value("load", "cold_entities (older)", (double)ds.warm_lo, "");
    phase_sizes(&o);
    /* The dashboards' rollup, as a deployment's `provledger rollup --follow`
     * keeps it: the first step covers the whole dataset. */
    pl_ledger *rl = bench_open(&o, 0, 1, 1, 0);
    int64_t rolled = 0;
    double r0 = bench_now();
    int rrc = rl ? pl_rollup_advance(&rolled, rl) : PL_ECONNECT;
    if (rrc)
        report_note("pl_rollup_advance: %s: %s", pl_strerror(rrc), pl_errmsg());
    report_value("load", "rollup_step_s", bench_now() - r0, "s");
    report_value("load", "rollup_step_records", (double)rolled, "");
    pl_close(rl);
    report_print_phase("load", "Dataset");
    /* One key space per run: a --skip-load run must not find the answers
     * an earlier run cached (its misses would be hits). */
    snprintf(bench_cache_prefix, sizeof bench_cache_prefix, "plbench:%lld:%ld:",
             (long long)(pl_time_now() / 1000000), (long)getpid());
    if (pgb_write_scripts(&o, &ds) < 0)
        report_note("could not write the pgbench scripts into %s", o.out_dir);

    if (o.phases & PH_POOL)
        pool_phase(&o, &ds);
    if (o.phases & PH_MIX)
        mix_phase(&o, &ds);
    if (o.phases & PH_POINT)
        point_phase(&o, &ds);
    if (o.phases & PH_BASELINE)
        baseline_phase(&o, &ds);
    if (o.phases & PH_CACHE)
        cache_phase(&o, &ds);
    if (o.phases & PH_WRITES)
        writes_phase(&o, &ds);
    if (o.phases & PH_INGEST)
        ingest_phase(&o, &ds);
    /* Last: it seals the dataset, which no other phase expects. */
    if (o.phases & PH_TLOG)
        tlog_phase(&o, &ds);

    sysinfo_loadavg("run", "loadavg_at_end");
    collect_targets(&o, &ds);
    report_value("run", "total_seconds", bench_now() - t_start, "s");
    report_print_phase("run", "Run");
    report_finish(&o, &ds);
    return 0;
}
