/* Tamper evidence under load (issue 10), on the loaded dataset:
 *   1. the first seal of every record (records/s);
 *   2. a full pl_verify() with the checkpoint just sealed as the trusted
 *      one, in a child process so that its peak memory is measured apart
 *      from the bench's, beside raw COPY of the rows and leaves it reads;
 *   3. inclusion proofs served (pl_prove_inclusion, random sealed records,
 *      1 and 8 clients) beside a primary-key read of the record, and
 *      verified (pl_verify_inclusion, microseconds);
 *   4. the write runs of writes.c (single inserts at 8 clients, batches of
 *      1,000 at 2 clients) with and without a sealer following, alternated
 *      three times each, medians compared;
 *   5. how long a committed record waits to be sealed at a fixed 3,000
 *      records/s, measured on the server's clock: the sealed_at of the first
 *      checkpoint that covers the record's leaf minus its transaction time
 *      (which is taken before the commit, so this errs on the long side).
 * The sealer follows as `provledger seal --follow` does: pl_seal() every
 * 250 ms on a handle of its own. Keys are generated here (Ed25519 PEM, as
 * `openssl genpkey` writes them). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "follow.h"
#include "phases.h"

#define SEAL_INTERVAL_MS 250
#define PACED_RATE 3000.0 /* records per second */
#define PACED_BATCH 10    /* records per pl_insert_batch call */
#define PACED_WRITERS 4
#define AB_ROUNDS 3

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

static int key_from_bio(pl_key **out, BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    return n > 0 ? pl_key_parse(out, data, (size_t)n) : PL_EINVAL;
}

/* A fresh Ed25519 key pair, through PEM text as a user's files hold it. */
static int make_keys(pl_key **priv, pl_key **pub)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    BIO *b = BIO_new(BIO_s_mem());
    int rc = PL_ENOMEM;
    if (k && b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1 &&
        (rc = key_from_bio(priv, b)) == PL_OK) {
        (void)BIO_reset(b);
        rc = PEM_write_bio_PUBKEY(b, k) == 1 ? key_from_bio(pub, b) : PL_ENOMEM;
    }
    BIO_free(b);
    EVP_PKEY_free(k);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Sealing                                                                   */
/* ------------------------------------------------------------------------ */

/* Seals until nothing is left; adds what was sealed to *sealed. */
static int catch_up(pl_ledger *l, const pl_key *key, int64_t *sealed, int64_t *size)
{
    for (;;) {
        pl_seal_info info;
        int rc = pl_seal(NULL, &info, sizeof info, l, key, NULL);
        if (rc)
            return rc;
        if (sealed)
            *sealed += info.sealed;
        if (size)
            *size = info.tree_size;
        if (info.sealed == 0)
            return PL_OK;
    }
}

/* One seal for the follower: as `provledger seal --follow` makes them. */
static int seal_step(void *arg, pl_ledger *l, int64_t *done)
{
    pl_seal_info info;
    int rc = pl_seal(NULL, &info, sizeof info, l, (const pl_key *)arg, NULL);
    if (rc == PL_OK) {
        *done += info.sealed;
        if (info.backdated)
            report_note("tlog: the sealer refused %" PRId64 " back-dated records", info.backdated);
    }
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Verification, in a child process                                         */
/* ------------------------------------------------------------------------ */

typedef struct verify_out {
    int rc;
    double seconds;
    pl_verify_summary sum;
    char error[200];
} verify_out;

static int count_finding(void *ctx, const pl_finding *f)
{
    (void)ctx;
    (void)f; /* counted in the summary */
    return 0;
}

static void verify_child(const bench_opts *o, const pl_key *pub, int fd)
{
    verify_out v;
    memset(&v, 0, sizeof v);
    pl_ledger *l = bench_open(o, 0, 1, 1, 0);
    pl_checkpoint *trusted = NULL;
    v.rc = l ? pl_checkpoint_latest(&trusted, l) : PL_ECONNECT;
    if (v.rc == PL_OK) {
        double t0 = bench_now();
        v.rc = pl_verify(&v.sum, sizeof v.sum, l, NULL, pub, trusted, count_finding, NULL);
        v.seconds = bench_now() - t0;
    }
    if (v.rc)
        snprintf(v.error, sizeof v.error, "%s: %s", pl_strerror(v.rc), pl_errmsg());
    pl_checkpoint_free(trusted);
    pl_close(l);
    ssize_t w = write(fd, &v, sizeof v);
    _exit(w == (ssize_t)sizeof v ? 0 : 1);
}

/* Runs pl_verify() in a child; *peak_mb receives the child's peak RSS. */
static int verify_run(const bench_opts *o, const pl_key *pub, verify_out *v, double *peak_mb)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        verify_child(o, pub, fds[1]);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], v, sizeof *v);
    close(fds[0]);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (wait4(pid, &status, 0, &ru) < 0 || got != (ssize_t)sizeof *v || !WIFEXITED(status))
        return -1;
    *peak_mb = (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
    return 0;
}

