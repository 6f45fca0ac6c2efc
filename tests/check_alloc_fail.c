/* Allocation failure is an error, never a crash (issue 12, part 1).
 *
 * A scripted session of the public API (open, migrate, inserts, a batch,
 * every read twice so that the second one is answered by the cache,
 * paging, an iterator, health, stats, seal, prove, verify, close) runs
 * once counting the allocations of the whole process (tests/alloc_fail.c:
 * ours, libpq's, hiredis's, jansson's, libcrypto's, libc's). Then, for
 * each allocation number N, a fresh child process runs the same session
 * with exactly allocation N failing, and is judged:
 *   - it ends by exiting, never by a signal (a crash, or a hang that the
 *     child's alarm ends);
 *   - every call either returns a negative error or succeeds with the
 *     right answer (a read checks its records; a write is counted in SQL
 *     at the end): no false success, no wrong answer;
 *   - a call that failed succeeds when run again (with nothing failing
 *     any more): the handle stays usable;
 *   - a batch is all or nothing: after it, SQL holds all of its rows or
 *     none, whatever it returned;
 *   - a call that fails without the injected failure having happened
 *     means an earlier one broke the handle: that fails the test too;
 *   - under ASan, LeakSanitizer checks the child before it exits, so a
 *     leak on any error path fails it (the valgrind run of ./dev.sh test
 *     checks leaks the same way, for the children it sees).
 * Allocations made on other threads count too (their failure must not
 * break anything either); a child whose allocation N fired in such a
 * thread is judged by the same rules.
 *
 * PL_ALLOC_FAIL_STRIDE=K tries every K-th allocation only (default 1:
 * every one; under ASan and valgrind the default is a stride that keeps
 * the run within minutes, printed with the figures). */
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <execinfo.h>

#include "alloc_fail.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define UNDER_ASAN 1
/* Leaks inside hiredis 0.14 (an sds of its own on its out-of-memory
 * paths) and inside libcrypto (its own error paths) are theirs, not ours
 * to free: README "Tests" lists them. Ours still fail the child. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:sdsnewlen\nleak:CRYPTO_zalloc\nleak:CRYPTO_strndup\nleak:CRYPTO_malloc\n";
}
#else
#define UNDER_ASAN 0
#endif

/* An Ed25519 key for sealing, made for this test only. */
static const char test_key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                   "MC4CAQAwBQYDK2VwBCIEIASDzwwCXbyC1OwCSpzzjjKUtpkSuFNqGOZ+cpGryDba\n"
                                   "-----END PRIVATE KEY-----\n";

#define BATCH_N 5

/* What a child tells the parent, in memory shared with it. */
typedef struct child_report {
    long allocations;    /* counted in the whole session */
    int fired;           /* allocation N failed */
    int step;            /* the step during which it failed, -1: none seen */
    int step_rc;         /* what that step returned */
    int errors;          /* steps that returned an error (then were retried) */
    char why[512];       /* the verdict, when the child fails */
} child_report;

/* Children run two at a time (a CPU each: the session waits on the
 * servers half of the time). */
#define WORKERS 2
static child_report *reports; /* [WORKERS], shared with the children */
static child_report *report;  /* in a child: its own */

typedef struct session {
    pl_config cfg;
    pl_ledger *l;
    PGconn *raw;
    pl_key *key;
    pl_checkpoint *cp;
    char e1[64], eb[64];
    int64_t id1;
} session;

enum { STEP_OK = 0, STEP_ERR = 1, STEP_WRONG = 2 };

static _Noreturn void child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void child_fail(const char *fmt, ...)
{
    af_disarm();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report->why, sizeof report->why, fmt, ap);
    va_end(ap);
    _exit(3);
}

/* A call that keeps failing after the one injected failure. After one of
 * our allocations that is a defect (exit 3). After one of libcrypto's
 * own, OpenSSL 3 may keep the failure: its DRBG stays in its error state
 * (RAND_bytes fails until the process restarts) and a failed algorithm
 * fetch can stay failed; that is OpenSSL's, reported apart (exit 4,
 * README "Tests"), never a crash, a leak or a wrong answer. */
