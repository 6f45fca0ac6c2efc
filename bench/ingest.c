/* Ingest beside raw COPY (issue 13).
 *
 * The yardstick is plain libpq COPY into the design record's indexed table
 * as issue 13 names it (ADR-0029 "Complete Index Setup": idx_prov_tt,
 * idx_prov_vt and GIN on metadata, with their INCLUDE columns; the ADR's
 * fourth, idx_prov_bitemporal, is left out as the issue leaves it out,
 * which makes the yardstick faster), holding as many rows as the
 * ledger, written in 1,000-row transactions. The library writes the same
 * rows in the same order: each stream (changes to random hot entities, new
 * entities with their four fields, history of new entities with the
 * caller's transaction times) comes from a generator with a fixed seed, so
 * both sides write a prefix of the same sequence. One client each, so the
 * figure is the cost of a row, not of the two cores' sharing.
 *
 * Single inserts: pl_insert at 1 and 8 clients beside pgbench running a
 * single-row prepared INSERT into the same design table, p50 and p99 of
 * both (pgbench's from its per-transaction log).
 *
 * The design record's indexes carry WHERE predicates on CURRENT_DATE, which
 * PostgreSQL refuses in an index (it is not immutable): they are built
 * without them, which makes the yardstick a little slower, never faster. */
#include <dirent.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phases.h"

#define DESIGN_SCHEMA "bench_design"
#define COPY_TXN 1000
#define IMPORT_PER_ENTITY 20 /* four fields, five versions each */

typedef enum stream { S_HOT, S_NEW, S_IMPORT } stream;

/* The k-th change of a stream; the strings live in *b. */
typedef struct gen {
    stream kind;
    uint64_t rng;
    long k;
    unsigned long long tag; /* makes this run's new entity ids unique */
    pl_time t0;             /* import: the first transaction time */
} gen;

static void gen_init(gen *g, stream kind, unsigned long long tag)
{
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->rng = 0x9e3779b97f4a7c15u ^ (uint64_t)kind;
    g->tag = tag;
    g->t0 = pl_time_now() - BENCH_US_PER_DAY;
}

static void gen_next(gen *g, const bench_dataset *ds, pl_change *c, change_buf *b, pl_time *tt)
{
    long k = g->k++;
    make_change(c, b, ds, &g->rng);
    if (g->kind == S_HOT)
        return;
    long per = g->kind == S_NEW ? BENCH_NFIELDS : IMPORT_PER_ENTITY;
    snprintf(b->eid, sizeof b->eid, "%c%llx_%ld", g->kind == S_NEW ? 'n' : 'i', g->tag, k / per);
    c->field_name = bench_fields[k % BENCH_NFIELDS];
    c->source_type = "bank_import";
    /* 1 ms apart: strictly increasing per entity, and a day is room for
     * 86 M records */
    if (tt)
        *tt = g->t0 + (pl_time)k * 1000;
}

/* ------------------------------------------------------------------------ */
/* Raw COPY                                                                  */
/* ------------------------------------------------------------------------ */

static int append_field(char **p, char *end, const char *s)
{
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\t' ? "\\t" : *s == '\n' ? "\\n" : NULL;
        size_t n = esc ? 2 : 1;
        if (*p + n >= end)
            return -1;
        if (esc) {
            memcpy(*p, esc, 2);
        } else {
            **p = *s;
        }
        *p += n;
    }
    return 0;
}

static void format_time(char *buf, size_t len, pl_time t)
{
    time_t s = (time_t)(t / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf, len, "%s.%06ld+00", day, (long)(t % 1000000));
}

