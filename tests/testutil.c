/* Test helpers (see testutil.h). */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char schema[64];
static pid_t schema_pid;
static char prefix[80];

void tu_require_servers(void)
{
    const char *pg = getenv("PL_TEST_PG");
    if (!pg || !*pg) {
        fprintf(stderr, "PL_TEST_PG is not set: run the suite with ./dev.sh test (skipping)\n");
        exit(77);
    }
}

const char *tu_schema(void)
{
    /* Check forks each test: a schema per process keeps tests apart. */
    if (schema_pid != getpid()) {
        static unsigned seq;
        schema_pid = getpid();
        snprintf(schema, sizeof schema, "t_%ld_%u_%ld", (long)getpid(), seq++, (long)time(NULL) % 100000);
        snprintf(prefix, sizeof prefix, "test:%s:", schema);
    }
    return schema;
}

void tu_config(pl_config *cfg, int with_cache)
{
    pl_config_init(cfg);
    cfg->pg_conninfo = getenv("PL_TEST_PG");
    cfg->schema = tu_schema();
    cfg->cache_key_prefix = prefix;
    cfg->redis_url = with_cache ? getenv("PL_TEST_REDIS") : NULL;
}

pl_ledger *tu_open_cfg(const pl_config *cfg)
{
    pl_ledger *l = NULL;
    tu_ok(pl_open(&l, cfg));
    tu_ok(pl_migrate(l));
    return l;
}

pl_ledger *tu_open(int with_cache)
{
    pl_config cfg;
    tu_config(&cfg, with_cache);
    return tu_open_cfg(&cfg);
}

static void ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

pl_ledger *tu_open_fresh(const pl_config *cfg)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", tu_schema());
    free(tu_sql(sql, 0, NULL));
    return tu_open_cfg(cfg);
}

pl_ledger *tu_open_new(int with_cache, int allow_import)
{
    pl_config cfg;
    tu_config(&cfg, with_cache);
    cfg.allow_import = allow_import;
    return tu_open_fresh(&cfg);
}

PGconn *tu_db_open(const char *conninfo, const char *schema)
{
    PGconn *pg = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    PQsetNoticeProcessor(pg, ignore_notice, NULL);
    const char *v[1] = {schema};
    PGresult *r = PQexecParams(pg, "SELECT set_config('search_path', $1, false)", 1, NULL, v, NULL,
                               NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "search_path: %s", PQerrorMessage(pg));
    PQclear(r);
    return pg;
}

PGconn *tu_raw_open(void)
{
    return tu_db_open(getenv("PL_TEST_PG"), tu_schema());
}

PGresult *tu_raw_q(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "SQL failed: %s\n%s", sql,
                  PQerrorMessage(pg));
    return r;
}

void tu_raw_exec(PGconn *pg, const char *sql)
{
    PQclear(tu_raw_q(pg, sql, 0, NULL));
}