static _Noreturn void stuck(int cls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void stuck(int cls, const char *fmt, ...)
{
    af_disarm();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report->why, sizeof report->why, fmt, ap);
    va_end(ap);
    _exit(cls == AF_CRYPTO ? 4 : 3);
}

/* Wrong answers are failures of the test right away. */
#define EXPECT(cond, ...)                                                                    \
    do {                                                                                     \
        if (!(cond))                                                                         \
            child_fail(__VA_ARGS__);                                                         \
    } while (0)

static int status_of(int rc)
{
    return rc < 0 ? STEP_ERR : STEP_OK;
}

static long long raw_count(session *s, const char *entity)
{
    af_pause(1);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".provenance_ledger WHERE entity_id = $1",
             s->cfg.schema);
    const char *p[1] = {entity};
    PGresult *r = PQexecParams(s->raw, sql, 1, NULL, p, NULL, NULL, 0);
    long long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    af_pause(0);
    return n;
}

/* --- the steps ---------------------------------------------------------- */

static int st_key(session *s)
{
    if (s->key)
        return STEP_OK;
    int rc = pl_key_parse(&s->key, test_key_pem, strlen(test_key_pem));
    EXPECT(rc <= 0, "pl_key_parse -> %d", rc);
    return status_of(rc);
}

static int st_open(session *s)
{
    int rc = pl_open(&s->l, &s->cfg);
    EXPECT(rc <= 0, "pl_open -> %d", rc);
    EXPECT((rc == PL_OK) == (s->l != NULL), "pl_open -> %d with handle %p", rc, (void *)s->l);
    return status_of(rc);
}

static int st_migrate(session *s)
{
    return status_of(pl_migrate(s->l));
}

static int st_schema_version(session *s)
{
    int v = -1, rc = pl_schema_version(&v, s->l);
    EXPECT(rc < 0 || (rc == PL_OK && v >= 6), "pl_schema_version -> %d, version %d", rc, v);
    return status_of(rc);
}

static int insert_one(session *s, const char *field, const char *value, const char *key,
                      int64_t *id)
{
    pl_change c = tu_change(s->e1, field, value);
    c.idempotency_key = key;
    pl_receipt r = {0, 0};
    int rc = pl_insert(&r, s->l, &c);
    EXPECT(rc <= 0, "pl_insert -> %d", rc);
    if (rc == PL_OK) {
        EXPECT(r.id > 0, "pl_insert: OK with receipt id %" PRId64, r.id);
        if (id)
            *id = r.id;
    }
    return status_of(rc);
}

static int st_insert_f(session *s)
{
    char key[96];
    snprintf(key, sizeof key, "%s-f", s->e1);
    return insert_one(s, "f", "{\"n\": 1}", key, &s->id1);
}

static int st_insert_g(session *s)
{
    char key[96];
    snprintf(key, sizeof key, "%s-g", s->e1);
    return insert_one(s, "g", "\"x\"", key, NULL);
}

static int st_batch(session *s)
{
    pl_change c[BATCH_N];
    char fields[BATCH_N][8], values[BATCH_N][8], keys[BATCH_N][96];
    for (int i = 0; i < BATCH_N; i++) {
        snprintf(fields[i], sizeof fields[i], "f%d", i);
        snprintf(values[i], sizeof values[i], "%d", i);
        snprintf(keys[i], sizeof keys[i], "%s-%d", s->eb, i);
        c[i] = tu_change(s->eb, fields[i], values[i]);
        c[i].idempotency_key = keys[i];
    }
    pl_receipt r[BATCH_N];
    memset(r, 0, sizeof r);
    int rc = pl_insert_batch(r, s->l, c, BATCH_N);
    EXPECT(rc <= 0, "pl_insert_batch -> %d", rc);
    long long rows = raw_count(s, s->eb);
    EXPECT(rows == 0 || rows == BATCH_N, "pl_insert_batch -> %d left %lld of %d rows", rc, rows,
           BATCH_N);
    EXPECT(rc != PL_OK || rows == BATCH_N, "pl_insert_batch: OK but %lld rows", rows);
    for (int i = 0; rc == PL_OK && i < BATCH_N; i++)
        EXPECT(r[i].id > 0, "pl_insert_batch: OK with receipt %d id %" PRId64, i, r[i].id);
    return status_of(rc);
}

