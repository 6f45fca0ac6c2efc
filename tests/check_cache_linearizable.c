/* The concurrency proof of the cache guarantees (issue 3, guarantees 1 and
 * 2): two processes, each with its own pl_ledger on the same PostgreSQL and
 * Redis, four threads each, write and read a hot set of 4 entities x 2
 * fields for ten seconds. Every operation is logged with its start and end
 * (CLOCK_MONOTONIC, one clock for every process of the machine) and its
 * value; afterwards the parent checks, per (entity, field):
 *  (a) every read returned a value some write wrote (with that write's
 *      transaction time), not one written only after the read ended, or
 *      "not found" while no write had finished;
 *  (b) every read returned a value at least as new, by transaction time, as
 *      every write that finished before the read started.
 * A second test does the same while Redis is stopped (SIGSTOP) for one
 * second in the middle.
 *
 * Public API only.
 *
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

enum {
    NPROC = 2,
    NTHREADS = 4,
    NENTITIES = 4,
    NFIELDS = 2,
    NKEYS = NENTITIES * NFIELDS,
    WRITE_PERCENT = 15,
};

#define RUN_SECONDS 10
#define NOT_FOUND_VALUE INT64_C(-1)

typedef struct op {
    int64_t start_ns, end_ns;
    int64_t value;  /* written or read; NOT_FOUND_VALUE for not found */
    int64_t tt;     /* receipt's, or the read record's transaction time */
    int32_t rc;     /* the call's status */
    uint8_t write;
    uint8_t key;
    uint8_t origin; /* reads: pl_result_origin */
    uint8_t proc, thread;
} op;

typedef struct log_head {
    uint64_t hits, misses, fills, refused, bypassed, redis_errors;
    int64_t nops;
} log_head;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
    for (;;) {
        int64_t left = t - mono_ns();
        if (left <= 0)
            return;
        struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
        nanosleep(&ts, NULL);
    }
}

static const char *const entity_names[NENTITIES] = {"hot-0", "hot 1", "hot:2", "h\xc3\xb6t-3"};
static const char *const field_names[NFIELDS] = {"f", "t"};

/* ------------------------------------------------------------------------ */
/* The children                                                              */
/* ------------------------------------------------------------------------ */

typedef struct worker {
    pl_ledger *l;
    int proc, thread;
    int64_t start_ns, end_ns;
    op *ops;
    size_t nops, cap;
    int failed;
} worker;

static op *next_op(worker *w)
{
    if (w->nops == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        op *n = realloc(w->ops, cap * sizeof *n);
        if (!n)
            return NULL;
        w->ops = n;
        w->cap = cap;
    }
    op *o = &w->ops[w->nops++];
    memset(o, 0, sizeof *o);
    o->proc = (uint8_t)w->proc;
    o->thread = (uint8_t)w->thread;
    return o;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    uint64_t seed = (uint64_t)w->proc * 1000 + (uint64_t)w->thread + 1;
    int64_t counter = 0;
    sleep_until_ns(w->start_ns);
    while (mono_ns() < w->end_ns) {
        op *o = next_op(w);
        if (!o) {
            w->failed = 1;
            break;
        }
        int key = (int)(tu_rand64(&seed) % NKEYS);
        const char *entity = entity_names[key / NFIELDS], *field = field_names[key % NFIELDS];
        o->key = (uint8_t)key;
        if (tu_rand64(&seed) % 100 < WRITE_PERCENT) {
            o->write = 1;
            o->value = (int64_t)w->proc * 1000000000 + (int64_t)w->thread * 1000000 + ++counter;
            char text[32];
            snprintf(text, sizeof text, "%" PRId64, o->value);
            pl_change c = PL_CHANGE_INIT;
            c.entity_id = entity;
            c.field_name = field;
            c.new_value = text;
            c.source_type = "linearizable";
            pl_receipt r;
            memset(&r, 0, sizeof r);
            o->start_ns = mono_ns();
            o->rc = pl_insert(&r, w->l, &c);
            o->end_ns = mono_ns();
            o->tt = r.transaction_time;
        } else {
            pl_result *r = NULL;
            o->start_ns = mono_ns();
            o->rc = pl_current(&r, w->l, entity, field, 0);
            o->end_ns = mono_ns();
            if (o->rc == PL_OK) {
                const pl_record *rec = pl_result_get(r, 0);
                char *end = NULL;
                errno = 0;
                o->value = strtoll(rec->new_value, &end, 10);
                if (errno || *end || strcmp(rec->entity_id, entity) != 0 ||
                    strcmp(rec->field_name, field) != 0)
                    o->value = INT64_MIN; /* garbage: the checker reports it */
                o->tt = rec->transaction_time;
                o->origin = (uint8_t)pl_result_origin(r);
            } else if (o->rc == PL_NOT_FOUND) {
                o->value = NOT_FOUND_VALUE;
            }
            pl_result_free(r);
        }
        if (o->rc != PL_OK && o->rc != PL_NOT_FOUND) {
            fprintf(stderr, "proc %d thread %d: %s -> %d: %s\n", w->proc, w->thread,
                    o->write ? "pl_insert" : "pl_current", o->rc, pl_errmsg());
            w->failed = 1;
        }
    }
    return NULL;
}

