/* The linearizability proof of the cache (issue 3, guarantees 1 and 2):
 * reads through the cache must behave exactly like reads of the primary,
 * so that every history of writes and reads of one field is linearizable
 * in the ledger's own order.
 *
 * The workload: two processes (fork), each with one pl_ledger shared by
 * eight threads, two writers and six readers, on 3 hot keys (two fields of
 * one entity, one field of another), for RUN_SECONDS. Writers mostly call
 * pl_insert() and sometimes pl_insert_batch() (1 to 3 distinct hot keys);
 * readers mostly call pl_current() (cached), sometimes pl_current() with
 * PL_REALTIME (the primary, never the cache) or pl_snapshot() of the key's
 * entity at (now, now), taking the key's field from it. Every value
 * written is unique (process, thread, counter), so a read names the one
 * write it saw. Every operation is logged with its start and end
 * (CLOCK_MONOTONIC, one clock for every process of the machine), its
 * value, and the (transaction_time, id) of its record: the receipt's for a
 * write, the returned record's for a read ("not found" is older than every
 * record).
 *
 * The ledger's order of one key is (transaction_time, id); it orders the
 * writes, a write before the reads that return its record, and "not found"
 * before every write. Given that order, and a value per write, a history
 * of one key is linearizable exactly when it has no two operations that
 * real time orders one way (one returned before the other started) and the
 * ledger the other. The parent checks every such pair, per key, in
 * O(n log n) (operations sorted by end or start, prefix maxima, binary
 * search), in three classes:
 *  (1) write/write: a write that starts after another returned has a newer
 *      (tt, id) than it;
 *  (2) write/read: a read returns a value some write wrote, with that
 *      write's tt and id ("values nobody wrote" are counted on their own,
 *      also the value of a write that failed); not a write that started only
 *      after the read ended, nor anything newer than such a write; and at
 *      least as new as every write that returned before the read started
 *      (so "not found" only while no write had returned);
 *  (3) read/read: a read that starts after another read returned returns a
 *      record at least as new as that one; the violations where both reads
 *      ran on one thread are also counted on their own.
 * Batches and snapshots are judged per key: their atomicity across keys is
 * not checked here. The summary also says how many later reads of (3) came
 * from the cache (pl_result_origin; "not found" has no origin).
 *
 * A write whose outcome is unknown (PL_EUNKNOWN) may have landed: its value
 * may be read, and the first read of it tells its place in the ledger's
 * order; it never returned, so it precedes nothing in real time (one that
 * nobody read is left out). A write that failed otherwise landed nothing
 * and is left out (reading its value is a value nobody wrote). Writes may
 * fail only in the disturbed run, and are logged there (the header promises
 * that a Redis failure never fails a write); reads must never fail.
 *
 * The second test does the same for DISTURBED_RUN_SECONDS while Redis is
 * disturbed, spaced over the run: stalled (SIGSTOP) for one second at 2 s,
 * flushed at 11 s (FLUSHALL over a plain socket: this suite links the
 * public library only, not hiredis), restarted at 20 s. Each turns the
 * cache off for its recovery window (README: under 15 s; about 6 s with
 * this lease), so each disturbance comes when it is on again; a line of
 * reads served by the cache per second shows whether it was, and the test
 * requires cache hits after each of them.
 *
 * Public API only.
 *
 * SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

enum {
    NPROC = 2,
    NWRITERS = 2,
    NREADERS = 6,
    NTHREADS = NWRITERS + NREADERS,
    NKEYS = 3,
    BATCH_PERCENT = 20,     /* writes made with pl_insert_batch */
    REALTIME_PERCENT = 10,  /* reads: pl_current with PL_REALTIME */
    SNAPSHOT_PERCENT = 10,  /* reads: pl_snapshot */
    WRITER_PAUSE_US = 2000, /* a writer pauses 0..this between writes */
    MAX_REPORTS = 6,        /* examples printed per violation class */
    MIN_OPS = 10000,
    MIN_WRITES = 300,
};

#define RUN_SECONDS 12
/* The disturbed run is longer: a stall turns the cache off for at least
 * 10 s (max(4 x lease, 10 s), see pl_config.cache_lease_ms), and the flush
 * and the restart should find it on again. */
#define DISTURBED_RUN_SECONDS 30
#define NS_PER_S INT64_C(1000000000)
#define NOT_FOUND_VALUE INT64_C(-1)
#define GARBAGE_VALUE INT64_MIN /* a read of something that is no value of ours */
#define ORIGIN_UNKNOWN 255 /* "not found" has no result to ask pl_result_origin */

/* The hot keys: two fields of one entity (its snapshots and batches see
 * both), one field of another. */