static void expect_record(const pl_result *r, size_t i, const char *field, const char *value,
                          const char *call)
{
    const pl_record *rec = pl_result_get(r, i);
    EXPECT(rec && strcmp(rec->field_name, field) == 0 && strcmp(rec->new_value, value) == 0,
           "%s: record %zu is %s = %s, expected %s = %s", call, i, rec ? rec->field_name : "-",
           rec ? rec->new_value : "-", field, value);
}

static int st_current(session *s)
{
    pl_result *r = NULL;
    int rc = pl_current(&r, s->l, s->e1, "f", 0);
    EXPECT(rc <= 0, "pl_current -> %d (a record exists)", rc);
    if (rc == PL_OK) {
        EXPECT(pl_result_count(r) == 1, "pl_current: %zu records", pl_result_count(r));
        expect_record(r, 0, "f", "{\"n\": 1}", "pl_current");
    } else {
        EXPECT(r == NULL, "pl_current -> %d with a result", rc);
    }
    pl_result_free(r);
    return status_of(rc);
}

static int st_as_of(session *s)
{
    pl_result *r = NULL;
    int rc = pl_as_of(&r, s->l, s->e1, "g", PL_TIME_NOW, PL_TIME_NOW, 0);
    EXPECT(rc <= 0, "pl_as_of -> %d (a record exists)", rc);
    if (rc == PL_OK) {
        EXPECT(pl_result_count(r) == 1, "pl_as_of: %zu records", pl_result_count(r));
        expect_record(r, 0, "g", "\"x\"", "pl_as_of");
    }
    pl_result_free(r);
    return status_of(rc);
}

static int st_snapshot(session *s)
{
    pl_result *r = NULL;
    int rc = pl_snapshot(&r, s->l, s->e1, PL_TIME_NOW, PL_TIME_NOW, 0);
    EXPECT(rc <= 0, "pl_snapshot -> %d (records exist)", rc);
    if (rc == PL_OK) {
        EXPECT(pl_result_count(r) == 2, "pl_snapshot: %zu records", pl_result_count(r));
        expect_record(r, 0, "f", "{\"n\": 1}", "pl_snapshot");
        expect_record(r, 1, "g", "\"x\"", "pl_snapshot");
    }
    pl_result_free(r);
    return status_of(rc);
}

static int st_range(session *s)
{
    pl_result *r = NULL;
    int rc = pl_range(&r, s->l, s->e1, NULL, PL_TIME_ANY, PL_TIME_NOW, 0);
    EXPECT(rc <= 0, "pl_range -> %d", rc);
    if (rc == PL_OK) {
        EXPECT(pl_result_count(r) == 2, "pl_range: %zu records", pl_result_count(r));
        expect_record(r, 0, "f", "{\"n\": 1}", "pl_range");
    }
    pl_result_free(r);
    return status_of(rc);
}

static int st_history(session *s)
{
    pl_result *r = NULL;
    int rc = pl_history(&r, s->l, s->e1, NULL, 0);
    EXPECT(rc <= 0, "pl_history -> %d", rc);
    if (rc == PL_OK) {
        EXPECT(pl_result_count(r) == 2, "pl_history: %zu records", pl_result_count(r));
        expect_record(r, 1, "g", "\"x\"", "pl_history");
    }
    pl_result_free(r);
    return status_of(rc);
}

/* Walks eb page by page; a failing page fails the walk. */
static int walk_pages(session *s, int range)
{
    char *cursor = NULL;
    size_t seen = 0;
    int rc, pages = 0;
    do {
        pl_result *r = NULL;
        char *next = NULL;
        rc = range ? pl_range_page(&r, &next, s->l, s->eb, NULL, PL_TIME_ANY, PL_TIME_NOW, cursor, 2, 0)
                   : pl_history_page(&r, &next, s->l, s->eb, NULL, cursor, 2, 0);
        EXPECT(rc <= 0, "page -> %d", rc);
        if (rc == PL_OK) {
            for (size_t i = 0; i < pl_result_count(r); i++) {
                char f[8], v[8];
                snprintf(f, sizeof f, "f%zu", seen + i);
                snprintf(v, sizeof v, "%zu", seen + i);
                expect_record(r, i, f, v, range ? "pl_range_page" : "pl_history_page");
            }
            seen += pl_result_count(r);
        } else {
            EXPECT(next == NULL, "page -> %d with a cursor", rc);
        }
        pl_result_free(r);
        pl_free(cursor);
        cursor = next;
        EXPECT(++pages <= BATCH_N + 1, "paging does not end");
    } while (rc == PL_OK && cursor);
    pl_free(cursor);
    EXPECT(rc != PL_OK || seen == BATCH_N, "paging: %zu records, expected %d", seen, BATCH_N);
    return status_of(rc);
}