/* Raw libpq reading what the verifier reads: every ledger row and every
 * leaf, as COPY text. Returns seconds, or -1. */
static double raw_copy_seconds(const char *conninfo, long long *bytes)
{
    static const char *const copies[] = {
        "COPY (SELECT * FROM " BENCH_SCHEMA ".provenance_ledger) TO STDOUT",
        "COPY " BENCH_SCHEMA ".log_leaf TO STDOUT"};
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return -1;
    }
    *bytes = 0;
    double t0 = bench_now();
    for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
        PGresult *r = PQexec(c, copies[i]);
        int ok = PQresultStatus(r) == PGRES_COPY_OUT;
        PQclear(r);
        if (!ok)
            goto fail;
        char *buf;
        int n;
        while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
            *bytes += n;
            PQfreemem(buf);
        }
        if (n == -2)
            goto fail;
        while ((r = PQgetResult(c))) {
            ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            if (!ok)
                goto fail;
        }
    }
    PQfinish(c);
    return bench_now() - t0;
fail:
    bench_log("tlog: raw COPY: %s", PQerrorMessage(c));
    PQfinish(c);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Proofs                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct proof_shared {
    pl_ledger *l;
    int64_t lo, hi;          /* sealed record ids */
    double until;
    int raw;                 /* primary-key read instead of a proof */
    const char *conninfo;
} proof_shared;

typedef struct proof_worker {
    proof_shared *sh;
    uint64_t rng;
    bench_hist serve, check; /* pl_prove_inclusion; pl_verify_inclusion */
    uint64_t errors, not_found, bad;
    pthread_t th;
} proof_worker;

