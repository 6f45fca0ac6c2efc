/* provledger-bench-paging: keyset pages of a long history (issue 14).
 *
 *   provledger-bench-paging [--records N] [--seconds S] [--skip-load]
 *
 * Loads N records (default 1,000,100) of one entity over 4 fields into
 * schema "bench_paging" through pl_import_batch, then measures
 * pl_history_page (all fields, oldest first, pages of 100) for the first
 * page and for the 10,000th page (the page after record 999,900; fewer when
 * N is smaller), at 1 and 8 client threads on one handle, p50/p95, beside
 * pgbench running the same keyset SQL (lib/sql/statements/pl_page_all_asc.sql
 * with the position written in) with as many clients. Run it as
 *   bash tests/servers.sh run --bench --no-replica -- build/bench/provledger-bench-paging
 * Uses the public header only (and bench/histogram.c). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define SCHEMA "bench_paging"
#define ENTITY "pg_big"
#define PAGE 100

static const char *const fields[4] = {"amount", "status", "owner", "note"};

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "provledger-bench-paging: %s: %s: %s\n", what, pl_strerror(rc), pl_errmsg());
    exit(1);
}

static pl_ledger *open_ledger(const char *pg, int pool)
{
    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = pg;
    cfg.schema = SCHEMA;
    cfg.pool_size = (unsigned)pool;
    cfg.allow_import = 1;
    pl_ledger *l = NULL;
    int rc = pl_open(&l, &cfg);
    if (rc || (rc = pl_migrate(l)))
        die("open", rc);
    return l;
}

static long long count_records(pl_ledger *l)
{
    long long n = 0;
    char *cursor = NULL;
    do {
        pl_result *r = NULL;
        char *next = NULL;
        int rc = pl_history_page(&r, &next, l, ENTITY, NULL, cursor, PL_MAX_PAGE, 0);
        if (rc)
            die("count", rc);
        n += (long long)pl_result_count(r);
        pl_result_free(r);
        pl_free(cursor);
        cursor = next;
    } while (cursor);
    return n;
}

static void load(pl_ledger *l, long long n)
{
    enum { BATCH = 10000 };
    pl_change *c = calloc(BATCH, sizeof *c);
    pl_time *tt = calloc(BATCH, sizeof *tt);
    char(*vals)[24] = calloc(BATCH, 24);
    if (!c || !tt || !vals)
        die("load", PL_ENOMEM);
    pl_time base = pl_time_now() - 60000000 - (pl_time)n * 1000;
    double t0 = bench_now();
    for (long long done = 0; done < n;) {
        long long k = n - done < BATCH ? n - done : BATCH;
        for (long long i = 0; i < k; i++) {
            pl_change ch = PL_CHANGE_INIT;
            snprintf(vals[i], 24, "%lld", done + i);
            ch.entity_id = ENTITY;
            ch.field_name = fields[(done + i) % 4];
            ch.new_value = vals[i];
            ch.source_type = "bench";
            c[i] = ch;
            tt[i] = base + (pl_time)(done + i) * 1000;
        }
        int rc = pl_import_batch(NULL, l, c, tt, (size_t)k);
        if (rc)
            die("import", rc);
        done += k;
    }
    printf("loaded %lld records in %.1f s\n", n, bench_now() - t0);
    free(c);
    free(tt);
    free(vals);
}

/* The cursor after `depth` records (all fields, oldest first), and the
 * position it stands for. */
static char *cursor_at(pl_ledger *l, long long depth, pl_time *tt, int64_t *id)
{
    char *cursor = NULL;
    long long at = 0;
    while (at < depth) {
        size_t limit = depth - at >= PL_MAX_PAGE ? PL_MAX_PAGE : (size_t)(depth - at);
        pl_result *r = NULL;
        char *next = NULL;
        int rc = pl_history_page(&r, &next, l, ENTITY, NULL, cursor, limit, 0);
        if (rc || !next)
            die("walk to the deep page", rc ? rc : PL_NOT_FOUND);
        const pl_record *last = pl_result_get(r, pl_result_count(r) - 1);
        *tt = last->transaction_time;
        *id = last->id;
        at += (long long)pl_result_count(r);
        pl_result_free(r);
        pl_free(cursor);
        cursor = next;
    }
    return cursor;
}

typedef struct worker {
    pl_ledger *l;
    const char *cursor;
    double until;
    bench_hist hist;
    uint64_t errors;
    pthread_t thread;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    while (bench_now() < w->until) {
        pl_result *r = NULL;
        char *next = NULL;
        double t0 = bench_now();
        int rc = pl_history_page(&r, &next, w->l, ENTITY, NULL, w->cursor, PAGE, 0);
        double t1 = bench_now();
        if (rc || pl_result_count(r) != PAGE)
            w->errors++;
        else
            hist_record(&w->hist, (uint64_t)((t1 - t0) * 1e9));
        pl_result_free(r);
        pl_free(next);
    }
    return NULL;
}

static void run_lib(pl_ledger *l, const char *label, const char *cursor, int clients, double seconds)
{
    worker w[BENCH_MAX_CLIENTS];
    /* warm-up, unmeasured */
    for (int i = 0; i < 50; i++) {
        pl_result *r = NULL;
        char *next = NULL;
        pl_history_page(&r, &next, l, ENTITY, NULL, cursor, PAGE, 0);
        pl_result_free(r);
        pl_free(next);
    }
    double until = bench_now() + seconds;
    for (int i = 0; i < clients; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].l = l;
        w[i].cursor = cursor;
        w[i].until = until;
        hist_reset(&w[i].hist);
        pthread_create(&w[i].thread, NULL, work, &w[i]);
    }
    bench_hist all;
    hist_reset(&all);
    uint64_t errors = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(w[i].thread, NULL);
        hist_merge(&all, &w[i].hist);
        errors += w[i].errors;
    }
    printf("| library | %-14s | %d | %8.3f | %8.3f | %8.0f | %" PRIu64 " |\n", label, clients, hist_ms(&all, 0.5),
           hist_ms(&all, 0.95), (double)all.n / seconds, errors);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* pgbench -f with the keyset SQL, per-transaction log for p50/p95. */
