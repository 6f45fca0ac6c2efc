/* Failover: one handle on a pg_auto_failover formation (tests/failover.sh)
 * with the cache on, writers with idempotency keys retrying on the caller's
 * side, cached and PL_REALTIME readers, while the primary is switched over
 * (`pg_autoctl perform failover`) and later killed (the monitor fails over
 * on its own). Afterwards: every acknowledged key present exactly once with
 * its receipt's id, transaction times per entity strictly increasing,
 * as-of answers at settled times unchanged, no read older than a read or
 * write that had already returned; the longest time without a successful
 * write per case is printed ("failover: case ... longest gap ...").
 *
 * The lost-commit case turns synchronous replication off, stops the
 * walsender so that acknowledged commits never reach the standby, kills
 * the primary and asks for a cached answer after the failover: it must
 * equal the new primary's (the cache's epoch follows the PostgreSQL
 * timeline, migration 9; before that it served the lost commit's answer).
 * PL_FAILOVER_LOST_COMMITS=0 leaves it out.
 *
 * Run by: bash tests/servers.sh run --no-replica -- bash tests/failover.sh
 *         run -- build/tests/check_failover
 * PL_FAILOVER_SECONDS: seconds of workload after each disturbance (default
 * 4; the full scenario in the README uses 30). */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_WRITERS 4
#define N_ENT 4 /* entities per writer */
#define N_ENTITIES (N_WRITERS * N_ENT)
#define N_CACHED 2
#define N_REALTIME 2
#define MAX_ACKS 200000
#define RETRY_LIMIT_S 90.0
#define GAP_BOUND_S 60.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    pl_time tt;
    int64_t id;
} version;

static int version_lt(version a, version b)
{
    return a.tt < b.tt || (a.tt == b.tt && a.id < b.id);
}

typedef struct {
    char key[48];
    int64_t id;
    pl_time tt;
} ack;

static struct {
    pl_ledger *l;
    char run[24];
    int case_no; /* keys of each case differ: a key of an earlier case replays its receipt */
    atomic_int stop;
    pthread_mutex_t mu;
    /* per entity: the newest version any completed read or write returned */
    version done[N_ENTITIES];
    int done_by_write[N_ENTITIES]; /* done[e] came from a write's receipt */
    struct {
        int e, by_write;
        version v, floor;
        int origin;
    } viol[64];
    size_t n_viol;
    ack *acks;
    size_t n_acks;
    double last_write, max_gap;
    long write_retries, read_errors, reads_ok, cache_hits;
    long violations;
    char first_violation[256];
    int fatal;
    char fatal_msg[256];
    char failures[2048]; /* of the cases so far */
} S;

static void entity_name(char *buf, size_t n, int e)
{
    snprintf(buf, n, "fo-%s-e%d", S.run, e);
}

static void note_done(int e, version v, int by_write)
{
    if (version_lt(S.done[e], v)) {
        S.done[e] = v;
        S.done_by_write[e] = by_write;
    }
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&S.mu);
    if (S.violations++ == 0) {
        va_start(ap, fmt);
        vsnprintf(S.first_violation, sizeof S.first_violation, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&S.mu);
}

static int retryable(int rc)
{
    return rc == PL_ECONNECT || rc == PL_EUNKNOWN || rc == PL_ETIMEOUT || rc == PL_EDB;
}

static void *writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    char ent[64], key[48], val[32];
    for (unsigned long seq = 0; !atomic_load(&S.stop); seq++) {
        int e = w * N_ENT + (int)(seq % N_ENT);
        entity_name(ent, sizeof ent, e);
        snprintf(key, sizeof key, "fo-%s-c%d-w%d-%lu", S.run, S.case_no, w, seq);
        snprintf(val, sizeof val, "%d%06lu", S.case_no, seq);
        pl_change c = tu_change(ent, "v", val);
        c.idempotency_key = key;
        pl_receipt r;
        double t0 = now_s();
        int rc;
        for (;;) {
            rc = pl_insert(&r, S.l, &c);
            if (rc == PL_OK || !retryable(rc) || now_s() - t0 > RETRY_LIMIT_S)
                break;
            pthread_mutex_lock(&S.mu);
            S.write_retries++;
            pthread_mutex_unlock(&S.mu);
            tu_sleep_ms(50);
        }
        pthread_mutex_lock(&S.mu);
        if (rc != PL_OK) {
            if (!S.fatal)
                snprintf(S.fatal_msg, sizeof S.fatal_msg, "insert %s: %s (%s)", key,
                         pl_strerror(rc), pl_errmsg());
            S.fatal = 1;
            pthread_mutex_unlock(&S.mu);
            break;
        }
        double t = now_s();
        if (t - S.last_write > S.max_gap)
            S.max_gap = t - S.last_write;
        S.last_write = t;
        if (S.n_acks < MAX_ACKS) {
            ack *a = &S.acks[S.n_acks++];
            snprintf(a->key, sizeof a->key, "%s", key);
            a->id = r.id;
            a->tt = r.transaction_time;
        }
        note_done(e, (version){r.transaction_time, r.id}, 1);
        pthread_mutex_unlock(&S.mu);
        tu_sleep_ms(2);
    }
    return NULL;
}

