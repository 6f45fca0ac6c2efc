/* Tables (small text answers), and the plumbing shared by the operations,
 * analytics and monitoring calls: running their SQL (schema_ops.h) on a
 * pooled connection, and binary server-side cursors. */
#ifndef PL_TABLE_H
#define PL_TABLE_H

#include <jansson.h>
#include <libpq-fe.h>

#include "ledger.h"
#include "provledger.h"

/* Column kinds, one letter per column: how a text cell from PostgreSQL
 * becomes table text and JSON. */
enum {
    PL_COL_TEXT = 's', /* text as is */
    PL_COL_INT = 'i',  /* decimal integer */
    PL_COL_REAL = 'r', /* decimal number */
    PL_COL_BOOL = 'b', /* "t"/"f" -> "true"/"false" */
    PL_COL_TIME = 't'  /* int8 microseconds since 1970 -> RFC 3339 UTC */
};

struct pl_table {
    size_t rows, cols;
    int origin;           /* enum pl_origin */
    int64_t staleness_us;
    const char *kinds;    /* cols letters, in the same allocation */
    char **names;         /* cols */
    char **cells;         /* rows * cols, NULL for SQL NULL */
};

/* Builds a table from a text-format result: one column per letter of
 * kinds (further result columns are ignored), named as in the result.
 * With skip_null_first, rows whose first column is NULL are left out.
 * Returns NULL when out of memory or when kinds names more columns than
 * the result has. */
pl_table *pl_table_from_pg(const PGresult *res, const char *kinds, int skip_null_first);

/* The table as a JSON array of objects keyed by column name, typed by
 * kind; NULL when out of memory. */
json_t *pl_table_json(const pl_table *t);

/* A time as a text parameter: NULL for PL_TIME_ANY, "now" for
 * PL_TIME_NOW, else RFC 3339 in buf. */
const char *pl_time_param(char buf[PL_TIME_BUFSIZE], pl_time t);

/* How pl_ops_exec runs a statement. */
enum {
    PL_OPS_WRITE = 0, /* retried only when the request never left */
    PL_OPS_READ = 1,  /* idempotent: retried once on a fresh connection
                         when the pooled one was dead */
    PL_OPS_SLOW = 2,  /* maintenance (refresh, detach, attach, DDL): bound by
                         an hour, not by cfg.statement_timeout_ms */
    PL_OPS_HEAVY = 4  /* a long read (base-table aggregate): runs on the
                         pool's heavy share (pl_pool_acquire_heavy) */
};

/* Runs a schema_ops.h template with text parameters (NULL: SQL NULL) and
 * text results on a pooled connection; how is PL_OPS_* flags. */
int pl_ops_exec(pl_ledger *l, const char *tmpl, int nparams, const char *const *values, unsigned how,
                PGresult **out);

/* pl_ops_exec for a read (how: PL_OPS_READ plus PL_OPS_HEAVY for a long
 * one), then pl_table_from_pg. */
int pl_ops_table(pl_table **out, pl_ledger *l, const char *tmpl, int nparams,
                 const char *const *values, const char *kinds, unsigned how);

/* A binary server-side cursor over a SELECT, in a read-only transaction on
 * one pooled connection (held until pl_cursor_close). */
typedef struct pl_cursor {
    pl_ledger *l;
    pl_conn *conn;
} pl_cursor;

/* Opens the cursor. setup: extra SQL run first in the transaction (e.g.
 * SET LOCAL), or NULL. On failure nothing is held. */
int pl_cursor_open(pl_cursor *cur, pl_ledger *l, const char *select_tmpl, int nparams,
                   const char *const *values, const char *setup);

/* Fetches the next count rows ("1000", "ALL"), binary. */
int pl_cursor_fetch(pl_cursor *cur, const char *count, PGresult **out);

/* Ends the transaction (COMMIT when ok, else ROLLBACK) and returns the
 * connection. Safe to call twice. */
void pl_cursor_close(pl_cursor *cur, int ok);

#endif