static const char *const key_entity[NKEYS] = {"hot-0", "hot-0", "h\xc3\xb6t 1"};
static const char *const key_field[NKEYS] = {"f", "g", "f"};

enum op_kind { OP_INSERT, OP_BATCH, OP_CURRENT, OP_REALTIME, OP_SNAPSHOT };
static const char *const kind_name[] = {"pl_insert", "pl_insert_batch", "pl_current",
                                        "pl_current(REALTIME)", "pl_snapshot"};

/* One operation on one key (a batch logs one per change). */
typedef struct op {
    int64_t start_ns, end_ns;
    int64_t value;  /* written or read; NOT_FOUND_VALUE, GARBAGE_VALUE */
    int64_t tt, id; /* the receipt's, or the read record's */
    int32_t rc;     /* the call's status (PL_NOT_FOUND also for a snapshot
                       without the key's field) */
    uint8_t kind;   /* enum op_kind */
    uint8_t key;
    uint8_t origin; /* reads: pl_result_origin */
    uint8_t proc, thread;
} op;

#define IS_WRITE(o) ((o)->kind == OP_INSERT || (o)->kind == OP_BATCH)

typedef struct log_head {
    uint64_t hits, misses, fills, refused, bypassed, redis_errors, degraded_us;
    int64_t nops;
} log_head;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
    for (;;) {
        int64_t left = t - mono_ns();
        if (left <= 0)
            return;
        struct timespec ts = {(time_t)(left / NS_PER_S), (long)(left % NS_PER_S)};
        nanosleep(&ts, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* The children                                                              */
/* ------------------------------------------------------------------------ */

typedef struct worker {
    pl_ledger *l;
    int proc, thread;
    int64_t start_ns, end_ns;
    op *ops;
    size_t nops, cap;
    int64_t counter;
    uint64_t seed;
    int oom;
    int errors;
} worker;

/* Room for n more operations. */
static int reserve(worker *w, size_t n)
{
    if (w->nops + n <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap * 2 : 8192;
    op *ops = realloc(w->ops, cap * sizeof *ops);
    if (!ops) {
        w->oom = 1;
        return -1;
    }
    w->ops = ops;
    w->cap = cap;
    return 0;
}

static op *new_op(worker *w, int kind, int key)
{
    op *o = &w->ops[w->nops++];
    memset(o, 0, sizeof *o);
    o->kind = (uint8_t)kind;
    o->key = (uint8_t)key;
    o->proc = (uint8_t)w->proc;
    o->thread = (uint8_t)w->thread;
    return o;
}

static void note_error(worker *w, int kind, int rc)
{
    if (w->errors++ < 5)
        fprintf(stderr, "proc %d thread %d: %s -> %d (%s): %s\n", w->proc, w->thread,
                kind_name[kind], rc, pl_strerror(rc), pl_errmsg());
}

static void do_write(worker *w)
{
    int keys[NKEYS] = {0, 1, 2};
    int batch = tu_rand64(&w->seed) % 100 < BATCH_PERCENT;
    int n = batch ? 1 + (int)(tu_rand64(&w->seed) % NKEYS) : 1;
    for (int i = NKEYS - 1; i > 0; i--) { /* a random choice of n distinct keys */
        int j = (int)(tu_rand64(&w->seed) % (uint64_t)(i + 1)), t = keys[i];
        keys[i] = keys[j];
        keys[j] = t;
    }
    if (reserve(w, (size_t)n) < 0)
        return;
    size_t first = w->nops;
    char text[NKEYS][32];
    pl_change c[NKEYS];
    pl_receipt rec[NKEYS];
    memset(rec, 0, sizeof rec);
    for (int i = 0; i < n; i++) {
        op *o = new_op(w, batch ? OP_BATCH : OP_INSERT, keys[i]);
        /* Unique over the run: process, thread, counter. */
        o->value = ((int64_t)w->proc * 100 + w->thread) * NS_PER_S + ++w->counter;
        snprintf(text[i], sizeof text[i], "%" PRId64, o->value);
        pl_change ch = PL_CHANGE_INIT;
        ch.entity_id = key_entity[keys[i]];
        ch.field_name = key_field[keys[i]];
        ch.new_value = text[i];
        ch.source_type = "linearizable";
        c[i] = ch;
    }
    int64_t start = mono_ns();
    int rc = batch ? pl_insert_batch(rec, w->l, c, (size_t)n) : pl_insert(&rec[0], w->l, &c[0]);
    int64_t end = mono_ns();
    for (int i = 0; i < n; i++) {
        op *o = &w->ops[first + (size_t)i];
        o->start_ns = start;
        o->end_ns = end;
        o->rc = rc;
        if (rc == PL_OK) {
            o->tt = rec[i].transaction_time;
            o->id = rec[i].id;
        }
    }
    if (rc != PL_OK)
        note_error(w, batch ? OP_BATCH : OP_INSERT, rc);
}

static int64_t parse_value(const pl_record *rec, int key)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(rec->new_value, &end, 10);
    if (errno || end == rec->new_value || *end || v <= 0 ||
        strcmp(rec->entity_id, key_entity[key]) != 0 ||
        strcmp(rec->field_name, key_field[key]) != 0)
        return GARBAGE_VALUE;
    return (int64_t)v;
}

static void do_read(worker *w)
{
    if (reserve(w, 1) < 0)
        return;
    int key = (int)(tu_rand64(&w->seed) % NKEYS);
    int p = (int)(tu_rand64(&w->seed) % 100);
    int kind = p < REALTIME_PERCENT                      ? OP_REALTIME
               : p < REALTIME_PERCENT + SNAPSHOT_PERCENT ? OP_SNAPSHOT
                                                         : OP_CURRENT;
    op *o = new_op(w, kind, key);
    pl_result *r = NULL;
    o->start_ns = mono_ns();
    if (kind == OP_SNAPSHOT)
        o->rc = pl_snapshot(&r, w->l, key_entity[key], PL_TIME_NOW, PL_TIME_NOW, 0);
    else
        o->rc = pl_current(&r, w->l, key_entity[key], key_field[key],
                           kind == OP_REALTIME ? PL_REALTIME : 0);
    o->end_ns = mono_ns();
    o->value = NOT_FOUND_VALUE;
    if (o->rc == PL_OK) {
        const pl_record *rec = NULL;
        size_t n = pl_result_count(r);
        if (kind == OP_SNAPSHOT) {
            for (size_t i = 0; i < n && !rec; i++) {
                const pl_record *x = pl_result_get(r, i);
                if (x && strcmp(x->field_name, key_field[key]) == 0)
                    rec = x;
            }
            if (!rec)
                o->rc = PL_NOT_FOUND; /* the entity has no such field yet */
        } else {
            rec = n == 1 ? pl_result_get(r, 0) : NULL;
            if (!rec)
                o->value = GARBAGE_VALUE;
        }
        if (rec) {
            o->value = parse_value(rec, key);
            o->tt = rec->transaction_time;
            o->id = rec->id;
        }
        o->origin = (uint8_t)pl_result_origin(r);
    } else if (o->rc == PL_NOT_FOUND) {
        o->origin = ORIGIN_UNKNOWN;
    } else {
        note_error(w, kind, o->rc);
    }
    pl_result_free(r);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    w->seed = (uint64_t)w->proc * 7919 + (uint64_t)w->thread * 104729 + (uint64_t)time(NULL);
    sleep_until_ns(w->start_ns);
    while (!w->oom && mono_ns() < w->end_ns) {
        if (w->thread < NWRITERS) {
            do_write(w);
            int64_t pause = (int64_t)(tu_rand64(&w->seed) % WRITER_PAUSE_US) * 1000;
            struct timespec ts = {0, (long)pause};
            nanosleep(&ts, NULL);
        } else {
            do_read(w);
        }
    }
    return NULL;
}

typedef struct run_cfg {
    char schema[64];
    char prefix[128];
    char logdir[512];
    int64_t start_ns, end_ns;
} run_cfg;

static void log_path(char *out, size_t size, const run_cfg *rc, int proc)
{
    snprintf(out, size, "%s/linearizable-%s-%d.log", rc->logdir, rc->schema, proc);
}

/* The child's whole life. Failed calls are in the log for the parent to
 * judge; the exit status says whether the child could do its part. */
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
        w[i].end_ns = rc->end_ns;
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
            return 3;
    }
    int oom = 0;
    log_head head;
    memset(&head, 0, sizeof head);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        oom |= w[i].oom;
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
    head.degraded_us = s.cache_degraded_us;
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
    return bad ? 5 : oom ? 6 : 0;
}

