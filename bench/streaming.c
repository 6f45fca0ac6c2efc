/* provledger-bench-streaming: the streaming cursors of issues 10 and 16
 * alone, on a dataset provledger-bench loaded (schema "bench"), so two
 * builds of the library can be compared on the same rows in one servers
 * session (LD_LIBRARY_PATH picks the build):
 *
 *   provledger-bench-streaming seal KEY.pem      seal everything unsealed
 *   provledger-bench-streaming audit N [SOURCE]  N audit reports over the
 *                                                last 30 days, read to the end
 *   provledger-bench-streaming verify PUB.pem    one pl_verify() against the
 *                                                latest checkpoint
 *
 * One line per report or verification: rows, wall time, rows/s, this
 * process's CPU seconds (and peak RSS for verify). PL_TEST_PG as exported
 * by tests/servers.sh run --bench. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <provledger.h>

#define US_PER_DAY INT64_C(86400000000)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s: %s: %s\n", what, pl_strerror(rc), pl_errmsg());
    return 1;
}

static int no_finding(void *ctx, const pl_finding *f)
{
    (void)ctx;
    (void)f; /* counted in the summary */
    return 0;
}

static int seal(pl_ledger *l, const char *path)
{
    pl_key *k = NULL;
    int rc = pl_key_load(&k, path);
    if (rc)
        return fail("key", rc);
    double a = now_s();
    int64_t sealed = 0;
    pl_seal_info info;
    do {
        if ((rc = pl_seal(NULL, &info, sizeof info, l, k, NULL))) {
            pl_key_free(k);
            return fail("seal", rc);
        }
        sealed += info.sealed;
    } while (info.sealed > 0);
    printf("seal records=%lld s=%.2f\n", (long long)sealed, now_s() - a);
    pl_key_free(k);
    return 0;
}

static int audit(pl_ledger *l, int runs, const char *source)
{
    for (int i = 0; i < runs; i++) {
        double a = now_s(), c = cpu_s();
        pl_iter *it = NULL;
        int rc = pl_audit_open(&it, l, source, pl_time_now() - 30 * US_PER_DAY, PL_TIME_NOW);
        long long n = 0;
        const pl_record *rec;
        while (rc == PL_OK && (rc = pl_iter_next(&rec, it)) == PL_OK)
            n++;
        pl_iter_free(it);
        if (rc != PL_ITEROVER)
            return fail("audit", rc);
        double s = now_s() - a;
        printf("audit source=%s rows=%lld ms=%.0f rows_per_s=%.0f cpu_s=%.2f\n",
               source ? source : "all", n, s * 1e3, (double)n / s, cpu_s() - c);
        fflush(stdout);
    }
    return 0;
}

static int verify(pl_ledger *l, const char *path)
{
    pl_key *k = NULL;
    int rc = pl_key_load(&k, path);
    if (rc)
        return fail("key", rc);
    pl_checkpoint *trusted = NULL;
    if ((rc = pl_checkpoint_latest(&trusted, l))) {
        pl_key_free(k);
        return fail("checkpoint", rc);
    }
    pl_verify_summary sum;
    double a = now_s(), c = cpu_s();
    rc = pl_verify(&sum, sizeof sum, l, NULL, k, trusted, no_finding, NULL);
    double s = now_s() - a, cpu = cpu_s() - c;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    pl_checkpoint_free(trusted);
    pl_key_free(k);
    if (rc)
        return fail("verify", rc);
    printf("verify s=%.2f cpu_s=%.2f peak_rss_mb=%.0f\n", s, cpu, (double)ru.ru_maxrss / 1024.0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *pg = getenv("PL_TEST_PG");
    if (argc < 3 || !pg) {
        fprintf(stderr, "usage: %s seal KEY.pem | audit N [SOURCE] | verify PUB.pem (PL_TEST_PG set)\n",
                argv[0]);
        return 2;
    }
    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = pg;
    cfg.schema = "bench";
    cfg.pool_size = 1;
    cfg.pool_wait_timeout_ms = 60000;
    cfg.statement_timeout_ms = 600000;
    cfg.prepare = PL_PREPARE_NAMED;
    pl_ledger *l = NULL;
    int rc = pl_open(&l, &cfg);
    if (rc)
        return fail("open", rc);
    int status;
    if (!strcmp(argv[1], "seal"))
        status = seal(l, argv[2]);
    else if (!strcmp(argv[1], "audit"))
        status = audit(l, atoi(argv[2]), argc > 3 ? argv[3] : NULL);
    else if (!strcmp(argv[1], "verify"))
        status = verify(l, argv[2]);
    else
        status = 2;
    pl_close(l);
    return status;
}