static void *proof_main(void *arg)
{
    proof_worker *w = arg;
    proof_shared *sh = w->sh;
    PGconn *c = NULL;
    if (sh->raw) {
        c = PQconnectdb(sh->conninfo);
        PGresult *r = PQprepare(c, "pk",
                                "SELECT * FROM " BENCH_SCHEMA ".provenance_ledger WHERE id = $1",
                                1, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            w->errors++;
        PQclear(r);
    }
    uint64_t span = (uint64_t)(sh->hi - sh->lo + 1);
    while (!w->errors && bench_now() < sh->until) {
        int64_t id = sh->lo + (int64_t)(bench_rand(&w->rng) % span);
        double a = bench_now();
        if (sh->raw) {
            char arg0[24];
            snprintf(arg0, sizeof arg0, "%" PRId64, id);
            const char *params[1] = {arg0};
            PGresult *r = PQexecPrepared(c, "pk", 1, params, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                w->errors++;
            PQclear(r);
            hist_record(&w->serve, (uint64_t)((bench_now() - a) * 1e9));
            continue;
        }
        pl_proof *p = NULL;
        int rc = pl_prove_inclusion(&p, sh->l, id, NULL);
        double b = bench_now();
        if (rc == PL_NOT_FOUND) {
            w->not_found++; /* an id the sequence skipped */
            continue;
        }
        if (rc) {
            w->errors++;
            bench_log("tlog: pl_prove_inclusion(%" PRId64 "): %s: %s", id, pl_strerror(rc),
                      pl_errmsg());
            continue;
        }
        hist_record(&w->serve, (uint64_t)((b - a) * 1e9));
        struct timespec x, y;
        clock_gettime(CLOCK_MONOTONIC, &x);
        rc = pl_verify_inclusion(p->leaf_hash, p->leaf_index, p->tree_size, p->hashes, p->count,
                                 p->root_hash);
        clock_gettime(CLOCK_MONOTONIC, &y);
        if (rc)
            w->bad++;
        hist_record(&w->check, (uint64_t)(y.tv_sec - x.tv_sec) * 1000000000u +
                                   (uint64_t)y.tv_nsec - (uint64_t)x.tv_nsec);
        pl_proof_free(p);
    }
    PQfinish(c);
    return NULL;
}

static void proof_run(const bench_opts *o, pl_ledger *l, int64_t lo, int64_t hi, int clients,
                      int raw)
{
    proof_shared sh = {l, lo, hi, bench_now() + o->short_duration, raw, o->pg};
    proof_worker *ws = calloc((size_t)clients, sizeof *ws);
    if (!ws)
        return;
    double t0 = bench_now();
    int started = 0;
    for (int i = 0; i < clients; i++) {
        ws[i].sh = &sh;
        ws[i].rng = (uint64_t)(i + 11) * 0x9e3779b97f4a7c15u ^ (uint64_t)(t0 * 1e6);
        hist_reset(&ws[i].serve);
        hist_reset(&ws[i].check);
        if (pthread_create(&ws[i].th, NULL, proof_main, &ws[i]) != 0)
            break;
        started++;
    }
    bench_hist serve, check;
    hist_reset(&serve);
    hist_reset(&check);
    uint64_t errors = 0, not_found = 0, bad = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].th, NULL);
        hist_merge(&serve, &ws[i].serve);
        hist_merge(&check, &ws[i].check);
        errors += ws[i].errors;
        not_found += ws[i].not_found;
        bad += ws[i].bad;
    }
    double el = bench_now() - t0;
    bench_row *r = report_row("tlog", raw ? "raw PK read of the record" : "proof served", clients,
                              -1);
    report_fill(r, &serve, errors, el);
    if (raw) {
        free(ws);
        return;
    }
    r = report_row("tlog", "proof verified (in memory)", clients, -1);
    report_fill(r, &check, bad, el);
    char key[64];
    snprintf(key, sizeof key, "proof_verify_p95_us_%d_client%s", clients, clients > 1 ? "s" : "");
    report_value("tlog", key, hist_ms(&check, 0.95) * 1000.0, "us");
    snprintf(key, sizeof key, "proof_serve_p95_ms_%d_client%s", clients, clients > 1 ? "s" : "");
    report_value("tlog", key, hist_ms(&serve, 0.95), "ms");
    if (not_found)
        report_note("tlog: %" PRIu64 " proof requests drew an id with no record", not_found);
    if (bad)
        report_note("tlog: %" PRIu64 " served proofs did not verify", bad);
    free(ws);
}

/* ------------------------------------------------------------------------ */
/* Writes with and without a sealer following                                */
/* ------------------------------------------------------------------------ */

typedef struct paced_writer {
    pl_ledger *l;
    const bench_dataset *ds;
    double start, until, every; /* seconds between this writer's calls */
    uint64_t rng, records, errors;
    bench_hist hist;
    pthread_t th;
} paced_writer;

static void *paced_main(void *arg)
{
    paced_writer *w = arg;
    pl_change c[PACED_BATCH];
    change_buf b[PACED_BATCH];
    for (long k = 0;; k++) {
        double due = w->start + (double)k * w->every;
        if (due >= w->until)
            break;
        double now = bench_now();
        if (due > now)
            sleep_ms((long)((due - now) * 1000.0));
        for (int i = 0; i < PACED_BATCH; i++)
            make_change(&c[i], &b[i], w->ds, &w->rng);
        double a = bench_now();
        int rc = pl_insert_batch(NULL, w->l, c, PACED_BATCH);
        hist_record(&w->hist, (uint64_t)((bench_now() - a) * 1e9));
        if (rc)
            w->errors++;
        else
            w->records += PACED_BATCH;
    }
    return NULL;
}