static void *reader(void *arg)
{
    unsigned flags = (unsigned)(intptr_t)arg;
    uint64_t rnd = (uint64_t)pthread_self() ^ (uint64_t)flags;
    char ent[64];
    while (!atomic_load(&S.stop)) {
        int e = (int)(tu_rand64(&rnd) % N_ENTITIES);
        entity_name(ent, sizeof ent, e);
        pthread_mutex_lock(&S.mu);
        version floor = S.done[e];
        int floor_by_write = S.done_by_write[e];
        pthread_mutex_unlock(&S.mu);
        pl_result *res = NULL;
        int rc = pl_current(&res, S.l, ent, "v", flags);
        if (rc == PL_OK || rc == PL_NOT_FOUND) {
            version v = {PL_TIME_MIN, 0};
            int origin = pl_result_origin(res);
            if (rc == PL_OK) {
                const pl_record *rec = pl_result_get(res, 0);
                v = (version){rec->transaction_time, rec->id};
            }
            pl_result_free(res);
            if (version_lt(v, floor)) {
                pthread_mutex_lock(&S.mu);
                if (S.n_viol < sizeof S.viol / sizeof S.viol[0]) {
                    S.viol[S.n_viol].e = e;
                    S.viol[S.n_viol].by_write = floor_by_write;
                    S.viol[S.n_viol].v = v;
                    S.viol[S.n_viol].floor = floor;
                    S.viol[S.n_viol].origin = origin;
                    S.n_viol++;
                }
                pthread_mutex_unlock(&S.mu);
                violation("%s read of %s returned (%" PRId64 ", %" PRId64
                          ") after (%" PRId64 ", %" PRId64 ") had returned (origin %d)",
                          flags & PL_REALTIME ? "realtime" : "cached", ent, v.tt, v.id, floor.tt,
                          floor.id, origin);
            }
            pthread_mutex_lock(&S.mu);
            note_done(e, v, 0);
            S.reads_ok++;
            if (origin == PL_ORIGIN_CACHE)
                S.cache_hits++;
            pthread_mutex_unlock(&S.mu);
        } else {
            pthread_mutex_lock(&S.mu);
            S.read_errors++;
            pthread_mutex_unlock(&S.mu);
            tu_sleep_ms(50);
        }
        tu_sleep_ms(1);
    }
    return NULL;
}

static int ctl(const char *action, char *out, size_t n)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash \"%s\" ctl %s", getenv("PL_FO_CTL"), action);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t got = 0;
    if (out && n) {
        got = fread(out, 1, n - 1, p);
        out[got] = '\0';
        while (got && (out[got - 1] == '\n'))
            out[--got] = '\0';
    } else {
        char buf[256];
        while (fread(buf, 1, sizeof buf, p) > 0) {
        }
    }
    int st = pclose(p);
    return st;
}

static PGconn *primary_conn(void)
{
    for (int i = 0; i < 300; i++) {
        PGconn *pg = PQconnectdb(getenv("PL_FO_CONNINFO"));
        if (PQstatus(pg) == CONNECTION_OK) {
            PQclear(PQexec(pg, "SET search_path = provledger_fo"));
            return pg;
        }
        PQfinish(pg);
        tu_sleep_ms(200);
    }
    ck_abort_msg("no primary within 60 s");
    return NULL;
}

static long long q_ll(PGconn *pg, const char *sql, int n, const char *const *p)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* What the monitor recorded in the last two minutes, printed when a check
 * fails: whether the primary went to wait_primary (synchronous replication
 * off, README "High availability") or the standby was unhealthy tells a
 * loss pg_auto_failover allowed from one of ours. */