static int st_history_page(session *s)
{
    return walk_pages(s, 0);
}

static int st_range_page(session *s)
{
    return walk_pages(s, 1);
}

static int st_iter(session *s)
{
    pl_iter *it = NULL;
    int rc = pl_history_open(&it, s->l, s->eb, NULL, 0);
    EXPECT(rc <= 0, "pl_history_open -> %d", rc);
    size_t seen = 0;
    const pl_record *rec;
    while (rc == PL_OK && (rc = pl_iter_next(&rec, it)) == PL_OK)
        seen++;
    pl_iter_free(it);
    EXPECT(rc < 0 || rc == PL_ITEROVER, "pl_iter_next -> %d", rc);
    if (rc == PL_ITEROVER) {
        EXPECT(seen == BATCH_N, "iterator: %zu records, expected %d", seen, BATCH_N);
        rc = PL_OK;
    }
    return status_of(rc);
}

static int st_health(session *s)
{
    char *json = NULL;
    int rc = pl_health(&json, s->l);
    EXPECT(rc <= 0, "pl_health -> %d", rc);
    EXPECT(rc != PL_OK || (json && json[0] == '{'), "pl_health: OK without JSON");
    pl_free(json);
    return status_of(rc);
}

static int st_stats(session *s)
{
    pl_stats_info st;
    int rc = pl_stats(&st, s->l, sizeof st);
    EXPECT(rc <= 0, "pl_stats -> %d", rc);
    EXPECT(rc != PL_OK || st.pool_size == s->cfg.pool_size, "pl_stats: pool size %u",
           st.pool_size);
    return status_of(rc);
}

static int st_seal(session *s)
{
    pl_checkpoint_free(s->cp);
    s->cp = NULL;
    pl_seal_info info;
    int rc = pl_seal(&s->cp, &info, sizeof info, s->l, s->key, NULL);
    EXPECT(rc <= 0, "pl_seal -> %d", rc);
    EXPECT(rc != PL_OK || (s->cp && s->cp->tree_size >= BATCH_N + 2 && info.tree_size == s->cp->tree_size),
           "pl_seal: OK with tree size %" PRId64, s->cp ? s->cp->tree_size : -1);
    return status_of(rc);
}

static int st_prove(session *s)
{
    pl_proof *p = NULL;
    int rc = pl_prove_inclusion(&p, s->l, s->id1, s->cp);
    EXPECT(rc <= 0, "pl_prove_inclusion -> %d", rc);
    if (rc == PL_OK) {
        int v = pl_verify_inclusion(p->leaf_hash, p->leaf_index, p->tree_size, p->hashes, p->count,
                                    s->cp->root_hash);
        EXPECT(v == PL_OK, "pl_verify_inclusion of a proof just made -> %d", v);
    }
    pl_proof_free(p);
    return status_of(rc);
}

static int st_checkpoint(session *s)
{
    pl_checkpoint *cp = NULL;
    int rc = pl_checkpoint_parse(&cp, s->cp->note, s->cp->note_len);
    EXPECT(rc <= 0, "pl_checkpoint_parse -> %d", rc);
    if (rc == PL_OK) {
        EXPECT(cp->tree_size == s->cp->tree_size, "pl_checkpoint_parse: size %" PRId64,
               cp->tree_size);
        rc = pl_checkpoint_verify(cp, s->key);
        EXPECT(rc <= 0, "pl_checkpoint_verify -> %d", rc);
    }
    pl_checkpoint_free(cp);
    return status_of(rc);
}

typedef struct step {
    const char *name;
    int (*run)(session *);
} step;