typedef struct run_cfg {
    char schema[64];
    char prefix[128];
    char logdir[512];
    int64_t start_ns;
} run_cfg;

static void log_path(char *out, size_t size, const run_cfg *rc, int proc)
{
    snprintf(out, size, "%s/linearizable-%s-%d.log", rc->logdir, rc->schema, proc);
}

/* The child's whole life; its exit status says whether every call worked. */
static int child_main(const run_cfg *rc, int proc)
{
    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = getenv("PL_TEST_PG");
    cfg.schema = rc->schema;
    cfg.cache_key_prefix = rc->prefix;
    cfg.redis_url = getenv("PL_TEST_REDIS");
    cfg.redis_connect_timeout_ms = 150;
    cfg.redis_command_timeout_ms = 150;
    cfg.cache_lease_ms = 400;
    cfg.redis_retry_ms = 200;
    pl_ledger *l = NULL;
    int st = pl_open(&l, &cfg);
    if (st != PL_OK) {
        fprintf(stderr, "proc %d: pl_open -> %d: %s\n", proc, st, pl_errmsg());
        return 2;
    }
    worker w[NTHREADS];
    pthread_t th[NTHREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].l = l;
        w[i].proc = proc;
        w[i].thread = i;
        w[i].start_ns = rc->start_ns;
        w[i].end_ns = rc->start_ns + (int64_t)RUN_SECONDS * 1000000000;
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
            return 3;
    }
    int failed = 0;
    log_head head;
    memset(&head, 0, sizeof head);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        failed |= w[i].failed;
        head.nops += (int64_t)w[i].nops;
    }
    pl_stats_info s;
    memset(&s, 0, sizeof s);
    pl_stats(&s, l, sizeof s);
    head.hits = s.cache_hits;
    head.misses = s.cache_misses;
    head.fills = s.cache_fills;
    head.refused = s.cache_fills_refused;
    head.bypassed = s.cache_bypassed;
    head.redis_errors = s.redis_errors;
    fprintf(stderr,
            "proc %d: %" PRId64 " ops; cache hits %" PRIu64 ", misses %" PRIu64 ", fills %" PRIu64
            ", fills refused %" PRIu64 ", bypassed %" PRIu64 ", redis errors %" PRIu64
            ", degraded %.3f s\n",
            proc, head.nops, s.cache_hits, s.cache_misses, s.cache_fills, s.cache_fills_refused,
            s.cache_bypassed, s.redis_errors, (double)s.cache_degraded_us / 1e6);
    pl_close(l);

    char path[700];
    log_path(path, sizeof path, rc, proc);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 4;
    int bad = fwrite(&head, sizeof head, 1, f) != 1;
    for (int i = 0; i < NTHREADS && !bad; i++)
        bad = w[i].nops && fwrite(w[i].ops, sizeof(op), w[i].nops, f) != w[i].nops;
    bad |= fclose(f) != 0;
    for (int i = 0; i < NTHREADS; i++)
        free(w[i].ops);
    return bad ? 5 : failed ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* The checker                                                               */
/* ------------------------------------------------------------------------ */

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int by_value(const void *a, const void *b)
{
    return cmp_i64((*(const op *const *)a)->value, (*(const op *const *)b)->value);
}

static int by_end(const void *a, const void *b)
{
    return cmp_i64((*(const op *const *)a)->end_ns, (*(const op *const *)b)->end_ns);
}

static int by_start(const void *a, const void *b)
{
    return cmp_i64((*(const op *const *)a)->start_ns, (*(const op *const *)b)->start_ns);
}

typedef struct summary {
    long ops, reads, writes, reads_found, cached_reads;
    long violations;
    long read_inversions; /* informational: see check_key */
} summary;

#define REPORT(sum, ...)                      \
    do {                                      \
        if ((sum)->violations++ < 20)         \
            fprintf(stderr, __VA_ARGS__);     \
    } while (0)

