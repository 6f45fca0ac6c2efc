/* provledger-bench: shared declarations. Each file under bench/ has one job:
 *   main.c       options, environment, the order of the phases
 *   dataset.c    the design record's dataset: its shape, and loading it
 *   progress.c   the loader's progress bar / periodic progress lines
 *   workload.c   client threads running the query mix on one shared handle
 *   reads.c      the read phases: mix, each type alone, baselines, pool sweep
 *   writes.c     single-insert and batch-insert load
 *   cachebench.c cache hits vs redis-benchmark, miss path, hit rate
 *   pgbench.c    pgbench scripts with the library's SQL, running pgbench
 *   targets.c    the targets of issues 3 and 4 and the design record
 *   histogram.c  latency recording (log-linear buckets, ~1.6% precision)
 *   report.c     tables on stdout, results.json, the gnuplot chart
 *   sysinfo.c    machine and server versions, load average
 *   sql.c        small libpq helpers for the bench's own SQL
 * phases.h declares the phases; results of full runs are in RESULTS.md. */
#ifndef PL_BENCH_H
#define PL_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <provledger.h>

#define BENCH_SCHEMA "bench"
/* The source type of the one-source audit report (about 10% of records). */
#define BENCH_AUDIT_SOURCE "user_correction"
#define BENCH_META_SCHEMA "bench_meta"
#define BENCH_NFIELDS 4
#define BENCH_MAX_CLIENTS 16

extern const char *const bench_fields[BENCH_NFIELDS];

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct bench_opts {
    long long records;        /* dataset size */
    const char *scale_name;   /* "tiny", "small", "full" or the number */
    double duration;          /* seconds per library mix run */
    double short_duration;    /* seconds per secondary run (pgbench, writes) */
    int clients[BENCH_MAX_CLIENTS];
    int nclients;
    int pool_override;        /* 0: min(clients, pool_cap) */
    int pool_cap;
    int redis_pool;           /* 0: one Redis connection per client thread */
    const char *out_dir;
    int skip_load;
    unsigned phases;          /* PH_* bits */
    /* environment */
    const char *pg;           /* PL_TEST_PG */
    const char *redis;        /* PL_TEST_REDIS, or NULL */
    const char *pg_bin;       /* PL_TEST_PG_BIN, or NULL */
    const char *redis_port;   /* PL_TEST_REDIS_PORT, or NULL */
} bench_opts;

enum {
    PH_LOAD = 1u << 0,
    PH_MIX = 1u << 1,
    PH_POINT = 1u << 2,
    PH_WRITES = 1u << 3,
    PH_CACHE = 1u << 4,
    PH_BASELINE = 1u << 5,
    PH_POOL = 1u << 6, /* pool-size sweep, only on request */
    PH_TLOG = 1u << 7, /* seals the dataset: runs last */
    PH_INGEST = 1u << 8,
    PH_ALL = PH_LOAD | PH_MIX | PH_POINT | PH_WRITES | PH_CACHE | PH_BASELINE | PH_INGEST | PH_TLOG
};

/* ------------------------------------------------------------------------ */
/* Random numbers (splitmix64; one state per thread)                         */
/* ------------------------------------------------------------------------ */

static inline uint64_t bench_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (hi >= lo). */
static inline int64_t bench_uniform(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(bench_rand(s) % (uint64_t)(hi - lo + 1));
}

double bench_now(void); /* monotonic seconds */

/* ------------------------------------------------------------------------ */
/* The dataset                                                               */
/* ------------------------------------------------------------------------ */

#define BENCH_US_PER_DAY INT64_C(86400000000)

/* Everything the query side needs to know about the generated data.
 * Entity i (id "txn_<i>") is created at t0 + i * step and writes all its
 * records inside [created, created + window] (capped at t_end), so an
 * entity's index tells its age; recency classes are index ranges. */