/* One 1,000-row transaction of COPY; 0 or -1. */
static int copy_txn(PGconn *c, gen *g, const bench_dataset *ds, char *buf, size_t cap)
{
    const char *copy =
        g->kind == S_IMPORT
            ? "COPY " DESIGN_SCHEMA ".prov (entity_id, field_name, new_value, transaction_time, "
              "valid_time_start, source_type, metadata) FROM STDIN"
            : "COPY " DESIGN_SCHEMA ".prov (entity_id, field_name, new_value, source_type, "
              "metadata) FROM STDIN";
    PGresult *r = PQexec(c, "BEGIN");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    r = ok ? PQexec(c, copy) : NULL;
    ok = ok && PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    int copying = ok;
    char *p = buf, *end = buf + cap;
    for (int i = 0; ok && i < COPY_TXN; i++) {
        pl_change ch;
        change_buf b;
        pl_time tt = 0;
        gen_next(g, ds, &ch, &b, &tt);
        char ts[48];
        const char *cols[7];
        int n = 0;
        cols[n++] = ch.entity_id;
        cols[n++] = ch.field_name;
        cols[n++] = ch.new_value;
        if (g->kind == S_IMPORT) {
            format_time(ts, sizeof ts, tt);
            cols[n++] = ts; /* transaction_time */
            cols[n++] = ts; /* valid_time_start */
        }
        cols[n++] = ch.source_type;
        cols[n++] = ch.metadata;
        for (int j = 0; ok && j < n; j++) {
            ok = append_field(&p, end, cols[j]) == 0 && p + 1 < end;
            if (ok)
                *p++ = j + 1 < n ? '\t' : '\n';
        }
    }
    /* a COPY that started ends, sent or aborted, before the ROLLBACK */
    if (copying) {
        ok = ok && PQputCopyData(c, buf, (int)(p - buf)) == 1;
        ok = PQputCopyEnd(c, ok ? NULL : "row buffer full") == 1 && ok;
        while ((r = PQgetResult(c))) {
            ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
        }
    }
    r = PQexec(c, ok ? "COMMIT" : "ROLLBACK");
    ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        bench_log("ingest: raw COPY: %s", PQerrorMessage(c));
    return ok ? 0 : -1;
}

static uint64_t ns_between(const struct timespec *a, const struct timespec *b)
{
    return (uint64_t)(b->tv_sec - a->tv_sec) * 1000000000u + (uint64_t)b->tv_nsec -
           (uint64_t)a->tv_nsec;
}

/* One timed run of a stream: its generator, the latency of each call and
 * what it wrote. */
typedef struct timed_run {
    gen g;
    bench_hist h;
    uint64_t errors;
    long long rows;
    double t0, t_end;
} timed_run;

static void run_begin(timed_run *t, const bench_opts *o, stream kind, unsigned long long tag)
{
    gen_init(&t->g, kind, tag);
    hist_reset(&t->h);
    t->errors = 0;
    t->rows = 0;
    t->t0 = bench_now();
    t->t_end = t->t0 + o->short_duration;
}

/* Adds the run's row to the ingest table; returns rows/s, -1 after an error. */
static double run_end(const timed_run *t, const char *name, int cache)
{
    double el = bench_now() - t->t0;
    bench_row *r = report_row("ingest", name, 1, cache);
    report_fill(r, &t->h, t->errors, el);
    r->ops = el > 0 ? (double)t->rows / el : 0;
    return t->errors ? -1 : r->ops;
}

/* Rows/s of raw COPY of `kind`'s stream for the run's short duration. */
static double copy_run(const bench_opts *o, const bench_dataset *ds, stream kind,
                       unsigned long long tag, const char *name)
{
    PGconn *c = PQconnectdb(o->pg);
    size_t cap = (size_t)COPY_TXN * 512;
    char *buf = malloc(cap);
    if (PQstatus(c) != CONNECTION_OK || !buf) {
        bench_log("ingest: raw COPY: %s", PQerrorMessage(c));
        PQfinish(c);
        free(buf);
        return -1;
    }
    timed_run t;
    run_begin(&t, o, kind, tag);
    while (bench_now() < t.t_end) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (copy_txn(c, &t.g, ds, buf, cap) < 0) {
            t.errors++;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        hist_record(&t.h, ns_between(&a, &b));
        t.rows += COPY_TXN;
    }
    PQfinish(c);
    free(buf);
    return run_end(&t, name, -1);
}

/* ------------------------------------------------------------------------ */
/* The library, on the same streams                                          */
/* ------------------------------------------------------------------------ */

static double lib_run(const bench_opts *o, const bench_dataset *ds, stream kind, int per_call,
                      unsigned long long tag, const char *name)
{
    pl_ledger *l = bench_open(o, 0, 1, 1, kind == S_IMPORT);
    pl_change *changes = calloc((size_t)per_call, sizeof *changes);
    change_buf *bufs = calloc((size_t)per_call, sizeof *bufs);
    pl_time *tts = calloc((size_t)per_call, sizeof *tts);
    double ops = -1;
    if (!l || !changes || !bufs || !tts)
        goto out;
    timed_run t;
    run_begin(&t, o, kind, tag);
    while (bench_now() < t.t_end) {
        for (int i = 0; i < per_call; i++)
            gen_next(&t.g, ds, &changes[i], &bufs[i], &tts[i]);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = kind == S_IMPORT ? pl_import_batch(NULL, l, changes, tts, (size_t)per_call)
                                  : pl_insert_batch(NULL, l, changes, (size_t)per_call);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc != PL_OK) {
            report_note("ingest: %s: %s: %s", name, pl_strerror(rc), pl_errmsg());
            t.errors++;
            break;
        }
        hist_record(&t.h, ns_between(&a, &b));
        t.rows += per_call;
    }
    ops = run_end(&t, name, 0);