static void print_monitor_events(const char *label)
{
    PGconn *mon = PQconnectdb(getenv("PL_FO_MONITOR"));
    PGresult *r = PQstatus(mon) == CONNECTION_OK
                      ? PQexec(mon, "SELECT to_char(eventtime, 'HH24:MI:SS.MS'), nodename, reportedstate, "
                                    "goalstate, reportedlsn, description FROM pgautofailover.event "
                                    "WHERE eventtime > now() - interval '120 seconds' ORDER BY eventid")
                      : NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        printf("failover: %s: the monitor's events could not be read: %s", label, PQerrorMessage(mon));
    } else {
        printf("failover: %s: the monitor's events of the last 120 s:\n", label);
        for (int i = 0; i < PQntuples(r); i++)
            printf("  %s %s %s -> %s lsn %s: %.160s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
    }
    fflush(stdout);
    PQclear(r);
    PQfinish(mon);
}

/* Every acknowledged key exactly once, with its receipt's id and time;
 * no key of this run twice; per entity, transaction times strictly
 * increasing in id order. */
static void check_ledger(const char *label)
{
    PGconn *pg = primary_conn();
    size_t n = S.n_acks, cap = n * 40 + 16;
    char *keys = malloc(cap), *ids = malloc(cap);
    ck_assert(keys && ids);
    size_t kl = 0, il = 0;
    keys[kl++] = '{';
    ids[il++] = '{';
    for (size_t i = 0; i < n; i++) {
        kl += (size_t)snprintf(keys + kl, cap - kl, "%s%s", i ? "," : "", S.acks[i].key);
        il += (size_t)snprintf(ids + il, cap - il, "%s%" PRId64, i ? "," : "", S.acks[i].id);
    }
    snprintf(keys + kl, cap - kl, "}");
    snprintf(ids + il, cap - il, "}");
    char like[64];
    snprintf(like, sizeof like, "fo-%s-%%", S.run);
    const char *lp[1] = {like};
    const char *p3[3] = {keys, ids, like};
    /* one hash join (the ledger has no index on idempotency_key) */
    long long missing = q_ll(pg,
        "SELECT count(*) FROM unnest($1::text[], $2::bigint[]) AS a(k, id) "
        "LEFT JOIN (SELECT idempotency_key, count(*) AS n, min(id) AS id FROM provenance_ledger "
        "           WHERE idempotency_key LIKE $3 GROUP BY 1) l ON l.idempotency_key = a.k "
        "WHERE l.n IS DISTINCT FROM 1 OR l.id <> a.id",
        3, p3);
    long long dups = q_ll(pg,
        "SELECT count(*) FROM (SELECT idempotency_key FROM provenance_ledger "
        "WHERE idempotency_key LIKE $1 GROUP BY 1 HAVING count(*) > 1) d", 1, lp);
    long long disorder = q_ll(pg,
        "SELECT count(*) FROM (SELECT transaction_time <= lag(transaction_time) "
        "OVER (PARTITION BY entity_id ORDER BY id) AS bad FROM provenance_ledger "
        "WHERE entity_id LIKE $1) s WHERE bad", 1, lp);
    long long rows = q_ll(pg, "SELECT count(*) FROM provenance_ledger WHERE idempotency_key LIKE $1", 1, lp);
    printf("failover: %s: %zu acknowledged, %lld rows of this run, %lld acknowledged keys "
           "missing/duplicated/wrong id, %lld duplicated keys, %lld out-of-order times\n",
           label, n, rows, missing, dups, disorder);
    fflush(stdout);
    if (missing || dups || disorder)
        print_monitor_events(label);
    ck_assert_int_eq(missing, 0);
    ck_assert_int_eq(dups, 0);
    ck_assert_int_eq(disorder, 0);
    free(keys);
    free(ids);
    PQfinish(pg);
}