/* ------------------------------------------------------------------------ */
/* The checker                                                               */
/* ------------------------------------------------------------------------ */

/* A place in the ledger's order of one key; "not found" is before all. */
typedef struct pos {
    int64_t tt, id;
} pos;

static const pos POS_NONE = {INT64_MIN, INT64_MIN};

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int pos_cmp(pos a, pos b)
{
    return a.tt != b.tt ? cmp_i64(a.tt, b.tt) : cmp_i64(a.id, b.id);
}

enum { WS_OK, WS_UNKNOWN, WS_FAILED };

/* A write of one key as the checker sees it. */
typedef struct wr {
    const op *o;
    int64_t start, end; /* end INT64_MAX: never returned (outcome unknown) */
    pos p;
    int status;         /* WS_OK, WS_UNKNOWN, WS_FAILED */
    int placed;         /* p is known: returned, or read by someone */
} wr;

/* A read of one key. */
typedef struct rd {
    const op *o;
    pos p;
} rd;

typedef struct summary {
    long ops, writes, batch_writes, writes_failed, writes_unknown;
    long reads, reads_current, reads_realtime, reads_snapshot, reads_cached, reads_not_found,
        reads_failed;
    long ww;       /* (1) writes ordered against real time */
    long wr;       /* (2) reads, each counted once over the classes below */
    long wr_stale, wr_not_found, wr_future, wr_newer, wr_mismatch;
    long rr, rr_thread;            /* (3), and within one thread */
    long rr_cached, rr_not_found;  /* (3): the later read from the cache, not found */
    long nobody;   /* values nobody wrote */
    long dup_values;
} summary;