out:
    free(changes);
    free(bufs);
    free(tts);
    pl_close(l);
    return ops;
}

/* ------------------------------------------------------------------------ */
/* pgbench: a single-row prepared INSERT into the design table               */
/* ------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Adds the latencies (us, third column) of every log file pgbench wrote
 * under `prefix` in `dir`, then removes them. */
static size_t read_logs(const char *dir, const char *prefix, uint64_t **lat, size_t *cap)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* pgbench names them PREFIX.PID, and PREFIX.PID.N for its other threads */
        size_t pl = strlen(prefix);
        if (strncmp(e->d_name, prefix, pl) || e->d_name[pl] != '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f)) {
            unsigned long long us;
            if (sscanf(line, "%*s %*s %llu", &us) != 1)
                continue;
            if (n == *cap) {
                size_t nc = *cap ? *cap * 2 : 65536;
                uint64_t *nl = realloc(*lat, nc * sizeof *nl);
                if (!nl)
                    break;
                *lat = nl;
                *cap = nc;
            }
            (*lat)[n++] = us;
        }
        if (f)
            fclose(f);
        remove(path);
    }
    closedir(d);
    return n;
}

/* pgbench at `clients`: fills tps, p50 and p99 (ms); 0 or -1. */
static int pgbench_insert(const bench_opts *o, const bench_dataset *ds, int clients, double *tps,
                          double *p50, double *p99)
{
    char script[1024], prefix[64], cmd[4096];
    snprintf(script, sizeof script, "%s/pgb_ingest_insert.sql", o->out_dir);
    FILE *f = fopen(script, "w");
    if (!f)
        return -1;
    fprintf(f,
            "\\set e random(%ld, %ld)\n\\set v random(1, 100000)\n"
            "INSERT INTO " DESIGN_SCHEMA ".prov (entity_id, field_name, new_value, source_type, "
            "metadata) VALUES ('txn_' || :e, 'amount', to_jsonb(:v::int), 'api', "
            "'{\"import_batch_id\": \"bench_writes\"}');\n",
            ds->hot_lo, ds->entities - 1);
    fclose(f);
    snprintf(prefix, sizeof prefix, "pgb_ingest_%d", clients);
    int secs = (int)(o->short_duration + 0.5);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s/pgbench' -n -M prepared -c %d -j %d -T %d -l --log-prefix=%s "
             "-f pgb_ingest_insert.sql '%s' 2>&1",
             o->out_dir, o->pg_bin, clients, clients < 2 ? 1 : 2, secs < 1 ? 1 : secs, prefix,
             o->pg);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    *tps = -1;
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "tps = ", 6))
            *tps = atof(line + 6);
    int st = pclose(p);
    uint64_t *lat = NULL;
    size_t cap = 0, n = read_logs(o->out_dir, prefix, &lat, &cap);
    if (st != 0 || *tps < 0 || !n) {
        free(lat);
        report_note("ingest: pgbench single-row INSERT at %d clients failed", clients);
        return -1;
    }
    qsort(lat, n, sizeof *lat, cmp_u64);
    *p50 = (double)lat[n / 2] / 1000.0;
    *p99 = (double)lat[(size_t)((double)n * 0.99)] / 1000.0;
    free(lat);
    bench_row *r = report_row("ingest", "pgbench single-row INSERT", clients, -1);
    r->ops = *tps;
    r->p50 = *p50;
    r->p99 = *p99;
    r->p95 = -1;
    r->count = n;
    return 0;
}

/* ------------------------------------------------------------------------ */