static void open_ledger(void)
{
    memset(&S, 0, sizeof S);
    pthread_mutex_init(&S.mu, NULL);
    snprintf(S.run, sizeof S.run, "%ld%ld", (long)getpid(), (long)time(NULL) % 100000);
    S.acks = calloc(MAX_ACKS, sizeof *S.acks);
    ck_assert_ptr_nonnull(S.acks);
    for (int e = 0; e < N_ENTITIES; e++)
        S.done[e] = (version){PL_TIME_MIN, 0};
    static char prefix[64];
    snprintf(prefix, sizeof prefix, "fo:%s:", S.run);
    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = getenv("PL_FO_CONNINFO");
    cfg.schema = "provledger_fo";
    cfg.redis_url = getenv("PL_TEST_REDIS");
    cfg.cache_key_prefix = prefix;
    cfg.pool_size = 16;
    cfg.statement_timeout_ms = 5000;
    cfg.connect_timeout_ms = 2000;
    cfg.pool_wait_timeout_ms = 20000;
    int rc = PL_ECONNECT;
    for (int i = 0; i < 150 && rc != PL_OK; i++) {
        rc = pl_open(&S.l, &cfg);
        if (rc != PL_OK)
            tu_sleep_ms(200);
    }
    ck_assert_msg(rc == PL_OK, "open: %s", pl_errmsg());
    rc = PL_ECONNECT;
    for (int i = 0; i < 50 && rc != PL_OK; i++) {
        rc = pl_migrate(S.l);
        if (rc != PL_OK)
            tu_sleep_ms(200);
    }
    ck_assert_msg(rc == PL_OK, "migrate: %s", pl_errmsg());
}

static pthread_t threads[N_WRITERS + N_CACHED + N_REALTIME];

static void start_workload(void)
{
    atomic_store(&S.stop, 0);
    S.case_no++;
    S.last_write = now_s();
    S.max_gap = 0;
    int t = 0;
    for (int w = 0; w < N_WRITERS; w++)
        ck_assert_int_eq(pthread_create(&threads[t++], NULL, writer, (void *)(intptr_t)w), 0);
    for (int i = 0; i < N_CACHED; i++)
        ck_assert_int_eq(pthread_create(&threads[t++], NULL, reader, (void *)(intptr_t)0), 0);
    for (int i = 0; i < N_REALTIME; i++)
        ck_assert_int_eq(pthread_create(&threads[t++], NULL, reader,
                                        (void *)(intptr_t)PL_REALTIME), 0);
}

static void stop_workload(void)
{
    atomic_store(&S.stop, 1);
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++)
        pthread_join(threads[t], NULL);
}

/* as-of answers at a settled time: the newest acknowledged transaction
 * time (pl_as_of waits for writes still in flight at an instant). */
typedef struct {
    pl_time at;
    int64_t id[N_ENTITIES];
} asof_set;

static void asof_take(asof_set *s)
{
    pthread_mutex_lock(&S.mu);
    s->at = S.n_acks ? S.acks[S.n_acks - 1].tt : PL_TIME_MIN;
    pthread_mutex_unlock(&S.mu);
    char ent[64];
    for (int e = 0; e < N_ENTITIES; e++) {
        entity_name(ent, sizeof ent, e);
        pl_result *r = NULL;
        int rc = pl_as_of(&r, S.l, ent, "v", s->at, PL_TIME_ANY, 0);
        ck_assert_msg(rc == PL_OK || rc == PL_NOT_FOUND, "as_of: %s", pl_errmsg());
        s->id[e] = rc == PL_OK ? pl_result_get(r, 0)->id : 0;
        pl_result_free(r);
    }
}

static void asof_compare(const asof_set *s, const char *label)
{
    char ent[64];
    for (unsigned flags = 0; flags <= PL_REALTIME; flags += PL_REALTIME) {
        for (int e = 0; e < N_ENTITIES; e++) {
            entity_name(ent, sizeof ent, e);
            pl_result *r = NULL;
            int rc = PL_ECONNECT;
            for (int i = 0; i < 100 && retryable(rc); i++) {
                rc = pl_as_of(&r, S.l, ent, "v", s->at, PL_TIME_ANY, flags);
                if (retryable(rc))
                    tu_sleep_ms(100);
            }
            ck_assert_msg(rc == PL_OK || rc == PL_NOT_FOUND, "as_of: %s", pl_errmsg());
            int64_t id = rc == PL_OK ? pl_result_get(r, 0)->id : 0;
            pl_result_free(r);
            ck_assert_msg(id == s->id[e], "%s: as-of answer of %s changed: id %" PRId64
                          " before, %" PRId64 " after (%s)", label, ent, s->id[e], id,
                          flags ? "realtime" : "cached");
        }
    }
}

/* A read older than one that had returned: against an acknowledged write,
 * or against a read whose record survived, it is a bug of ours. Against a
 * read of a record the failover lost (never acknowledged: check_ledger
 * holds every acknowledged one), it is PostgreSQL's: a commit is visible
 * on the primary before the synchronous standby confirms it, so a read
 * can see a commit that a failover then loses. Those fail only with
 * PL_FAILOVER_STRICT_READS=1 (README "High availability"). */