/* Checks the operations on one key. */
static void check_key(int key, op *all, size_t n, summary *sum)
{
    size_t nw = 0, nr = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i].key == key && (all[i].rc == PL_OK || all[i].rc == PL_NOT_FOUND))
            all[i].write ? nw++ : nr++;
    op **w_by_value = calloc(nw + 1, sizeof *w_by_value);
    op **w_by_end = calloc(nw + 1, sizeof *w_by_end);
    op **reads = calloc(nr + 1, sizeof *reads);
    int64_t *max_tt = calloc(nw + 1, sizeof *max_tt);
    ck_assert(w_by_value && w_by_end && reads && max_tt);
    nw = nr = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i].key != key || (all[i].rc != PL_OK && all[i].rc != PL_NOT_FOUND))
            continue;
        if (all[i].write)
            w_by_value[nw] = w_by_end[nw] = &all[i], nw++;
        else
            reads[nr++] = &all[i];
    }
    qsort(w_by_value, nw, sizeof *w_by_value, by_value);
    qsort(w_by_end, nw, sizeof *w_by_end, by_end);
    for (size_t i = 0; i < nw; i++)
        max_tt[i] = i && max_tt[i - 1] > w_by_end[i]->tt ? max_tt[i - 1] : w_by_end[i]->tt;
    for (size_t i = 1; i < nw; i++)
        if (w_by_value[i]->value == w_by_value[i - 1]->value)
            REPORT(sum, "key %d: value %" PRId64 " written twice\n", key, w_by_value[i]->value);

    for (size_t i = 0; i < nr; i++) {
        op *r = reads[i];
        /* The newest write that finished before the read started. */
        size_t lo = 0, hi = nw;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (w_by_end[mid]->end_ns < r->start_ns)
                lo = mid + 1;
            else
                hi = mid;
        }
        int64_t floor_tt = lo ? max_tt[lo - 1] : INT64_MIN;
        if (r->rc == PL_NOT_FOUND) {
            if (lo)
                REPORT(sum,
                       "key %d: proc %d thread %d read not-found at [%" PRId64 ", %" PRId64
                       "] after %zu writes had finished\n",
                       key, r->proc, r->thread, r->start_ns, r->end_ns, lo);
            continue;
        }
        sum->reads_found++;
        sum->cached_reads += r->origin == PL_ORIGIN_CACHE;
        op probe = {.value = r->value}, *pp = &probe;
        op **hit = bsearch(&pp, w_by_value, nw, sizeof *w_by_value, by_value);
        if (!hit) {
            REPORT(sum, "key %d: proc %d thread %d read %" PRId64 ", which nobody wrote (origin %d)\n",
                   key, r->proc, r->thread, r->value, r->origin);
            continue;
        }
        op *w = *hit;
        if (w->tt != r->tt)
            REPORT(sum, "key %d: read %" PRId64 " with transaction time %" PRId64
                        ", written with %" PRId64 "\n",
                   key, r->value, r->tt, w->tt);
        if (w->start_ns > r->end_ns)
            REPORT(sum, "key %d: read %" PRId64 " ended before its write started\n", key,
                   r->value);
        if (r->tt < floor_tt)
            REPORT(sum,
                   "key %d: STALE: proc %d thread %d read %" PRId64 " (tt %" PRId64
                   ", origin %s) at [%" PRId64 ", %" PRId64 "], but a write with tt %" PRId64
                   " had finished before the read started\n",
                   key, r->proc, r->thread, r->value, r->tt,
                   r->origin == PL_ORIGIN_CACHE ? "cache" : "primary", r->start_ns, r->end_ns,
                   floor_tt);
    }

    /* Informational only (not promised by the header): a read that starts
     * after another read ended and returns an older value. That can happen
     * while a write is in flight (committed, not yet invalidated). */
    op **starts = calloc(nr + 1, sizeof *starts);
    ck_assert(starts != NULL);
    memcpy(starts, reads, nr * sizeof *reads);
    qsort(starts, nr, sizeof *starts, by_start);
    qsort(reads, nr, sizeof *reads, by_end);
    int64_t best = INT64_MIN;
    size_t j = 0;
    for (size_t i = 0; i < nr; i++) {
        op *r = starts[i];
        while (j < nr && reads[j]->end_ns < r->start_ns) {
            if (reads[j]->rc == PL_OK && reads[j]->tt > best)
                best = reads[j]->tt;
            j++;
        }
        if (r->rc == PL_OK ? r->tt < best : best != INT64_MIN)
            sum->read_inversions++;
    }
    free(starts);
    sum->reads += (long)nr;
    sum->writes += (long)nw;
    free(w_by_value);
    free(w_by_end);
    free(reads);
    free(max_tt);
}

