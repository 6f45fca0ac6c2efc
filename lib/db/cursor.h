/* Binary server-side cursors: a registry SELECT declared as a cursor in a
 * read-only, repeatable-read transaction on one connection of the pool's
 * heavy share (a db session), fetched in chunks. */
#ifndef PL_CURSOR_H
#define PL_CURSOR_H

#include <libpq-fe.h>

#include "exec.h"

/* Rows per chunk: what lib/sql/statements/pl_cursor_fetch.sql fetches. */
#define PL_CURSOR_CHUNK 1000

typedef struct pl_cursor {
    pl_db_session session;
} pl_cursor;

/* Opens a cursor over registry SELECT select_stmt with text parameters
 * (as many as the statement declares), after running setup_stmt in the
 * transaction (-1: none; e.g. SET LOCAL). On failure nothing is held. */
int pl_cursor_open(pl_cursor *cur, pl_db *db, int select_stmt, const char *const *values,
                   int setup_stmt);

/* Declares the binary cursor "pl_cursor" over registry SELECT select_stmt
 * inside the open transaction of session s (text parameters); fetch it
 * with PL_SQL_CURSOR_FETCH, end it with PL_SQL_CURSOR_CLOSE. */
int pl_cursor_declare(pl_db_session *s, int select_stmt, const char *const *values);

enum pl_cursor_flags {
    /* Ask for the next chunk before fn gets this one, so the server reads
     * while fn works (at most two chunks in memory). fn must then run no
     * statement on the session (one would fail: a FETCH is pending). */
    PL_CURSOR_AHEAD = 1u << 0
};

/* Feeds the chunks of the cursor pl_cursor_declare opened on s to fn
 * (which returns 0 to go on, 1 to stop, or an error) until it is drained,
 * then closes it. Returns fn's error or the server's, else PL_OK; on any
 * return nothing is pending on s. flags: enum pl_cursor_flags. */
int pl_cursor_each(pl_db_session *s, unsigned flags, int (*fn)(void *ctx, const PGresult *chunk),
                   void *ctx);

/* The next PL_CURSOR_CHUNK rows, or with all every row left; binary.
 * After a full chunk the next is already asked for (the server reads it
 * while the caller works); pl_cursor_close collects it if it is never
 * fetched. A failure is the server's or the connection's, exact. */
int pl_cursor_fetch(pl_cursor *cur, int all, PGresult **out);

/* Collects a chunk asked for ahead, ends the transaction (COMMIT when ok
 * and nothing failed, else ROLLBACK) and returns the connection, keeping
 * the caller's error message. Safe to call twice. */
void pl_cursor_close(pl_cursor *cur, int ok);

#endif