static void classify_violations(const char *label)
{
    if (S.violations == 0)
        return;
    PGconn *pg = primary_conn();
    long ours = 0, lost = 0;
    char first[300] = "";
    for (size_t i = 0; i < S.n_viol; i++) {
        char ent[64], id[32];
        entity_name(ent, sizeof ent, S.viol[i].e);
        snprintf(id, sizeof id, "%" PRId64, S.viol[i].floor.id);
        const char *p[2] = {ent, id};
        long long exists = q_ll(pg, "SELECT count(*) FROM provenance_ledger "
                                    "WHERE entity_id = $1 AND id = $2::bigint", 2, p);
        if (S.viol[i].by_write || exists) {
            if (!ours++)
                snprintf(first, sizeof first, "%s: (%" PRId64 ", %" PRId64 ") after %s (%" PRId64
                         ", %" PRId64 ") that %s (origin %d)", ent, S.viol[i].v.tt, S.viol[i].v.id,
                         S.viol[i].by_write ? "a write's receipt" : "a read of",
                         S.viol[i].floor.tt, S.viol[i].floor.id,
                         exists ? "survived" : "was lost", S.viol[i].origin);
        } else {
            lost++;
        }
    }
    PQfinish(pg);
    printf("failover: %s: %ld reads older than a returned one (first: %s); of the first %zu, %ld "
           "after a read of a commit the failover lost (never acknowledged), %ld other\n",
           label, S.violations, S.first_violation, S.n_viol, lost, ours);
    fflush(stdout);
    /* noted, asserted after the last case so that every case runs */
    const char *env = getenv("PL_FAILOVER_STRICT_READS");
    int strict = env && strcmp(env, "1") == 0;
    size_t n = strlen(S.failures);
    if (ours)
        snprintf(S.failures + n, sizeof S.failures - n, "%s: %ld reads older than an acknowledged "
                 "write or a surviving read; first: %s. ", label, ours, first);
    else if (strict && lost)
        snprintf(S.failures + n, sizeof S.failures - n, "%s: %ld reads older than a read of a "
                 "commit the failover lost. ", label, lost);
    S.violations = 0;
    S.n_viol = 0;
}

static double workload_seconds(void)
{
    const char *s = getenv("PL_FAILOVER_SECONDS");
    double v = s && *s ? atof(s) : 4.0;
    return v > 0 ? v : 4.0;
}

/* Waits (while the workload runs) until some write succeeded after t. */
static void wait_write_after(double t, double timeout_s)
{
    double t0 = now_s();
    for (;;) {
        pthread_mutex_lock(&S.mu);
        double lw = S.last_write;
        int fatal = S.fatal;
        pthread_mutex_unlock(&S.mu);
        if (lw > t || fatal || now_s() - t0 > timeout_s)
            return;
        tu_sleep_ms(50);
    }
}

/* One disturbance under load; returns the longest gap in seconds. */
static double run_case(const char *label, const char *action, char *node, size_t node_n)
{
    double secs = workload_seconds();
    size_t acks0 = S.n_acks;
    long viol0 = S.violations;
    start_workload();
    tu_sleep_ms(1000 * secs / 2);
    asof_set before;
    asof_take(&before);
    double t0 = now_s();
    char out[256] = "";
    int st = ctl(action, out, sizeof out);
    double t1 = now_s();
    ck_assert_msg(st == 0, "ctl %s failed (%d)", action, st);
    wait_write_after(t1, 90);
    tu_sleep_ms(1000 * secs);
    stop_workload();
    ck_assert_msg(!S.fatal, "%s: %s", label, S.fatal_msg);
    double gap = S.max_gap;
    printf("failover: case %s: ctl %s took %.1f s (node %s); longest gap without a successful "
           "write %.2f s; %zu writes (%ld retries), %ld reads (%ld from the cache, %ld errors); "
           "%ld monotonicity violations\n",
           label, action, t1 - t0, out[0] ? out : "-", gap, S.n_acks - acks0, S.write_retries,
           S.reads_ok, S.cache_hits, S.read_errors, S.violations - viol0);
    fflush(stdout);
    asof_compare(&before, label);
    check_ledger(label);
    classify_violations(label);
    ck_assert_msg(gap < GAP_BOUND_S, "%s: %.1f s without a successful write", label, gap);
    if (node)
        snprintf(node, node_n, "%s", out);
    return gap;
}