static int64_t t_base; /* the run's start, for printing */

static const char *origin_name(const op *o)
{
    if (IS_WRITE(o))
        return "write";
    switch (o->origin) {
    case PL_ORIGIN_CACHE: return "cache";
    case PL_ORIGIN_PRIMARY: return "primary";
    case ORIGIN_UNKNOWN: return "origin unknown";
    default: return "other";
    }
}

static void fmt_op(char *buf, size_t size, const op *o)
{
    snprintf(buf, size,
             "[proc %d thread %d %s (%s) key %d value %" PRId64 " tt %" PRId64 " id %" PRId64
             " rc %d at %.6f..%.6f s]",
             o->proc, o->thread, kind_name[o->kind], origin_name(o), o->key, o->value, o->tt,
             o->id, (int)o->rc, (double)(o->start_ns - t_base) / 1e9,
             (double)(o->end_ns - t_base) / 1e9);
}

/* Prints the first MAX_REPORTS examples of a class: what, the operation,
 * and the one it conflicts with (if any). */
static void report(long count, const char *what, const op *a, const op *b)
{
    if (count > MAX_REPORTS)
        return;
    char sa[320], sb[320] = "";
    fmt_op(sa, sizeof sa, a);
    if (b)
        fmt_op(sb, sizeof sb, b);
    fprintf(stderr, "VIOLATION %s: %s%s%s\n", what, sa, b ? " against " : "", sb);
}

static int wr_by_value(const void *a, const void *b)
{
    return cmp_i64(((const wr *)a)->o->value, ((const wr *)b)->o->value);
}

static int wr_by_end(const void *a, const void *b)
{
    return cmp_i64(((const wr *)a)->end, ((const wr *)b)->end);
}

static int wr_by_start(const void *a, const void *b)
{
    return cmp_i64(((const wr *)a)->start, ((const wr *)b)->start);
}

static int wr_by_pos(const void *a, const void *b)
{
    return pos_cmp(((const wr *)a)->p, ((const wr *)b)->p);
}

static int rd_by_end(const void *a, const void *b)
{
    return cmp_i64(((const rd *)a)->o->end_ns, ((const rd *)b)->o->end_ns);
}

static int rd_by_thread(const void *a, const void *b)
{
    const op *x = ((const rd *)a)->o, *y = ((const rd *)b)->o;
    if (x->proc != y->proc)
        return x->proc - y->proc;
    if (x->thread != y->thread)
        return x->thread - y->thread;
    return cmp_i64(x->start_ns, y->start_ns);
}