static op *load_log(const run_cfg *rc, int proc, size_t *n, log_head *head)
{
    char path[700];
    log_path(path, sizeof path, rc, proc);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "no log %s", path);
    ck_assert_int_eq(fread(head, sizeof *head, 1, f), 1);
    ck_assert(head->nops >= 0);
    *n = (size_t)head->nops;
    op *ops = malloc((*n + 1) * sizeof *ops);
    ck_assert(ops != NULL);
    ck_assert_uint_eq(fread(ops, sizeof *ops, *n, f), *n);
    fclose(f);
    unlink(path);
    return ops;
}

/* ------------------------------------------------------------------------ */
/* The tests                                                                 */
/* ------------------------------------------------------------------------ */

static void run(int pause_redis)
{
    run_cfg rc;
    memset(&rc, 0, sizeof rc);
    pl_config cfg;
    tu_config(&cfg, 1);
    /* A schema of this test's own (tests share a process under CK_FORK=no). */
    snprintf(rc.schema, sizeof rc.schema, "%s_%d", cfg.schema, pause_redis);
    snprintf(rc.prefix, sizeof rc.prefix, "%s%d:", cfg.cache_key_prefix, pause_redis);
    cfg.schema = rc.schema;
    cfg.cache_key_prefix = rc.prefix;
    const char *dir = getenv("PL_TEST_DIR");
    snprintf(rc.logdir, sizeof rc.logdir, "%s", dir && *dir ? dir : "/tmp");
    pl_ledger *l = tu_open_cfg(&cfg); /* migrates the shared schema */
    pl_close(l);

    rc.start_ns = mono_ns() + 1500000000; /* children open their ledgers first */
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        fflush(NULL);
        pids[p] = fork();
        ck_assert_msg(pids[p] >= 0, "fork failed");
        if (pids[p] == 0)
            _exit(child_main(&rc, p + 1));
    }
    if (pause_redis) {
        sleep_until_ns(rc.start_ns + 4000000000LL);
        int st = tu_ctl("redis-pause 1");
        if (st != 0)
            fprintf(stderr, "ctl redis-pause 1 -> %d\n", st);
        ck_assert_int_eq(st, 0);
    }
    int child_failed = 0;
    for (int p = 0; p < NPROC; p++) {
        int status = 0;
        ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %d: status 0x%x\n", p + 1, status);
            child_failed = 1;
        }
    }

    op *all = NULL;
    size_t n = 0;
    uint64_t hits = 0;
    for (int p = 0; p < NPROC; p++) {
        size_t k;
        log_head head;
        op *ops = load_log(&rc, p + 1, &k, &head);
        all = realloc(all, (n + k + 1) * sizeof *all);
        ck_assert(all != NULL);
        memcpy(all + n, ops, k * sizeof *ops);
        n += k;
        hits += head.hits;
        free(ops);
    }
    summary sum;
    memset(&sum, 0, sizeof sum);
    sum.ops = (long)n;
    for (int key = 0; key < NKEYS; key++)
        check_key(key, all, n, &sum);
    free(all);
    fprintf(stderr,
            "linearizable%s: %ld operations (%ld reads, %ld writes), %ld reads found a value, "
            "%ld served from the cache (process stats: %" PRIu64 " hits), %ld violations, "
            "%ld read-after-read inversions (informational)\n",
            pause_redis ? " (Redis paused 1 s)" : "", sum.ops, sum.reads, sum.writes,
            sum.reads_found, sum.cached_reads, hits, sum.violations, sum.read_inversions);
    ck_assert_msg(!child_failed, "a child process failed (see its messages above)");
    ck_assert_msg(sum.violations == 0, "%ld violations of the cache guarantees (see above)",
                  sum.violations);
    ck_assert_msg(sum.ops > 1000, "only %ld operations: the test proves little", sum.ops);
    ck_assert_msg(sum.writes > 100, "only %ld writes", sum.writes);
    ck_assert_msg(hits > 0 && sum.cached_reads > 0, "no cache hits: the cache was not exercised");
}

START_TEST(test_linearizable)
{
    run(0);
}
END_TEST

START_TEST(test_linearizable_redis_paused)
{
    run(1);
    tu_ctl("redis-sigcont"); /* in case the pause was cut short */
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("cache_linearizable");
    TCase *tc = tu_tcase("linearizable", 180);
    tcase_add_test(tc, test_linearizable);
    tcase_add_test(tc, test_linearizable_redis_paused);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