/* Records written at PACED_RATE for `seconds` with the sealer following;
 * the wait of each for its seal comes from the server's own times. */
static void seal_latency_run(const bench_opts *o, const bench_dataset *ds, const pl_key *key,
                             double seconds)
{
    follower s;
    if (follower_start(&s, o, "sealer", seal_step, (void *)key, SEAL_INTERVAL_MS) < 0)
        return;
    pl_checkpoint *cp = NULL;
    int64_t size0 = pl_checkpoint_latest(&cp, s.l) == PL_OK ? cp->tree_size : 0;
    pl_checkpoint_free(cp);
    pl_ledger *l = bench_open(o, 0, PACED_WRITERS, PACED_WRITERS, 0);
    if (!l) {
        follower_stop(&s, "sealer");
        return;
    }
    bench_log("tlog: %.0f records/s for %.0f s with the sealer following", PACED_RATE, seconds);
    paced_writer w[PACED_WRITERS];
    double start = bench_now() + 0.1;
    for (int i = 0; i < PACED_WRITERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].l = l;
        w[i].ds = ds;
        /* writers are staggered so that calls arrive evenly */
        w[i].every = PACED_WRITERS * PACED_BATCH / PACED_RATE;
        w[i].start = start + (double)i * w[i].every / PACED_WRITERS;
        w[i].until = start + seconds;
        w[i].rng = (uint64_t)(i + 3) * 0x9e3779b97f4a7c15u;
        hist_reset(&w[i].hist);
        pthread_create(&w[i].th, NULL, paced_main, &w[i]);
    }
    bench_hist h;
    hist_reset(&h);
    uint64_t records = 0, errors = 0;
    for (int i = 0; i < PACED_WRITERS; i++) {
        pthread_join(w[i].th, NULL);
        hist_merge(&h, &w[i].hist);
        records += w[i].records;
        errors += w[i].errors;
    }
    double el = bench_now() - start;
    pl_close(l);
    sleep_ms(3 * SEAL_INTERVAL_MS); /* the last writes' seals */
    follower_stop(&s, "sealer");
    bench_row *r = report_row("tlog", "paced batch of 10, sealer following", PACED_WRITERS, 0);
    report_fill(r, &h, errors, el);
    r->ops = el > 0 ? (double)records / el : 0;
    report_value("tlog", "paced_records_per_s", r->ops, "rec/s");

    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT format('%%s %%s %%s %%s %%s', count(*), count(w),"
             " percentile_disc(0.5) WITHIN GROUP (ORDER BY w),"
             " percentile_disc(0.99) WITHIN GROUP (ORDER BY w), max(w))"
             " FROM (SELECT extract(epoch FROM ("
             "   SELECT c.sealed_at FROM %s.log_checkpoint c WHERE c.tree_size > f.leaf_index"
             "   ORDER BY c.tree_size, c.id LIMIT 1) - p.transaction_time) AS w"
             "  FROM %s.log_leaf f JOIN %s.provenance_ledger p ON p.id = f.item_id"
             "  WHERE f.kind = 1 AND f.leaf_index >= %" PRId64 ") s",
             BENCH_SCHEMA, BENCH_SCHEMA, BENCH_SCHEMA, size0);
    char *line = sql_scalar(o->pg, sql);
    long long n = 0, timed = 0;
    double p50 = -1, p99 = -1, max = -1;
    if (!line || sscanf(line, "%lld %lld %lf %lf %lf", &n, &timed, &p50, &p99, &max) < 2) {
        report_note("tlog: the seal wait query failed");
        free(line);
        return;
    }
    free(line);
    report_value("tlog", "seal_wait_records", (double)n, "");
    report_value("tlog", "seal_wait_p50_s", p50, "s");
    report_value("tlog", "seal_wait_p99_s", p99, "s");
    report_value("tlog", "seal_wait_max_s", max, "s");
    if ((uint64_t)n < records)
        report_note("tlog: %llu of %" PRIu64 " paced records were not sealed 0.75 s after the run",
                    (unsigned long long)(records - (uint64_t)n), records);
    report_value("tlog", "seal_call_p50_ms", hist_ms(&s.hist, 0.5), "ms");
    report_value("tlog", "seal_call_p99_ms", hist_ms(&s.hist, 0.99), "ms");
}

