/* Shared helpers of the Check suites: real servers from tests/servers.sh,
 * a private schema and cache prefix per test process, raw SQL for asserting
 * what the database holds. */
#ifndef PL_TESTUTIL_H
#define PL_TESTUTIL_H

#include <check.h>
#include <libpq-fe.h>
#include <provledger.h>

/* Exits 77 (skip) unless the servers of the README's test command are up:
 * outside `./dev.sh test` there is nothing to test against. */
void tu_require_servers(void);

/* A config for this process: PL_TEST_PG, a schema and cache key prefix no
 * other test process uses, Redis when with_cache. */
void tu_config(pl_config *cfg, int with_cache);

/* Opens and migrates a ledger with tu_config; fails the test on error. */
pl_ledger *tu_open(int with_cache);
pl_ledger *tu_open_cfg(const pl_config *cfg);

/* The schema name tu_config chose for this process. */
const char *tu_schema(void);

/* Runs SQL on PL_TEST_PG (search_path = this process's schema); returns
 * the first column of the first row as a malloc'd string (NULL for none);
 * fails the test on an SQL error unless allow_error, in which case the
 * SQLSTATE is stored in *state (may be NULL). */
char *tu_sql(const char *sql, int allow_error, char state[6]);
long long tu_sql_ll(const char *sql);

/* Runs "$PL_TEST_CTL" ctl ACTION; returns its exit status. */
int tu_ctl(const char *action);

/* A test case with a generous timeout (Check's default is 4 s). */
TCase *tu_tcase(const char *name, double timeout_s);

/* Runs the suite; returns the process exit status. */
int tu_run(Suite *s);

/* Monotonic milliseconds. */
double tu_now_ms(void);

#define tu_ok(expr)                                                                  \
    do {                                                                             \
        int rc_ = (expr);                                                            \
        ck_assert_msg(rc_ == PL_OK, "%s -> %d (%s): %s", #expr, rc_, pl_strerror(rc_), \
                      pl_errmsg());                                                  \
    } while (0)

#endif