typedef struct bench_dataset {
    long long records;
    long entities;
    pl_time t0, t_end, step, window; /* microseconds */
    long hot_lo;  /* [hot_lo, entities): last activity in the last 90 days */
    long warm_lo; /* [warm_lo, hot_lo): 90 days to a year; [0, warm_lo) older */
} bench_dataset;

/* The shape for a number of records ending at `now`. */
void dataset_plan(bench_dataset *ds, long long records, pl_time now);
/* Drops and reloads schema "bench" through pl_import_batch with 2 loader
 * threads, then VACUUM ANALYZE; fills *rate_out with records/s. */
int dataset_load(const bench_opts *o, bench_dataset *ds, double *rate_out, double *secs_out);
/* Reads the shape of an already loaded dataset (--skip-load). */
int dataset_read(const bench_opts *o, bench_dataset *ds);

/* Recency-skewed entity choice: 80% hot, 15% warm, 5% cold. */
long dataset_pick_entity(const bench_dataset *ds, uint64_t *rng);
/* A hot entity (the write load and the cache's hot set use these). */
long dataset_pick_hot(const bench_dataset *ds, uint64_t *rng);
void dataset_entity_id(char *buf, size_t len, long i);
/* Seconds-granular instants inside entity i's active window. */
pl_time dataset_pick_time(const bench_dataset *ds, long i, uint64_t *rng);
pl_time dataset_pick_month(const bench_dataset *ds, long i, uint64_t *rng);

/* ------------------------------------------------------------------------ */
/* Latency histograms                                                        */
/* ------------------------------------------------------------------------ */

#define HIST_SUB 64
#define HIST_MAXEXP 40
#define HIST_BUCKETS ((HIST_MAXEXP - 5) * HIST_SUB)

typedef struct bench_hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
    uint64_t max_ns;
    double sum_ns;
} bench_hist;

void hist_reset(bench_hist *h);
void hist_record(bench_hist *h, uint64_t ns);
void hist_merge(bench_hist *into, const bench_hist *from);
/* Latency at quantile q (0..1) in milliseconds; 0 when empty. */
double hist_ms(const bench_hist *h, double q);
double hist_mean_ms(const bench_hist *h);

/* ------------------------------------------------------------------------ */
/* Workload: the design record's query mix                                   */
/* ------------------------------------------------------------------------ */

enum {
    Q_CURRENT,
    Q_RANGE,
    Q_ASOF,
    Q_HISTORY,
    Q_ANALYTICS,
    Q_NTYPES
};

extern const char *const query_names[Q_NTYPES];
extern const double mix_weights[Q_NTYPES]; /* 65, 15, 12, 5, 3 */
extern const double adr_p95_ms[Q_NTYPES];  /* 10, 75, 25, 100, 2000 */

/* The SQL of the ADR's dashboard query ("changes per day by source type,
 * last 30 days") as pl_dashboard_changes() runs it on the base table. */
extern const char analytics_sql[];

typedef struct run_spec {
    const char *label;
    int clients;
    int cache;                  /* open the handle with redis_url */
    unsigned flags;             /* query flags for every call */
    double weights[Q_NTYPES];
    double duration;
    int pool_size;              /* 0: default for the client count */
    unsigned analytics_flags;   /* extra flags for the dashboard query only */
    double warmup;              /* unmeasured seconds before the window; 0: default */
    int prefill;                /* fill the cache with every hot entity's current
                                   state before the warm-up (cache on only) */
} run_spec;

typedef struct run_result {
    bench_hist hist[Q_NTYPES];
    uint64_t errors[Q_NTYPES];
    uint64_t not_found[Q_NTYPES];
    double elapsed;
    uint64_t total;
    pl_stats_info stats;        /* counters of the handle after the run */
    char first_error[256];
    uint64_t from_view;         /* dashboard answers served by the view */
    double window_hit_rate;     /* cache hits / lookups inside the measured window */
    double prefill_s;           /* seconds the prefill took */
    int failed;                 /* the run could not start */
} run_result;