/* How many of the n writes (sorted by end) ended before t. */
static size_t writes_ended_before(const wr *w, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w[mid].end < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* How many of the n writes (sorted by start) started at or before t. */
static size_t writes_started_by(const wr *w, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w[mid].start <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t reads_ended_before(const rd *r, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].o->end_ns < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Checks every operation of one key. */
static void check_key(int key, const op *all, size_t n, summary *sum)
{
    size_t nw = 0, nr = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i].key == key)
            IS_WRITE(&all[i]) ? nw++ : nr++;
    wr *cand = calloc(nw + 1, sizeof *cand); /* every write, by value */
    wr *w = calloc(nw + 1, sizeof *w);       /* the placed ones */
    wr *ws = calloc(nw + 1, sizeof *ws);     /* the placed ones, by start */
    size_t *wmax = calloc(nw + 1, sizeof *wmax), *wmin = calloc(nw + 1, sizeof *wmin);
    rd *r = calloc(nr + 1, sizeof *r);
    size_t *rmax = calloc(nr + 1, sizeof *rmax);
    ck_assert(cand && w && ws && wmax && wmin && r && rmax);

    size_t nc = 0;
    nr = 0;
    for (size_t i = 0; i < n; i++) {
        const op *o = &all[i];
        if (o->key != key)
            continue;
        if (IS_WRITE(o)) {
            wr *x = &cand[nc++];
            x->o = o;
            x->start = o->start_ns;
            x->end = o->end_ns;
            x->status = o->rc == PL_OK ? WS_OK : o->rc == PL_EUNKNOWN ? WS_UNKNOWN : WS_FAILED;
            x->placed = x->status == WS_OK;
            x->p = (pos){o->tt, o->id};
            if (x->status == WS_UNKNOWN)
                x->end = INT64_MAX;
            sum->writes += x->status == WS_OK;
            sum->batch_writes += x->status == WS_OK && o->kind == OP_BATCH;
            sum->writes_unknown += x->status == WS_UNKNOWN;
            sum->writes_failed += x->status == WS_FAILED;
        } else {
            sum->reads_current += o->kind == OP_CURRENT;
            sum->reads_realtime += o->kind == OP_REALTIME;
            sum->reads_snapshot += o->kind == OP_SNAPSHOT;
            if (o->rc != PL_OK && o->rc != PL_NOT_FOUND) {
                sum->reads_failed++;
                continue;
            }
            sum->reads++;
            sum->reads_cached += o->rc == PL_OK && o->origin == PL_ORIGIN_CACHE;
            sum->reads_not_found += o->rc == PL_NOT_FOUND;
            r[nr].o = o;
            r[nr].p = o->rc == PL_OK ? (pos){o->tt, o->id} : POS_NONE;
            nr++;
        }
    }
    qsort(cand, nc, sizeof *cand, wr_by_value);
    for (size_t i = 1; i < nc; i++)
        if (cand[i].o->value == cand[i - 1].o->value && sum->dup_values++ < MAX_REPORTS)
            fprintf(stderr, "TEST BUG: value %" PRId64 " written twice\n", cand[i].o->value);

    /* (2), first part: every value read was written, by a write that had
     * started, with its (tt, id). Places the unknown writes that were read. */
    char *bad = calloc(nr + 1, 1); /* reads already counted under (2) */
    ck_assert(bad != NULL);
    for (size_t i = 0; i < nr; i++) {
        const op *o = r[i].o;
        if (o->rc != PL_OK)
            continue;
        wr probe = {.o = o};
        wr *x = o->value == GARBAGE_VALUE ? NULL
                                          : bsearch(&probe, cand, nc, sizeof *cand, wr_by_value);
        if (!x || x->status == WS_FAILED) {
            ++sum->nobody;
            report(sum->nobody, x ? "value of a failed write read" : "value nobody wrote read", o,
                   x ? x->o : NULL);
            continue;
        }
        if (x->status == WS_UNKNOWN && !x->placed) {
            x->placed = 1;
            x->p = r[i].p;
        }
        if (pos_cmp(x->p, r[i].p) != 0) {
            bad[i] = 1;
            report(++sum->wr_mismatch, "write/read: record differs from its write's", o, x->o);
        }
        if (x->start > o->end_ns) {
            bad[i] = 1;
            report(++sum->wr_future, "write/read: read a write that started after it ended", o,
                   x->o);
        }
    }

    /* The placed writes, by end, with prefix maxima of their places. */
    size_t np = 0;
    for (size_t i = 0; i < nc; i++)
        if (cand[i].placed)
            w[np++] = cand[i];
    qsort(w, np, sizeof *w, wr_by_end);
    for (size_t i = 0; i < np; i++)
        wmax[i] = i && pos_cmp(w[wmax[i - 1]].p, w[i].p) > 0 ? wmax[i - 1] : i;

    /* (1) write/write. */
    for (size_t i = 0; i < np; i++) {
        size_t k = writes_ended_before(w, np, w[i].start);
        if (k && pos_cmp(w[wmax[k - 1]].p, w[i].p) >= 0)
            report(++sum->ww, "write/write: not newer than a write that returned before it started",
                   w[i].o, w[wmax[k - 1]].o);
    }
    memcpy(ws, w, np * sizeof *w);
    qsort(ws, np, sizeof *ws, wr_by_pos);
    for (size_t i = 1; i < np; i++)
        if (pos_cmp(ws[i].p, ws[i - 1].p) == 0)
            report(++sum->ww, "write/write: two writes with one (tt, id)", ws[i].o, ws[i - 1].o);

    /* (2), second part: no older than what returned before the read started,
     * no newer than what started after it ended. */
    qsort(ws, np, sizeof *ws, wr_by_start);
    for (size_t i = np; i-- > 0;)
        wmin[i] = i + 1 < np && pos_cmp(ws[wmin[i + 1]].p, ws[i].p) < 0 ? wmin[i + 1] : i;
    for (size_t i = 0; i < nr; i++) {
        const op *o = r[i].o;
        size_t k = writes_ended_before(w, np, o->start_ns);
        if (k && pos_cmp(w[wmax[k - 1]].p, r[i].p) > 0) {
            bad[i] = 1;
            if (o->rc == PL_NOT_FOUND)
                report(++sum->wr_not_found, "write/read: not found after a write returned", o,
                       w[wmax[k - 1]].o);
            else
                report(++sum->wr_stale, "write/read: older than a write that returned before it",
                       o, w[wmax[k - 1]].o);
        }
        size_t j = writes_started_by(ws, np, o->end_ns);
        if (j < np && pos_cmp(ws[wmin[j]].p, r[i].p) < 0) {
            bad[i] = 1;
            report(++sum->wr_newer, "write/read: newer than a write that started after it ended",
                   o, ws[wmin[j]].o);
        }
    }
    for (size_t i = 0; i < nr; i++)
        sum->wr += bad[i];

    /* (3) read/read, across all threads ... */
    qsort(r, nr, sizeof *r, rd_by_end);
    for (size_t i = 0; i < nr; i++)
        rmax[i] = i && pos_cmp(r[rmax[i - 1]].p, r[i].p) > 0 ? rmax[i - 1] : i;
    for (size_t i = 0; i < nr; i++) {
        size_t k = reads_ended_before(r, nr, r[i].o->start_ns);
        if (k && pos_cmp(r[rmax[k - 1]].p, r[i].p) > 0) {
            sum->rr++;
            if (r[i].o->rc == PL_OK && r[i].o->origin == PL_ORIGIN_CACHE)
                report(++sum->rr_cached, "read/read: older than a read that returned before it "
                       "started", r[i].o, r[rmax[k - 1]].o);
            else if (r[i].o->rc == PL_NOT_FOUND)
                report(++sum->rr_not_found, "read/read: not found after a read that found",
                       r[i].o, r[rmax[k - 1]].o);
            else
                report(sum->rr - sum->rr_cached - sum->rr_not_found,
                       "read/read: older than a read that returned before it started (not from "
                       "the cache)", r[i].o, r[rmax[k - 1]].o);
        }
    }
    /* ... and within one thread (program order is real-time order). */
    qsort(r, nr, sizeof *r, rd_by_thread);
    for (size_t i = 0, best = 0; i < nr; i++) {
        int same = i && r[i].o->proc == r[i - 1].o->proc && r[i].o->thread == r[i - 1].o->thread;
        if (!same)
            best = i;
        else if (pos_cmp(r[best].p, r[i].p) > 0)
            report(++sum->rr_thread, "read/read within one thread", r[i].o, r[best].o);
        else
            best = i;
    }

    free(bad);
    free(cand);
    free(w);
    free(ws);
    free(wmax);
    free(wmin);
    free(r);
    free(rmax);
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

/* Reads served by the cache that started in [from_s, to_s) of the run. */
static long cached_between(const op *all, size_t n, int from_s, int to_s)
{
    long k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t t = all[i].start_ns - t_base;
        k += !IS_WRITE(&all[i]) && all[i].rc == PL_OK && all[i].origin == PL_ORIGIN_CACHE &&
             t >= (int64_t)from_s * NS_PER_S && t < (int64_t)to_s * NS_PER_S;
    }
    return k;
}