/* Each read twice: the first fills the cache, the second is its hit. */
static const step steps[] = {
    {"pl_key_parse", st_key},
    {"pl_open", st_open},
    {"pl_migrate", st_migrate},
    {"pl_schema_version", st_schema_version},
    {"pl_insert", st_insert_f},
    {"pl_insert", st_insert_g},
    {"pl_insert_batch", st_batch},
    {"pl_current", st_current},
    {"pl_current (cached)", st_current},
    {"pl_as_of", st_as_of},
    {"pl_as_of (cached)", st_as_of},
    {"pl_snapshot", st_snapshot},
    {"pl_snapshot (cached)", st_snapshot},
    {"pl_range", st_range},
    {"pl_range (again)", st_range},
    {"pl_history", st_history},
    {"pl_history (again)", st_history},
    {"pl_history_page", st_history_page},
    {"pl_range_page", st_range_page},
    {"pl_history_open", st_iter},
    {"pl_health", st_health},
    {"pl_stats", st_stats},
    {"pl_seal", st_seal},
    {"pl_prove_inclusion", st_prove},
    {"pl_checkpoint_parse", st_checkpoint},
};
#define NSTEPS (sizeof steps / sizeof steps[0])

static const char *step_name(int i)
{
    return i < 0 ? "-" : (size_t)i < NSTEPS ? steps[i].name : "pl_close";
}