extern char bench_cache_prefix[64];

int pool_for(const bench_opts *o, int clients);
/* A handle on schema "bench"; `clients` sizes the Redis pool. */
pl_ledger *bench_open(const bench_opts *o, int cache, int pool_size, int clients, int import);
int workload_run(const bench_opts *o, const bench_dataset *ds, const run_spec *spec,
                 run_result *res);

/* ------------------------------------------------------------------------ */
/* pgbench                                                                   */
/* ------------------------------------------------------------------------ */

enum {
    PGB_CURRENT = Q_CURRENT,
    PGB_RANGE = Q_RANGE,
    PGB_ASOF = Q_ASOF,
    PGB_HISTORY = Q_HISTORY,
    PGB_ANALYTICS = Q_ANALYTICS,
    PGB_PK,        /* primary-key lookup in provenance_current */
    PGB_LEDGER_TT, /* the design record's indexed current query on the ledger */
    PGB_NAIVE,     /* the same without indexes */
    PGB_AUDIT,     /* pl_audit_open's statement, last 30 days, every source */
    PGB_AUDIT_SRC, /* the same for one source type */
    PGB_NSCRIPTS
};

typedef struct pgb_result {
    int ok;
    double tps;                 /* all scripts */
    double script_tps[PGB_NSCRIPTS];
    double script_lat_ms[PGB_NSCRIPTS];
    double lat_ms;
    long long failed;
    char error[256];
} pgb_result;

/* Writes every script file into the out dir. */
int pgb_write_scripts(const bench_opts *o, const bench_dataset *ds);
/* Runs pgbench with the scripts whose weight is > 0. */
int pgb_run(const bench_opts *o, const double weights[PGB_NSCRIPTS], int clients,
            double seconds, pgb_result *res);
int pgb_available(const bench_opts *o);

/* ------------------------------------------------------------------------ */
/* Report                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct bench_row {
    char phase[32];
    char name[48];
    int clients;
    int cache;          /* 1 on, 0 off, -1 n/a */
    double p50, p95, p99; /* ms; < 0: n/a */
    double ops;         /* per second */
    uint64_t count, errors;
    double pg_ops;      /* pgbench ops/s, < 0: n/a */
    char target[64];    /* "" when none */
    int met;            /* 1, 0, -1 n/a */
} bench_row;

void report_init(const bench_opts *o);
bench_row *report_row(const char *phase, const char *name, int clients, int cache);
/* Fills latency and throughput columns from a histogram. */
void report_fill(bench_row *r, const bench_hist *h, uint64_t errors, double elapsed);
void report_value(const char *phase, const char *key, double value, const char *unit);
void report_text(const char *phase, const char *key, const char *value);
/* A number added with report_value, or NAN. */
double report_get_value(const char *phase, const char *key);
/* A target: `higher` 1 when the measured value must be >= threshold. */
void report_target(const char *id, const char *desc, double measured, double threshold,
                   int higher, const char *unit);
void report_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void report_print_phase(const char *phase, const char *title);
void report_finish(const bench_opts *o, const bench_dataset *ds);
const bench_row *report_find(const char *phase, const char *name, int clients, int cache);

/* ------------------------------------------------------------------------ */
/* Machine, SQL helpers                                                      */
/* ------------------------------------------------------------------------ */

void sysinfo_collect(const bench_opts *o);
/* Records /proc/loadavg: other work on the machine skews every figure. */
void sysinfo_loadavg(const char *phase, const char *key);
/* Runs a command and returns its first output line (malloc'd) or NULL. */
char *run_capture(const char *cmd);

/* Run SQL on a fresh connection; returns 0 or -1 (message on stderr). */
int sql_exec(const char *conninfo, const char *sql);
/* First column of the first row as text (malloc'd), or NULL. */
char *sql_scalar(const char *conninfo, const char *sql);

void bench_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