/* A second handle whose replica_conninfo names both nodes
 * (target_session_attrs=prefer-standby): a PL_ALLOW_STALE read is answered
 * by whichever node is the standby now. */
static void replica_check(const char *label)
{
    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = getenv("PL_FO_CONNINFO");
    cfg.replica_conninfo = getenv("PL_FO_REPLICA_CONNINFO");
    cfg.schema = "provledger_fo";
    cfg.pool_size = 2;
    pl_ledger *l = NULL;
    ck_assert_int_eq(pl_open(&l, &cfg), PL_OK);
    char ent[64];
    entity_name(ent, sizeof ent, 0);
    int origin = -1, rc = PL_ECONNECT;
    /* the standby replays the entity's first record within a moment */
    for (int i = 0; i < 100; i++) {
        pl_result *r = NULL;
        rc = pl_current(&r, l, ent, "v", PL_ALLOW_STALE);
        origin = pl_result_origin(r);
        pl_result_free(r);
        if (rc == PL_OK && origin == PL_ORIGIN_REPLICA)
            break;
        tu_sleep_ms(100);
    }
    pl_stats_info st;
    memset(&st, 0, sizeof st);
    pl_stats(&st, l, sizeof st);
    printf("failover: %s: PL_ALLOW_STALE read through the multi-host replica_conninfo: %s, "
           "origin %d (replica reads %" PRIu64 ", fallbacks %" PRIu64 "; last message: %s)\n",
           label, pl_strerror(rc), origin, st.replica_reads, st.replica_fallbacks, pl_errmsg());
    fflush(stdout);
    ck_assert_int_eq(rc, PL_OK);
    /* Not asserted yet: these reads fell back to the primary in the first
     * runs (README "High availability", read replicas: open). */
    const char *strict = getenv("PL_FAILOVER_STRICT_REPLICA");
    if (strict && strcmp(strict, "1") == 0)
        ck_assert_int_eq(origin, PL_ORIGIN_REPLICA);
    pl_close(l);
}

START_TEST(switchover_then_kill)
{
    open_ledger();
    double a = run_case("A (pg_autoctl perform failover)", "perform-failover", NULL, 0);
    replica_check("after A");
    char killed[64] = "", cmd[96];
    double b = run_case("B (primary node SIGKILLed, monitor fails over)", "kill-primary", killed,
                        sizeof killed);
    /* the node killed in B comes back as a secondary (for later cases) */
    snprintf(cmd, sizeof cmd, "restart-node %s", killed);
    double t0 = now_s();
    ck_assert_int_eq(ctl(cmd, NULL, 0), 0);
    ck_assert_int_eq(ctl("wait-healthy", NULL, 0), 0);
    replica_check("after both failovers");
    printf("failover: %s back as secondary in %.1f s; longest gaps without a successful write: "
           "A %.2f s, B %.2f s\n", killed, now_s() - t0, a, b);
    ck_assert_msg(S.failures[0] == '\0', "%s", S.failures);
    pl_close(S.l);
    free(S.acks);
}
END_TEST

/* --- commits lost with asynchronous replication --------------------------- */

static char *sql_text(PGconn *pg, const char *sql, int n, const char *const *p)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
    char *v = PQntuples(r) ? strdup(PQgetvalue(r, 0, 0)) : strdup("");
    PQclear(r);
    return v;
}

static int insert_retry(const char *ent, const char *val, const char *key)
{
    pl_change c = tu_change(ent, "v", val);
    c.idempotency_key = key;
    int rc = PL_ECONNECT;
    for (int i = 0; i < 600 && retryable(rc); i++) {
        rc = pl_insert(NULL, S.l, &c);
        if (retryable(rc))
            tu_sleep_ms(100);
    }
    return rc;
}

static char *current_value(unsigned flags, int *origin)
{
    pl_result *r = NULL;
    char ent[64];
    snprintf(ent, sizeof ent, "fo-%s-lost", S.run);
    int rc = PL_ECONNECT;
    for (int i = 0; i < 300 && retryable(rc); i++) {
        rc = pl_current(&r, S.l, ent, "v", flags);
        if (retryable(rc))
            tu_sleep_ms(100);
    }
    ck_assert_msg(rc == PL_OK, "current: %s", pl_errmsg());
    char *v = strdup(pl_result_get(r, 0)->new_value);
    if (origin)
        *origin = pl_result_origin(r);
    pl_result_free(r);
    return v;
}