/* The session in this (child) process, allocation fail_at failing. */
/* A crash prints its stack (addr2line -e ... turns it into lines). */
static void on_crash(int sig)
{
    void *frames[32];
    int n = backtrace(frames, 32);
    backtrace_symbols_fd(frames, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static _Noreturn void child(const pl_config *base, int cls, long fail_at, long serial)
{
    if (!UNDER_ASAN) {
        signal(SIGSEGV, on_crash);
        signal(SIGBUS, on_crash);
        signal(SIGABRT, on_crash);
    }
    alarm(120); /* a hang ends as SIGALRM: a failure */
    session s;
    memset(&s, 0, sizeof s);
    s.cfg = *base;
    snprintf(s.e1, sizeof s.e1, "af%ld_%ld_e", serial, (long)getpid());
    snprintf(s.eb, sizeof s.eb, "af%ld_%ld_b", serial, (long)getpid());
    s.raw = PQconnectdb(getenv("PL_TEST_PG")); /* a unix socket: quicker */
    if (PQstatus(s.raw) != CONNECTION_OK)
        child_fail("raw connection: %s", PQerrorMessage(s.raw));
    report->step = -1;
    af_arm(cls, fail_at);
    for (size_t i = 0; i < NSTEPS; i++) {
        if (fail_at == 0 && getenv("PL_ALLOC_FAIL_VERBOSE"))
            fprintf(stderr, "alloc_fail: %-22s starts at allocation %ld, %.1f ms\n", steps[i].name,
                    af_count(AF_MAIN) + af_count(AF_CRYPTO), tu_now_ms());
        int before = af_fired();
        int st = steps[i].run(&s);
        int saw = !before && af_fired();
        if (saw) {
            report->step = (int)i;
            report->step_rc = st;
        }
        if (st == STEP_ERR) {
            if (!af_fired())
                child_fail("%s failed (%s) before any allocation failed", steps[i].name, pl_errmsg());
            if (!saw && report->step >= 0)
                stuck(cls, "%s failed (%s) after the failure in %s: the handle is not usable",
                      steps[i].name, pl_errmsg(), step_name(report->step));
            report->errors++;
            /* The one failure is spent: the same call must now work. */
            st = steps[i].run(&s);
            if (st != STEP_OK)
                stuck(cls, "%s failed again (%s) after the injected failure", steps[i].name,
                      pl_errmsg());
        }
    }
    pl_close(s.l);
    s.l = NULL;
    if (af_fired() && report->step < 0)
        report->step = (int)NSTEPS; /* in pl_close, or on another thread */
    report->allocations = af_count(cls);
    report->fired = af_fired();
    af_disarm();
    pl_checkpoint_free(s.cp);
    pl_key_free(s.key);
    /* Every write that reported success is there, exactly once. */
    long long n1 = raw_count(&s, s.e1), nb = raw_count(&s, s.eb);
    PQfinish(s.raw);
    if (n1 != 2 || nb != BATCH_N)
        child_fail("rows after the session: %s has %lld (expected 2), %s has %lld (expected %d)",
                   s.e1, n1, s.eb, nb, BATCH_N);
#if UNDER_ASAN
    if (__lsan_do_recoverable_leak_check())
        child_fail("LeakSanitizer found a leak (its report is above)");
#endif
    _exit(0);
}

static int under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload");
}

/* Judges a child that ended with status; 0 when it passed, else writes
 * why into msg. */
static int judge(const child_report *r, int status, char *msg, size_t len)
{
    if (WIFSIGNALED(status)) {
        snprintf(msg, len, "signal %d (%s) in %s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 r->fired ? step_name(r->step) : "the session (had the allocation failed yet?)");
        return 1;
    }
    if (WEXITSTATUS(status) != 0) {
        snprintf(msg, len, "exit %d: %s", WEXITSTATUS(status),
                 r->why[0] ? r->why : "(see the child's output above)");
        return 1;
    }
    return 0;
}

typedef struct tally {
    long covered, fired, errors, absorbed, failures, stuck, by_step[NSTEPS + 1];
} tally;

/* Fails allocations first, first + stride, ... up to last of class cls,
 * each in a child of its own, WORKERS at a time. */
static void sweep(const pl_config *cfg, int cls, long first, long last, long stride, tally *t)
{
    pid_t pids[WORKERS] = {0};
    long at[WORKERS] = {0};
    long next = first;
    int running = 0;
    char msg[768];
    while (running > 0 || (next <= last && t->failures < 25)) {
        while (running < WORKERS && next <= last && t->failures < 25) {
            int w = 0;
            while (pids[w])
                w++;
            memset(&reports[w], 0, sizeof reports[w]);
            fflush(NULL);
            pid_t pid = fork();
            ck_assert_int_ge(pid, 0);
            if (pid == 0) {
                report = &reports[w];
                child(cfg, cls, next, cls * 1000000 + next);
            }
            pids[w] = pid;
            at[w] = next;
            next += stride;
            running++;
            t->covered++;
        }
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        ck_assert_int_gt(pid, 0);
        int w = 0;
        while (w < WORKERS && pids[w] != pid)
            w++;
        if (w == WORKERS)
            continue; /* not one of ours */
        pids[w] = 0;
        running--;
        const child_report *r = &reports[w];
        if (WIFEXITED(status) && WEXITSTATUS(status) == 4) {
            t->stuck++;
            printf("alloc_fail: libcrypto allocation %ld: OpenSSL stays failed: %s\n", at[w], r->why);
            continue;
        }
        if (judge(r, status, msg, sizeof msg)) {
            t->failures++;
            printf("alloc_fail: FAIL at %s allocation %ld: %s\n", cls == AF_CRYPTO ? "libcrypto" : "main",
                   at[w], msg);
            continue;
        }
        if (r->fired) {
            t->fired++;
            t->errors += r->errors;
            if (r->step >= 0 && (size_t)r->step < NSTEPS && r->step_rc == STEP_OK)
                t->absorbed++;
            t->by_step[r->step >= 0 ? r->step : (int)NSTEPS]++;
        }
    }
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

START_TEST(every_allocation_fails_once)
{
    tu_require_servers();
    reports = mmap(NULL, WORKERS * sizeof *reports, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    ck_assert_ptr_ne(reports, MAP_FAILED);

    pl_config cfg;
    tu_config(&cfg, 1);
    /* TCP, as most deployments connect (GSS encryption is negotiated on
     * TCP only), when the servers offer it. */
    const char *tcp = getenv("PL_TEST_PG_TCP");
    if (tcp && *tcp)
        cfg.pg_conninfo = tcp;
    cfg.pool_size = 2;
    cfg.redis_pool_size = 2;
    pl_ledger *l = tu_open_fresh(&cfg); /* migrated once; the sessions' pl_migrate finds it done */
    pl_close(l);
    /* libcrypto's one-time initialisation (some 6,000 allocations of
     * providers and name maps) happens here, before the children fork:
     * the sessions test our calls, not OpenSSL's start-up over and over. */
    pl_key *key = NULL;
    tu_ok(pl_key_parse(&key, test_key_pem, strlen(test_key_pem)));
    pl_key_free(key);

    /* Counting runs, one per class. */
    double t0 = tu_now_ms();
    long total[2];
    char msg[768];
    for (int cls = AF_MAIN; cls <= AF_CRYPTO; cls++) {
        memset(&reports[0], 0, sizeof reports[0]);
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            report = &reports[0];
            child(&cfg, cls, 0, cls);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(!judge(&reports[0], status, msg, sizeof msg), "the session without failures: %s",
                      msg);
        total[cls] = reports[0].allocations;
    }
    double per_child = (tu_now_ms() - t0) / 2;
    ck_assert_int_gt(total[AF_MAIN], 0);

    /* Every allocation of the main class and every 8th of libcrypto's in
     * the plain build; under ASan and valgrind (each child then takes
     * 10..50 times longer) a stride that keeps the run within minutes. */
    long stride = env_long("PL_ALLOC_FAIL_STRIDE", 0), crypto_stride;
    if (stride <= 0) {
        stride = under_valgrind() ? total[AF_MAIN] / 30 + 1 : UNDER_ASAN ? total[AF_MAIN] / 300 + 1 : 1;
        crypto_stride = under_valgrind() ? total[AF_CRYPTO] / 6 + 1 : UNDER_ASAN ? total[AF_CRYPTO] / 60 + 1 : 8;
    } else {
        crypto_stride = stride * 8;
    }
    printf("alloc_fail: the session makes %ld allocations (%ld of them libcrypto's own), %.0f ms; "
           "failing one in %ld (libcrypto's: one in %ld)%s\n",
           total[AF_MAIN] + total[AF_CRYPTO], total[AF_CRYPTO], per_child, stride, crypto_stride,
           under_valgrind() ? " under valgrind" : UNDER_ASAN ? " under ASan (LeakSanitizer on)" : "");

    tally t;
    memset(&t, 0, sizeof t);
    /* PL_ALLOC_FAIL_AT=N (or crypto:N) runs that one point only, for a
     * debugger (gdb: set follow-fork-mode child). */
    const char *only = getenv("PL_ALLOC_FAIL_AT");
    if (only && *only) {
        int cls = strncmp(only, "crypto:", 7) == 0 ? AF_CRYPTO : AF_MAIN;
        long n = atol(cls == AF_CRYPTO ? only + 7 : only);
        sweep(&cfg, cls, n, n, 1, &t);
        ck_assert_msg(t.failures == 0, "allocation %s breaks the rules", only);
        return;
    }
    /* Numbers past the counting run's total still run: another run may
     * allocate a few more (timing, threads). */
    sweep(&cfg, AF_MAIN, 1, total[AF_MAIN] + 16, stride, &t);
    long main_covered = t.covered, main_fired = t.fired;
    sweep(&cfg, AF_CRYPTO, 1, total[AF_CRYPTO] + 16, crypto_stride, &t);
    double secs = (tu_now_ms() - t0) / 1000.0;
    printf("alloc_fail: %ld allocation points covered, %ld fired (main: %ld covered, %ld fired; "
           "libcrypto: %ld covered, %ld fired), %ld failures; %ld calls returned an error and worked "
           "when run again; %ld failures absorbed with a correct answer; %ld left OpenSSL failing; %.1f s\n",
           t.covered, t.fired, main_covered, main_fired, t.covered - main_covered, t.fired - main_fired,
           t.failures, t.errors, t.absorbed, t.stuck, secs);
    for (size_t i = 0; i <= NSTEPS; i++)
        if (t.by_step[i])
            printf("alloc_fail:   %-22s %ld fired\n", i == NSTEPS ? "pl_close / other thread" : step_name((int)i),
                   t.by_step[i]);
    ck_assert_msg(t.failures == 0, "%ld allocation points break the rules (listed above)", t.failures);
    ck_assert_int_gt(t.fired, 0);
    munmap(reports, WORKERS * sizeof *reports);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc_fail");
    TCase *tc = tu_tcase("every_allocation_fails_once", 3600);
    tcase_add_test(tc, every_allocation_fails_once);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
