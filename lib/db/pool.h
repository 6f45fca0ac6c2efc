/* A pool of PostgreSQL connections with named statements prepared per
 * connection, client-side statement deadlines and broken-connection
 * replacement. Knows libpq, nothing of Redis or of the ledger's meaning. */
#ifndef PL_POOL_H
#define PL_POOL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>

#include "schema.h"

typedef struct pl_conn pl_conn;

typedef struct pl_pool_config {
    const char *conninfo;
    unsigned int size;
    unsigned int wait_timeout_ms;
    unsigned int statement_timeout_ms;
    unsigned int connect_timeout_ms;
    unsigned int keepalives_idle_s;
    int prepare; /* enum pl_prepare_mode */
    int lazy;    /* do not connect in pl_pool_create (optional servers) */
} pl_pool_config;

typedef struct pl_pool pl_pool;

typedef struct pl_pool_counters {
    uint64_t queries, waits, wait_us, reconnects;
    unsigned int open;
} pl_pool_counters;

/* Creates a pool and, unless cfg->lazy, opens one connection to prove the
 * server answers.
 * Returns PL_OK, PL_ECONNECT (message from libpq), PL_ENOMEM, PL_EINVAL. */
int pl_pool_create(pl_pool **out, const pl_pool_config *cfg);
void pl_pool_destroy(pl_pool *p);

/* Takes a connection, waiting up to the wait timeout (PL_ETIMEOUT), and
 * connecting lazily (PL_ECONNECT). Waiters are served in arrival order. */
int pl_pool_acquire(pl_pool *p, pl_conn **out);
/* The same for a long call (base-table aggregate, report cursor,
 * maintenance): at most half the pool (at least one connection) serves
 * such calls at once, so short reads and writes always find the rest. */
int pl_pool_acquire_heavy(pl_pool *p, pl_conn **out);
/* Gives it back; a broken connection is closed and replaced later. */
void pl_pool_release(pl_pool *p, pl_conn *c);

/* How a failed call ended, for deciding whether a retry is safe. */
enum pl_exec_phase {
    PL_PHASE_NONE = 0, /* nothing failed */
    PL_PHASE_SEND,     /* the request never left: safe to retry anywhere */
    PL_PHASE_RESULT,   /* sent, then the connection broke: outcome unknown */
    PL_PHASE_RETRY     /* the server rolled back a deadlock or serialization
                          failure: the whole call may simply run again */
};

/* A statement as the pool runs it (db/exec.c fills this from the
 * registry). */
#define PL_POOL_MAX_PARAMS 12
typedef struct pl_pool_stmt {
    int id;                    /* registry id: prepared once per connection
                                  under this name; -1: never prepared */
    const char *name;          /* prepared statement name */
    const char *sql;           /* expanded text */
    int nparams;               /* at most PL_POOL_MAX_PARAMS */
    const unsigned int *types; /* nparams type OIDs (0: the server infers) */
    int params_binary;         /* values are binary (with lengths) or text */
    int result_binary;         /* results in binary or text */
} pl_pool_stmt;

/* Runs one statement on c (values may be NULL for SQL NULL; lengths only
 * for binary parameters). On success *out holds a PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK result for the caller to PQclear. Errors are mapped to
 * PL_* codes through the SQLSTATE table (sqlstate.h) with pl_errmsg() set;
 * *phase says where a failure happened. */
int pl_conn_exec(pl_pool *p, pl_conn *c, const pl_pool_stmt *st, const char *const *values,
                 const int *lengths, PGresult **out, int *phase);

/* pl_conn_exec in two halves, so the server computes while the caller
 * works: pl_conn_send sends the statement (within the deadline) and
 * returns; pl_conn_receive waits for its final result (the deadline counts
 * from the call) with the same results and errors as pl_conn_exec. One
 * statement at a time may be pending; a connection released with one
 * pending is closed, never handed to the next caller. */
int pl_conn_send(pl_pool *p, pl_conn *c, const pl_pool_stmt *st, const char *const *values,
                 const int *lengths, int *phase);
int pl_conn_receive(pl_pool *p, pl_conn *c, PGresult **out, int *phase);
/* Whether a statement was sent on c and its result not collected. */
int pl_conn_pending(const pl_conn *c);

/* Runs a script of statements without parameters in the simple protocol
 * (migrations). */
int pl_conn_exec_script(pl_pool *p, pl_conn *c, const char *sql, PGresult **out, int *phase);

/* Overrides the statement deadline for this connection (0: the pool's),
 * for work that is allowed to be slow, such as migrations. */
void pl_conn_set_timeout(pl_conn *c, unsigned timeout_ms);

/* The raw connection, for LISTEN and similar dedicated uses. */
PGconn *pl_conn_pg(pl_conn *c);

/* Marks every idle connection suspect: after a server restart all of them
 * are dead, so they are reopened instead of failing one call each. */
void pl_pool_suspect_all(pl_pool *p);

void pl_pool_counters_get(pl_pool *p, pl_pool_counters *out);

/* Opens a standalone connection with the pool's settings (not pooled). */
PGconn *pl_pool_connect_raw(pl_pool *p, int *rc);

#endif
