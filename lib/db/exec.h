/* The one way the library runs a statement on PostgreSQL. A pl_db is the
 * PostgreSQL side of a ledger handle: the primary's pool, the replica's
 * (optional), every registry statement expanded for the handle's schema
 * (once, at open), and the latency metrics. pl_db_run owns what every
 * statement needs: the pool share its class takes, its deadline, the retry
 * rules (one table, by class), and its metrics; the pool maps SQLSTATEs
 * (sqlstate.h). Sessions hold one connection for statements that share a
 * transaction (cursors, migrations) and go through the same path. */
#ifndef PL_EXEC_H
#define PL_EXEC_H

#include <libpq-fe.h>
#include <stdint.h>

#include "metrics.h"
#include "pool.h"
#include "schema.h"

typedef struct pl_db pl_db;

typedef struct pl_db_config {
    const char *conninfo;
    const char *replica_conninfo; /* NULL: none */
    const char *schema;
    unsigned int pool_size;
    unsigned int wait_timeout_ms;
    unsigned int statement_timeout_ms;
    unsigned int connect_timeout_ms;
    unsigned int keepalives_idle_s;
    int prepare; /* enum pl_prepare_mode */
} pl_db_config;

/* Opens the pools (one connection to the primary to prove it answers; the
 * replica lazily) and expands the registry. PL_ECONNECT, PL_ENOMEM. */
int pl_db_open(pl_db **out, const pl_db_config *cfg);
void pl_db_close(pl_db *db);

/* Closes the replica's pool (the handle is closing, iterators keep the
 * primary's). */
void pl_db_drop_replica(pl_db *db);
int pl_db_has_replica(const pl_db *db);

enum pl_run_flags {
    PL_RUN_REPLICA = 1u << 0,    /* on the replica's pool */
    PL_RUN_IDEMPOTENT = 1u << 1  /* a write that may run twice (every change
                                    keyed): retried once when the connection
                                    broke after it was sent */
};

/* Runs registry statement stmt (enum pl_sql_id) with its parameters
 * (values may be NULL for SQL NULL, lengths for binary parameters only),
 * retrying as its class allows:
 *   - a request that never left, and a transaction the server rolled back
 *     (deadlock, serialization), run again (up to 4 times in all);
 *   - a read whose connection broke after it was sent runs again once;
 *   - a write whose connection broke after it was sent, or whose answer
 *     and cancel both went unanswered past the deadline, is PL_EUNKNOWN
 *     (unless PL_RUN_IDEMPOTENT: then it runs again once);
 *   - maintenance is never sent twice.
 * Heavy and maintenance statements take the pool's heavy share, and
 * maintenance has an hour instead of the statement deadline. */
int pl_db_run(pl_db *db, int stmt, const char *const *values, const int *lengths, unsigned flags,
              PGresult **out);

/* One connection held for statements of one transaction. */
typedef struct pl_db_session {
    pl_db *db;
    pl_conn *conn;
    int cls; /* enum pl_sql_class it was opened for */
    int sent_stmt;    /* the statement pl_db_session_send sent, -1: none */
    uint64_t sent_us; /* how long its send took (its metrics) */
} pl_db_session;

/* Takes a connection for a session of class cls (its share and deadline)
 * and runs the session's first statement, begin_stmt (a BEGIN), with that
 * statement's retry rules: a connection found dead by it is replaced, as
 * for a single statement; later statements of the session are the
 * caller's transaction and never run twice. Nothing is held on failure. */
int pl_db_session_begin(pl_db_session *s, pl_db *db, int cls, int begin_stmt);
/* Runs registry statement stmt on the session's connection (no retry: the
 * transaction is the caller's); metrics recorded. out may be NULL when
 * the rows are not wanted. */
int pl_db_session_run(pl_db_session *s, int stmt, const char *const *values, const int *lengths,
                      PGresult **out);
/* pl_db_session_run in two halves, so the server computes the next
 * answer while the caller works on the last (cursor prefetch): send
 * returns once the statement left; receive waits for its result, with
 * pl_db_session_run's results and errors (out may be NULL). One statement
 * may be pending at a time; any other statement on the session fails until
 * it is received. The metrics count the send and the wait. */
int pl_db_session_send(pl_db_session *s, int stmt, const char *const *values, const int *lengths);
int pl_db_session_receive(pl_db_session *s, PGresult **out);
/* Whether a statement sent on the session awaits pl_db_session_receive. */
int pl_db_session_pending(const pl_db_session *s);
/* Collects and discards a pending result, keeping the caller's error
 * message (an iterator closed early). A failed one leaves the transaction
 * failed or the connection broken, as pl_db_session_failed then says. */
void pl_db_session_drain(pl_db_session *s);
/* Runs text built from registry texts (a migration script, a DECLARE
 * around a registry SELECT), counted under stmt in the metrics. With
 * nparams > 0 the values are text parameters; without, the simple
 * protocol runs it (several statements allowed). */
int pl_db_session_text(pl_db_session *s, int stmt, const char *sql, int nparams,
                       const char *const *values, PGresult **out);
/* Returns the connection (the pool drops it if a transaction is still
 * open). Safe to call twice. */
void pl_db_session_close(pl_db_session *s);
/* Rolls back a transaction still open (keeping the caller's error
 * message), then pl_db_session_close. */
void pl_db_session_rollback_close(pl_db_session *s);
/* Whether the session's connection is inside a transaction (and usable). */
int pl_db_session_in_transaction(const pl_db_session *s);
/* Whether the session's transaction failed (an error inside it). */
int pl_db_session_failed(const pl_db_session *s);

/* The expanded text of registry statement stmt. */
const char *pl_db_sql(const pl_db *db, int stmt);
const char *pl_db_schema(const pl_db *db);

/* A dedicated connection outside the pool, with the pool's settings (the
 * cache's LISTEN). NULL with *rc set on failure. */
PGconn *pl_db_connect(pl_db *db, int *rc);

/* Counters of both pools (queries and reconnects summed). */
void pl_db_counters(pl_db *db, pl_pool_counters *primary, pl_pool_counters *replica);

/* The latency metrics of every statement (and the cache's hits). */
pl_metrics *pl_db_metrics(pl_db *db);

#endif