static void run_pgbench(const char *pg, const char *pg_bin, const char *label, const char *at_tt,
                        const char *at_id, int clients, int seconds)
{
    char dir[] = "/tmp/plpaging.XXXXXX";
    if (!mkdtemp(dir))
        return;
    char script[256];
    snprintf(script, sizeof script, "%s/page.sql", dir);
    FILE *f = fopen(script, "w");
    if (!f)
        return;
    /* lib/sql/statements/pl_page_all_asc.sql, parameters written in. */
    fprintf(f,
            "SELECT id, entity_id, field_name, new_value, old_value, transaction_time, valid_time_start, "
            "valid_time_end, source_type, change_reason, metadata FROM " SCHEMA ".provenance_ledger "
            "WHERE entity_id = '" ENTITY "'::text AND transaction_time >= coalesce('-infinity'::timestamptz, "
            "now()) AND transaction_time < coalesce('infinity'::timestamptz, now()) AND (transaction_time, id) > "
            "('%s'::timestamptz, %s::int8) ORDER BY transaction_time, id LIMIT %d::int8;\n",
            at_tt, at_id, PAGE + 1);
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s/pgbench' -n -M prepared -c %d -j %d -T %d -l --log-prefix=tx -f page.sql '%s' "
             ">/dev/null 2>&1",
             dir, pg_bin, clients, clients < 2 ? 1 : 2, seconds, pg);
    if (system(cmd) != 0) {
        printf("| pgbench | %-14s | %d | (pgbench failed) |\n", label, clients);
        return;
    }
    size_t n = 0, cap = 1 << 16;
    double *lat = malloc(cap * sizeof *lat);
    char pattern[512];
    snprintf(pattern, sizeof pattern, "cat '%s'/tx.* 2>/dev/null", dir);
    FILE *p = popen(pattern, "r");
    char line[256];
    while (p && lat && fgets(line, sizeof line, p)) {
        long cid, tno, us;
        if (sscanf(line, "%ld %ld %ld", &cid, &tno, &us) == 3) {
            if (n == cap) {
                double *more = realloc(lat, (cap *= 2) * sizeof *lat);
                if (!more)
                    break;
                lat = more;
            }
            lat[n++] = (double)us / 1000.0;
        }
    }
    if (p)
        pclose(p);
    if (n) {
        qsort(lat, n, sizeof *lat, cmp_double);
        printf("| pgbench | %-14s | %d | %8.3f | %8.3f | %8.0f | 0 |\n", label, clients, lat[n / 2],
               lat[(size_t)((double)n * 0.95)], (double)n / seconds);
    }
    free(lat);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    long long records = 1000100;
    double seconds = 5;
    int skip_load = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--records") && i + 1 < argc)
            records = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--skip-load"))
            skip_load = 1;
        else {
            fprintf(stderr, "usage: provledger-bench-paging [--records N] [--seconds S] [--skip-load]\n");
            return 2;
        }
    }
    const char *pg = getenv("PL_TEST_PG"), *pg_bin = getenv("PL_TEST_PG_BIN");
    if (!pg) {
        fprintf(stderr, "provledger-bench-paging: PL_TEST_PG is not set (run under tests/servers.sh)\n");
        return 2;
    }
    pl_ledger *l = open_ledger(pg, 8);
    long long have = count_records(l);
    if (!skip_load && have != records) {
        if (have)
            fprintf(stderr, "schema %s holds %lld records; drop it to reload\n", SCHEMA, have), exit(1);
        load(l, records);
        have = records;
    }
    long long pages = have / PAGE;
    long long deep_page = pages >= 10000 ? 10000 : pages - 1;
    pl_time tt = 0;
    int64_t id = 0;
    char *deep = cursor_at(l, (deep_page - 1) * PAGE, &tt, &id);
    char at_tt[PL_TIME_BUFSIZE], at_id[24];
    pl_time_format(at_tt, sizeof at_tt, tt);
    snprintf(at_id, sizeof at_id, "%" PRId64, id);
    char deep_label[32];
    snprintf(deep_label, sizeof deep_label, "page %lld", deep_page);
    printf("%lld records of one entity, 4 fields; pages of %d, all fields, oldest first; %.0f s a run\n\n", have,
           PAGE, seconds);
    printf("| who | page | clients | p50 ms | p95 ms | pages/s | errors |\n|---|---|---|---|---|---|---|\n");
    static const int client_counts[2] = {1, 8};
    for (int c = 0; c < 2; c++) {
        run_lib(l, "page 1", NULL, client_counts[c], seconds);
        run_lib(l, deep_label, deep, client_counts[c], seconds);
        if (pg_bin) {
            run_pgbench(pg, pg_bin, "page 1", "-infinity", "0", client_counts[c], (int)seconds);
            run_pgbench(pg, pg_bin, deep_label, at_tt, at_id, client_counts[c], (int)seconds);
        }
    }
    pl_free(deep);
    pl_close(l);
    return 0;
}