static int design_table(const bench_opts *o)
{
    static const char sql[] =
        "DROP SCHEMA IF EXISTS " DESIGN_SCHEMA " CASCADE;"
        "CREATE SCHEMA " DESIGN_SCHEMA ";"
        "CREATE TABLE " DESIGN_SCHEMA ".prov ("
        "  id bigserial, entity_id text COLLATE \"C\" NOT NULL, field_name text COLLATE \"C\" NOT NULL,"
        "  old_value jsonb,"
        "  new_value jsonb NOT NULL, transaction_time timestamptz NOT NULL DEFAULT clock_timestamp(),"
        "  valid_time_start timestamptz NOT NULL DEFAULT clock_timestamp(),"
        "  valid_time_end timestamptz NOT NULL DEFAULT 'infinity',"
        "  source_type text COLLATE \"C\" NOT NULL,"
        "  change_reason text, metadata jsonb NOT NULL DEFAULT '{}');"
        "INSERT INTO " DESIGN_SCHEMA ".prov (entity_id, field_name, old_value, new_value,"
        "  transaction_time, valid_time_start, valid_time_end, source_type, change_reason, metadata)"
        " SELECT entity_id, field_name, old_value, new_value, transaction_time, valid_time_start,"
        "  valid_time_end, source_type, change_reason, metadata FROM " BENCH_SCHEMA
        ".provenance_ledger;"
        "CREATE INDEX idx_prov_tt ON " DESIGN_SCHEMA ".prov (entity_id, field_name,"
        "  transaction_time DESC) INCLUDE (new_value, old_value, valid_time_start, valid_time_end);"
        "CREATE INDEX idx_prov_vt ON " DESIGN_SCHEMA ".prov (entity_id, field_name,"
        "  valid_time_start, valid_time_end) INCLUDE (new_value, transaction_time);"
        "CREATE INDEX idx_prov_metadata ON " DESIGN_SCHEMA ".prov USING gin (metadata);";
    /* VACUUM: as dataset.c leaves the ledger (visibility map set, statistics) */
    return sql_exec(o->pg, sql) < 0 ? -1 : sql_exec(o->pg, "VACUUM ANALYZE " DESIGN_SCHEMA ".prov");
}

static void ratio(const char *key, double lib, double base)
{
    if (lib > 0 && base > 0)
        report_value("ingest", key, lib / base, "x");
}

void ingest_phase(const bench_opts *o, const bench_dataset *ds)
{
    bench_log("ingest: the design record's table, filled with the ledger's rows");
    double t0 = bench_now();
    if (design_table(o) < 0) {
        report_note("ingest: could not build the design record's table");
        return;
    }
    report_value("ingest", "design_table_build_s", bench_now() - t0, "s");
    unsigned long long tag = (unsigned long long)(bench_now() * 1000);
    bench_log("ingest: raw COPY and the library on the same streams (%.0f s each)",
              o->short_duration);
    double copy_hot = copy_run(o, ds, S_HOT, tag, "raw COPY, hot entities");
    double b1 = lib_run(o, ds, S_HOT, 1000, tag, "pl_insert_batch 1000/call, hot");
    double b10 = lib_run(o, ds, S_HOT, 10000, tag, "pl_insert_batch 10000/call, hot");
    double copy_new = copy_run(o, ds, S_NEW, tag, "raw COPY, new entities");
    double bn = lib_run(o, ds, S_NEW, 1000, tag, "pl_insert_batch 1000/call, new");
    double copy_imp = copy_run(o, ds, S_IMPORT, tag, "raw COPY, history");
    double imp = lib_run(o, ds, S_IMPORT, 1000, tag, "pl_import_batch 1000/call");
    ratio("batch_1000_vs_copy", b1, copy_hot);
    ratio("batch_10000_vs_copy", b10, copy_hot);
    ratio("batch_new_vs_copy", bn, copy_new);
    ratio("import_vs_copy", imp, copy_imp);
    static const int clients[] = {1, 8};
    for (int i = 0; i < 2; i++) {
        bench_hist h;
        double lib = write_run(o, ds, "ingest", "pl_insert", clients[i], 0, 0, 0, &h);
        double tps, p50, p99;
        if (!pgb_available(o) || pgbench_insert(o, ds, clients[i], &tps, &p50, &p99) < 0)
            continue;
        char key[64];
        snprintf(key, sizeof key, "single_%d_tps_ratio", clients[i]);
        ratio(key, lib, tps);
        /* latency: pgbench's over ours, so that >= 0.7 means within 70% */
        snprintf(key, sizeof key, "single_%d_p50_ratio", clients[i]);
        ratio(key, p50, hist_ms(&h, 0.5));
        snprintf(key, sizeof key, "single_%d_p99_ratio", clients[i]);
        ratio(key, p99, hist_ms(&h, 0.99));
    }
    sql_exec(o->pg, "DROP SCHEMA IF EXISTS " DESIGN_SCHEMA " CASCADE");
    report_print_phase("ingest", "Ingest (issue 13): records/s beside raw COPY into the design "
                                 "record's table (ops/s = records/s; latency per call)");
}