/* Per second of the run: reads started, of them served by the cache, and
 * writes started (informational: shows when the cache was on). */
static void print_timeline(const op *all, size_t n, int seconds)
{
    enum { MAX_SECONDS = 64 };
    long reads[MAX_SECONDS] = {0}, cached[MAX_SECONDS] = {0}, writes[MAX_SECONDS] = {0};
    int64_t wr_ns = 0, rd_ns = 0;
    long nwr = 0, nrd = 0;
    for (size_t i = 0; i < n; i++) {
        if (IS_WRITE(&all[i]))
            wr_ns += all[i].end_ns - all[i].start_ns, nwr++;
        else
            rd_ns += all[i].end_ns - all[i].start_ns, nrd++;
        int64_t s = (all[i].start_ns - t_base) / NS_PER_S;
        if (s < 0 || s >= seconds || s >= MAX_SECONDS)
            continue;
        if (IS_WRITE(&all[i]))
            writes[s]++;
        else
            reads[s]++, cached[s] += all[i].rc == PL_OK && all[i].origin == PL_ORIGIN_CACHE;
    }
    char line[4096];
    size_t len = 0;
    for (int s = 0; s < seconds && s < MAX_SECONDS && len < sizeof line; s++)
        len += (size_t)snprintf(line + len, sizeof line - len, " %d:%ld/%ld/%ld", s, reads[s],
                                cached[s], writes[s]);
    fprintf(stderr, "linearizable: per second, reads/from the cache/writes:%s\n", line);
    fprintf(stderr, "linearizable: mean latency: writes %.3f ms, reads %.3f ms\n",
            nwr ? (double)wr_ns / (double)nwr / 1e6 : 0.0,
            nrd ? (double)rd_ns / (double)nrd / 1e6 : 0.0);
}