START_TEST(lost_commits_never_served)
{
    const char *off = getenv("PL_FAILOVER_LOST_COMMITS");
    if (off && strcmp(off, "0") == 0) {
        printf("failover: lost-commit case left out (PL_FAILOVER_LOST_COMMITS=0)\n");
        return;
    }
    ck_assert_int_eq(ctl("wait-healthy", NULL, 0), 0);
    open_ledger();
    char ent[64], key[64];
    snprintf(ent, sizeof ent, "fo-%s-lost", S.run);
    ck_assert_int_eq(ctl("sync-off", NULL, 0), 0);
    PGconn *pg = primary_conn();
    for (int i = 0; i < 200; i++) {
        char *s = sql_text(pg, "SELECT current_setting('synchronous_standby_names')", 0, NULL);
        int off = s[0] == '\0';
        free(s);
        if (off)
            break;
        ck_assert_msg(i < 199, "synchronous_standby_names still set");
        tu_sleep_ms(100);
    }
    snprintf(key, sizeof key, "fo-%s-lost-1", S.run);
    ck_assert_int_eq(insert_retry(ent, "1", key), PL_OK);
    /* wait until the standby replayed it */
    for (int i = 0; i < 200; i++) {
        char *s = sql_text(pg, "SELECT count(*) FROM pg_stat_replication "
                               "WHERE replay_lsn >= pg_current_wal_lsn()", 0, NULL);
        int ok = atoi(s) >= 1;
        free(s);
        if (ok)
            break;
        tu_sleep_ms(100);
    }
    PQfinish(pg);
    ck_assert_int_eq(ctl("walsender-stop", NULL, 0), 0);
    snprintf(key, sizeof key, "fo-%s-lost-2", S.run);
    ck_assert_int_eq(insert_retry(ent, "2", key), PL_OK); /* acknowledged, never replicated */
    int origin = -1;
    free(current_value(0, NULL)); /* fills the cache */
    char *before = current_value(0, &origin);
    printf("failover: lost-commit case: cached answer before the kill %s (origin %d)\n", before,
           origin);
    char out[64] = "";
    ck_assert_int_eq(ctl("kill-primary", out, sizeof out), 0);
    /* a write elsewhere lands on the new primary */
    char other[64];
    snprintf(other, sizeof other, "fo-%s-other", S.run);
    snprintf(key, sizeof key, "fo-%s-other-1", S.run);
    ck_assert_int_eq(insert_retry(other, "1", key), PL_OK);
    pg = primary_conn();
    const char *p[1] = {ent};
    char *truth = sql_text(pg, "SELECT new_value::text FROM provenance_ledger WHERE entity_id = $1 "
                               "ORDER BY transaction_time DESC, id DESC LIMIT 1", 1, p);
    PQfinish(pg);
    char *rt = current_value(PL_REALTIME, NULL);
    char *cached = current_value(0, &origin);
    printf("failover: lost-commit case: new primary says %s, PL_REALTIME %s, cached %s "
           "(origin %d)\n", truth, rt, cached, origin);
    fflush(stdout);
    ck_assert_msg(strcmp(truth, "1") == 0,
                  "setup: the commit after the walsender stop reached the standby (%s)", truth);
    ck_assert_str_eq(rt, truth);
    ck_assert_msg(strcmp(cached, truth) == 0,
                  "a cached answer from the lost timeline was served after failover: %s, "
                  "the new primary has %s", cached, truth);
    free(before);
    free(truth);
    free(rt);
    free(cached);
    pl_close(S.l);
    free(S.acks);
}
END_TEST

static Suite *failover_suite(void)
{
    Suite *s = suite_create("failover");
    TCase *tc = tcase_create("switchover_then_kill");
    tcase_set_timeout(tc, 540);
    tcase_add_test(tc, switchover_then_kill);
    suite_add_tcase(s, tc);
    tc = tcase_create("lost_commits");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, lost_commits_never_served);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *fo = getenv("PL_FO_CONNINFO");
    if (!fo || !*fo || !getenv("PL_TEST_REDIS")) {
        fprintf(stderr, "no failover formation: run inside tests/failover.sh run (skipping)\n");
        return 77;
    }
    SRunner *sr = srunner_create(failover_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
