/* Shared helpers of the Check suites: real servers from tests/servers.sh,
 * a private schema and cache prefix per test process, raw SQL for asserting
 * what the database holds. */
#ifndef PL_TESTUTIL_H
#define PL_TESTUTIL_H

#include <check.h>
#include <libpq-fe.h>
#include <provledger.h>
#include <stdint.h>

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

/* Opens a migrated ledger with cfg in an empty schema: drops tu_schema()
 * first (under CK_FORK=no the tests of a process share one schema). */
pl_ledger *tu_open_fresh(const pl_config *cfg);
/* tu_open_fresh with tu_config(with_cache) and allow_import. */
pl_ledger *tu_open_new(int with_cache, int allow_import);

/* Runs SQL on PL_TEST_PG (search_path = this process's schema); returns
 * the first column of the first row as a malloc'd string (NULL for none);
 * fails the test on an SQL error unless allow_error, in which case the
 * SQLSTATE is stored in *state (may be NULL). */
char *tu_sql(const char *sql, int allow_error, char state[6]);
long long tu_sql_ll(const char *sql);

/* --- raw libpq connections ------------------------------------------- */

/* A connection to conninfo with search_path = schema and notices ignored;
 * fails the test when either does not work. */
PGconn *tu_db_open(const char *conninfo, const char *schema);

/* tu_db_open(PL_TEST_PG, tu_schema()). */
PGconn *tu_raw_open(void);

/* Runs SQL with text parameters; fails the test unless it succeeds. */
PGresult *tu_raw_q(PGconn *pg, const char *sql, int n, const char *const *params);
void tu_raw_exec(PGconn *pg, const char *sql);

/* First column of the first row as a number (the query must return one). */
long long tu_raw_ll(PGconn *pg, const char *sql, int n, const char *const *params);

/* One number from SQL with one text parameter (none when param is NULL),
 * on a fresh tu_raw_open() connection. */
long long tu_q1(const char *sql, const char *param);

/* Polls SQL (up to `tries` times, step_ms apart) until the first column of
 * its first row is a non-zero number; returns it, or 0 when it never was
 * (no row and NULL count as 0). */
long long tu_wait_ll(PGconn *pg, const char *sql, int n, const char *const *params, int tries,
                     int step_ms);

/* --- waiting for what is observed, not for a while --------------------- */

/* Polls cond(arg) (every step_ms) until it returns non-zero or timeout_ms
 * passed; returns its last value (0: the deadline passed first). */
int tu_wait_for(int (*cond)(void *), void *arg, double timeout_ms, double step_ms);

/* Waits until at least n sessions wait for a lock (pg_stat_activity
 * wait_event_type 'Lock') that backend blocker_pid holds, directly or
 * through other waiters (pg_blocking_pids), as seen by a connection of its
 * own (pg_stat_activity is a snapshot per transaction, so the observer must
 * not be a session inside one). Returns how many were seen, which is below
 * n only when timeout_ms passed first. */
int tu_wait_until_blocked(int blocker_pid, int n, double timeout_ms);

/* --- small things ----------------------------------------------------- */

/* Sleeps ms milliseconds (fractions allowed), also across signals. */
void tu_sleep_ms(double ms);

/* A change of entity.field = value (JSON text), source_type "test",
 * everything else as PL_CHANGE_INIT. */
pl_change tu_change(const char *entity, const char *field, const char *value);

/* Deterministic 64-bit generator (splitmix64). */
uint64_t tu_rand64(uint64_t *state);

/* The first column of every row of r, one per line (an EXPLAIN plan), as a
 * malloc'd string. */
char *tu_result_lines(const PGresult *r);

/* A pl_table as "a/b/c;a/b/c;" (NULL cells as "NULL"), for comparisons;
 * free() it. */
char *tu_table_text(const pl_table *t);

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