/* ------------------------------------------------------------------------ */

void tlog_phase(const bench_opts *o, const bench_dataset *ds)
{
    pl_key *priv = NULL, *pub = NULL;
    if (make_keys(&priv, &pub) != PL_OK) {
        report_note("tlog: no Ed25519 key could be made: %s", pl_errmsg());
        goto out;
    }
    pl_ledger *l = bench_open(o, 0, 8, 8, 0);
    if (!l)
        goto out;

    /* 1. The first seal: every record loaded so far. */
    bench_log("tlog: sealing the dataset");
    int64_t sealed = 0, size = 0;
    double t0 = bench_now();
    int rc = catch_up(l, priv, &sealed, &size);
    double secs = bench_now() - t0;
    if (rc) {
        report_note("tlog: pl_seal: %s: %s", pl_strerror(rc), pl_errmsg());
        pl_close(l);
        goto out;
    }
    report_value("tlog", "first_seal_records", (double)sealed, "");
    report_value("tlog", "first_seal_seconds", secs, "s");
    report_value("tlog", "first_seal_records_per_s", secs > 0 ? (double)sealed / secs : 0, "rec/s");
    report_value("tlog", "tree_size", (double)size, "");

    /* 2. Full verification, beside raw reading of the same rows. */
    bench_log("tlog: verifying %" PRId64 " leaves", size);
    verify_out v;
    double peak = 0;
    if (verify_run(o, pub, &v, &peak) < 0 || v.rc) {
        report_note("tlog: pl_verify failed: %s", v.rc ? v.error : "the child died");
    } else {
        report_value("tlog", "verify_seconds", v.seconds, "s");
        report_value("tlog", "verify_peak_rss_mb", peak, "MB");
        report_value("tlog", "verify_records", (double)v.sum.records, "");
        report_value("tlog", "verify_findings", (double)v.sum.findings, "");
        report_value("tlog", "verify_records_per_s", v.seconds > 0 ? (double)v.sum.records / v.seconds : 0,
                     "rec/s");
        if (v.sum.findings)
            report_note("tlog: pl_verify reported %" PRId64 " findings on an untouched ledger",
                        v.sum.findings);
    }
    long long bytes = 0;
    double raw = raw_copy_seconds(o->pg, &bytes);
    if (raw >= 0) {
        report_value("tlog", "raw_copy_rows_and_leaves_seconds", raw, "s");
        report_value("tlog", "raw_copy_mb", (double)bytes / 1048576.0, "MB");
    }

    /* 3. Proofs, beside a primary-key read of the record. */
    char *range = sql_scalar(o->pg, "SELECT format('%s %s', min(item_id), max(item_id)) FROM " BENCH_SCHEMA
                                    ".log_leaf WHERE kind = 1");
    long long lo = 0, hi = -1;
    if (range && sscanf(range, "%lld %lld", &lo, &hi) == 2 && hi >= lo) {
        bench_log("tlog: proofs (%.0f s per run)", o->short_duration);
        for (int clients = 1; clients <= 8; clients += 7) {
            proof_run(o, l, lo, hi, clients, 0);
            proof_run(o, l, lo, hi, clients, 1);
        }
    }
    free(range);
    pl_close(l);

    /* 4. Writers with and without a sealer following. */
    follow_ab_writes(o, ds, "tlog", "sealer", seal_step, priv, SEAL_INTERVAL_MS, "single insert",
                     "single_insert_8_clients", 8, 0, AB_ROUNDS);
    follow_ab_writes(o, ds, "tlog", "sealer", seal_step, priv, SEAL_INTERVAL_MS,
                     "batch insert (1000/call)", "batch_insert_2_clients", 2, 1000, AB_ROUNDS);

    /* 5. The wait for a seal at a fixed rate. */
    seal_latency_run(o, ds, priv, o->duration);
out:
    pl_key_free(priv);
    pl_key_free(pub);
    report_print_phase("tlog", "Tamper evidence (sealing, verification, proofs)");
}