long long tu_raw_ll(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *r = tu_raw_q(pg, sql, n, params);
    ck_assert_msg(PQntuples(r) >= 1 && !PQgetisnull(r, 0, 0), "no value from: %s", sql);
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

long long tu_q1(const char *sql, const char *param)
{
    PGconn *pg = tu_raw_open();
    const char *p[1] = {param};
    long long v = tu_raw_ll(pg, sql, param ? 1 : 0, p);
    PQfinish(pg);
    return v;
}

long long tu_wait_ll(PGconn *pg, const char *sql, int n, const char *const *params, int tries,
                     int step_ms)
{
    for (int i = 0; i < tries; i++) {
        PGresult *r = tu_raw_q(pg, sql, n, params);
        long long v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? atoll(PQgetvalue(r, 0, 0)) : 0;
        PQclear(r);
        if (v)
            return v;
        tu_sleep_ms(step_ms);
    }
    return 0;
}

int tu_wait_for(int (*cond)(void *), void *arg, double timeout_ms, double step_ms)
{
    double deadline = tu_now_ms() + timeout_ms;
    int v;
    while (!(v = cond(arg)) && tu_now_ms() < deadline)
        tu_sleep_ms(step_ms);
    return v;
}

typedef struct blocked_query {
    PGconn *pg;
    const char *params[1];
    int n;
    int seen;
} blocked_query;

static int enough_blocked(void *arg)
{
    blocked_query *q = arg;
    /* Everyone waiting for a lock behind the blocker, and behind those. */
    PGresult *r = tu_raw_q(q->pg,
                           "WITH RECURSIVE w(pid) AS ("
                           "  SELECT pid FROM pg_stat_activity"
                           "   WHERE wait_event_type = 'Lock' AND $1::int = ANY (pg_blocking_pids(pid))"
                           "  UNION"
                           "  SELECT a.pid FROM pg_stat_activity a JOIN w ON w.pid = ANY (pg_blocking_pids(a.pid))"
                           "   WHERE a.wait_event_type = 'Lock')"
                           " SELECT count(*) FROM w",
                           1, q->params);
    q->seen = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return q->seen >= q->n;
}

int tu_wait_until_blocked(int blocker_pid, int n, double timeout_ms)
{
    char pid[16];
    snprintf(pid, sizeof pid, "%d", blocker_pid);
    blocked_query q = {tu_raw_open(), {pid}, n, 0};
    tu_wait_for(enough_blocked, &q, timeout_ms, 5);
    PQfinish(q.pg);
    return q.seen;
}

void tu_sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

pl_change tu_change(const char *entity, const char *field, const char *value)
{
    pl_change c = PL_CHANGE_INIT;
    c.entity_id = entity;
    c.field_name = field;
    c.new_value = value;
    c.source_type = "test";
    return c;
}

uint64_t tu_rand64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

char *tu_sql(const char *sql, int allow_error, char state[6])
{
    PGconn *pg = tu_raw_open();
    PGresult *r = PQexec(pg, sql);
    char *out = NULL;
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!allow_error)
            ck_abort_msg("SQL failed: %s\n%s", sql, PQerrorMessage(pg));
        if (state)
            snprintf(state, 6, "%s", code ? code : "?????");
    } else {
        if (state)
            state[0] = '\0';
        if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
            out = strdup(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(pg);
    return out;
}

long long tu_sql_ll(const char *sql)
{
    char *v = tu_sql(sql, 0, NULL);
    ck_assert_msg(v != NULL, "no value from: %s", sql);
    long long n = atoll(v);
    free(v);
    return n;
}

int tu_ctl(const char *action)
{
    const char *ctl = getenv("PL_TEST_CTL");
    ck_assert_msg(ctl && *ctl, "PL_TEST_CTL is not set");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "\"%s\" ctl %s >/dev/null 2>&1", ctl, action);
    return system(cmd);
}

/* Every test gets a schema and cache prefix of its own, also when Check
 * runs the tests in one process (CK_FORK=no, as under valgrind). */
static void fresh_schema(void)
{
    schema_pid = 0;
}

TCase *tu_tcase(const char *name, double timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s);
    tcase_add_checked_fixture(tc, fresh_schema, NULL);
    return tc;
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

double tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

char *tu_result_lines(const PGresult *r)
{
    size_t total = 1;
    for (int i = 0; i < PQntuples(r); i++)
        total += strlen(PQgetvalue(r, i, 0)) + 1;
    char *out = malloc(total);
    ck_assert_msg(out != NULL, "out of memory");
    out[0] = '\0';
    for (int i = 0; i < PQntuples(r); i++) {
        strcat(out, PQgetvalue(r, i, 0));
        strcat(out, "\n");
    }
    return out;
}

char *tu_table_text(const pl_table *t)
{
    size_t cap = 256, len = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    s[0] = '\0';
    for (size_t r = 0; r < pl_table_rows(t); r++)
        for (size_t c = 0; c < pl_table_cols(t); c++) {
            const char *v = pl_table_value(t, r, c);
            v = v ? v : "NULL";
            size_t need = len + strlen(v) + 2;
            if (need >= cap) {
                cap = need * 2;
                s = realloc(s, cap);
                ck_assert_ptr_nonnull(s);
            }
            len += (size_t)sprintf(s + len, "%s%s", v, c + 1 < pl_table_cols(t) ? "/" : ";");
        }
    return s;
}