/* ------------------------------------------------------------------------ */
/* Disturbing Redis                                                          */
/* ------------------------------------------------------------------------ */

/* FLUSHALL on PL_TEST_REDIS_PORT, in RESP over a plain socket; 0 on +OK. */
static int redis_flushall(void)
{
    const char *port = getenv("PL_TEST_REDIS_PORT");
    if (!port || !*port)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char cmd[] = "*1\r\n$8\r\nFLUSHALL\r\n";
    char reply[64];
    size_t got = 0;
    int st = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        write(fd, cmd, sizeof cmd - 1) == (ssize_t)(sizeof cmd - 1)) {
        while (got < sizeof reply - 1 && !memchr(reply, '\n', got)) {
            ssize_t k = read(fd, reply + got, sizeof reply - 1 - got);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        reply[got] = '\0';
        st = strncmp(reply, "+OK", 3) == 0 ? 0 : -1;
        if (st)
            fprintf(stderr, "FLUSHALL -> %s\n", reply);
    }
    close(fd);
    return st;
}

/* ------------------------------------------------------------------------ */
/* The tests                                                                 */
/* ------------------------------------------------------------------------ */

static void run(int disturb)
{
    run_cfg rc;
    memset(&rc, 0, sizeof rc);
    pl_config cfg;
    tu_config(&cfg, 1);
    /* A schema of this test's own (tests share a process under CK_FORK=no). */
    snprintf(rc.schema, sizeof rc.schema, "%s_%d", cfg.schema, disturb);
    snprintf(rc.prefix, sizeof rc.prefix, "%s%d:", cfg.cache_key_prefix, disturb);
    cfg.schema = rc.schema;
    cfg.cache_key_prefix = rc.prefix;
    const char *dir = getenv("PL_TEST_DIR");
    snprintf(rc.logdir, sizeof rc.logdir, "%s", dir && *dir ? dir : "/tmp");
    pl_ledger *l = tu_open_cfg(&cfg); /* migrates the shared schema */
    pl_close(l);

    rc.start_ns = mono_ns() + 1500000000; /* children open their ledgers first */
    rc.end_ns = rc.start_ns + (disturb ? DISTURBED_RUN_SECONDS : RUN_SECONDS) * NS_PER_S;
    t_base = rc.start_ns;
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        fflush(NULL);
        pids[p] = fork();
        ck_assert_msg(pids[p] >= 0, "fork failed");
        if (pids[p] == 0)
            _exit(child_main(&rc, p + 1));
    }
    /* Disturbances, spaced over the run; judged once the children are back. */
    int ctl_failed = 0;
    if (disturb) {
        sleep_until_ns(rc.start_ns + 2 * NS_PER_S);
        int st = tu_ctl("redis-pause 1");
        fprintf(stderr, "2.000..%.3f s: Redis stalled 1 s (SIGSTOP) -> %d\n",
                (double)(mono_ns() - t_base) / 1e9, st);
        ctl_failed |= st != 0;
        sleep_until_ns(rc.start_ns + 11 * NS_PER_S);
        st = redis_flushall();
        fprintf(stderr, "%.3f s: FLUSHALL -> %d\n", (double)(mono_ns() - t_base) / 1e9, st);
        ctl_failed |= st != 0;
        sleep_until_ns(rc.start_ns + 20 * NS_PER_S);
        st = tu_ctl("redis-restart");
        fprintf(stderr, "17.000..%.3f s: Redis restarted -> %d\n",
                (double)(mono_ns() - t_base) / 1e9, st);
        ctl_failed |= st != 0;
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
    ck_assert_msg(!child_failed, "a child process failed (see its messages above)");

    op *all = NULL;
    size_t n = 0;
    log_head tot;
    memset(&tot, 0, sizeof tot);
    for (int p = 0; p < NPROC; p++) {
        size_t k;
        log_head head;
        op *ops = load_log(&rc, p + 1, &k, &head);
        all = realloc(all, (n + k + 1) * sizeof *all);
        ck_assert(all != NULL);
        memcpy(all + n, ops, k * sizeof *ops);
        n += k;
        tot.hits += head.hits;
        tot.misses += head.misses;
        tot.fills += head.fills;
        tot.refused += head.refused;
        tot.bypassed += head.bypassed;
        tot.redis_errors += head.redis_errors;
        tot.degraded_us += head.degraded_us;
        free(ops);
    }
    print_timeline(all, n, (int)((rc.end_ns - rc.start_ns) / NS_PER_S));
    summary sum;
    memset(&sum, 0, sizeof sum);
    sum.ops = (long)n;
    for (int key = 0; key < NKEYS; key++)
        check_key(key, all, n, &sum);
    long after_stall = cached_between(all, n, 3, 11);
    long after_flush = cached_between(all, n, 11, 20);
    long after_restart = cached_between(all, n, 20, DISTURBED_RUN_SECONDS);
    free(all);

    const char *mode = disturb ? "redis disturbed" : "undisturbed";
    fprintf(stderr,
            "linearizable (%s): cache: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
            " fills, %" PRIu64 " refused, %" PRIu64 " bypassed, %" PRIu64
            " Redis errors, degraded %.3f s\n",
            mode, tot.hits, tot.misses, tot.fills, tot.refused, tot.bypassed, tot.redis_errors,
            (double)tot.degraded_us / 1e6);
    fprintf(stderr,
            "linearizable (%s): %ld ops: %ld writes (%ld in batches; %ld failed, %ld unknown), "
            "%ld reads (%ld current, %ld realtime, %ld snapshot; %ld from the cache, %ld not "
            "found; %ld failed)\n",
            mode, sum.ops, sum.writes, sum.batch_writes, sum.writes_failed, sum.writes_unknown,
            sum.reads, sum.reads_current, sum.reads_realtime, sum.reads_snapshot,
            sum.reads_cached, sum.reads_not_found, sum.reads_failed);
    fprintf(stderr,
            "linearizable (%s): VIOLATIONS write/write %ld, write/read %ld (stale %ld, not "
            "found %ld, from the future %ld, newer than a later write %ld, record mismatch "
            "%ld), read/read %ld (within one thread %ld; the later read served by the cache %ld, "
            "not found %ld), values nobody wrote %ld\n",
            mode, sum.ww, sum.wr, sum.wr_stale, sum.wr_not_found, sum.wr_future, sum.wr_newer,
            sum.wr_mismatch, sum.rr, sum.rr_thread, sum.rr_cached, sum.rr_not_found, sum.nobody);

    ck_assert_msg(!ctl_failed, "could not disturb Redis as planned (see above)");
    ck_assert_msg(sum.dup_values == 0, "a value was written twice: the test is broken");
    ck_assert_msg(sum.reads_failed == 0, "%ld reads failed (see the children's messages)",
                  sum.reads_failed);
    ck_assert_msg(disturb || sum.writes_failed + sum.writes_unknown == 0,
                  "%ld writes failed while nothing was disturbed",
                  sum.writes_failed + sum.writes_unknown);
    long violations = sum.ww + sum.wr + sum.rr + sum.rr_thread + sum.nobody;
    ck_assert_msg(violations == 0,
                  "not linearizable: write/write %ld, write/read %ld, read/read %ld (within one "
                  "thread %ld), values nobody wrote %ld",
                  sum.ww, sum.wr, sum.rr, sum.rr_thread, sum.nobody);
    ck_assert_msg(sum.ops >= MIN_OPS, "only %ld operations: the test proves little", sum.ops);
    ck_assert_msg(sum.writes >= MIN_WRITES, "only %ld writes", sum.writes);
    ck_assert_msg(tot.hits > 0 && sum.reads_cached > 0,
                  "no cache hits: the cache was not exercised");
    if (disturb) {
        /* The cache came back after each disturbance (README: within 15 s;
         * here the windows are about 6 s) and was exercised again. */
        fprintf(stderr, "linearizable: cache reads after the stall %ld, the flush %ld, the restart %ld\n",
                after_stall, after_flush, after_restart);
        ck_assert_msg(after_stall > 0 && after_flush > 0 && after_restart > 0,
                      "the cache did not come back after every disturbance (%ld, %ld, %ld)",
                      after_stall, after_flush, after_restart);
    }
}

START_TEST(test_linearizable)
{
    run(0);
}
END_TEST

START_TEST(test_linearizable_redis_disturbed)
{
    run(1);
    tu_ctl("redis-sigcont"); /* in case the stall was cut short */
    tu_ctl("redis-start");   /* in case the restart was */
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("cache_linearizable");
    TCase *tc = tu_tcase("linearizable", 180);
    tcase_add_test(tc, test_linearizable);
    tcase_add_test(tc, test_linearizable_redis_disturbed);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
