/* Binary server-side cursors (see cursor.h). */
#include "cursor.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "provledger.h"

static int run(pl_cursor *cur, int stmt)
{
    PGresult *res = NULL;
    int rc = pl_db_session_run(&cur->session, stmt, NULL, NULL, &res);
    PQclear(res);
    return rc;
}

int pl_cursor_declare(pl_db_session *s, int select_stmt, const char *const *values)
{
    static const char prefix[] = "DECLARE pl_cursor BINARY NO SCROLL CURSOR FOR ";
    const char *select = pl_db_sql(s->db, select_stmt);
    char *declare = malloc(sizeof prefix + strlen(select));
    if (!declare)
        return pl_fail(PL_ENOMEM, "out of memory");
    memcpy(declare, prefix, sizeof prefix - 1);
    memcpy(declare + sizeof prefix - 1, select, strlen(select) + 1);
    PGresult *res = NULL;
    int rc = pl_db_session_text(s, select_stmt, declare, pl_sql_registry[select_stmt].nparams, values, &res);
    PQclear(res);
    free(declare);
    return rc;
}

/* Asks for the next chunk without waiting for it: the server reads it
 * while the caller works on the last one. */
static int prefetch(pl_db_session *s)
{
    return pl_db_session_send(s, PL_SQL_CURSOR_FETCH, NULL, NULL);
}

static int binary_rows(PGresult **res)
{
    if (PQnfields(*res) > 0 && PQfformat(*res, 0) != 1) {
        PQclear(*res);
        *res = NULL;
        return pl_fail(PL_EDB, "the server returned text rows from a binary cursor");
    }
    return PL_OK;
}

int pl_cursor_each(pl_db_session *s, unsigned flags, int (*fn)(void *ctx, const PGresult *chunk),
                   void *ctx)
{
    int ahead = (flags & PL_CURSOR_AHEAD) != 0;
    int rc = ahead ? prefetch(s) : PL_OK;
    while (rc == PL_OK) {
        PGresult *chunk = NULL;
        if (ahead)
            rc = pl_db_session_receive(s, &chunk);
        else
            rc = pl_db_session_run(s, PL_SQL_CURSOR_FETCH, NULL, NULL, &chunk);
        if (rc || (rc = binary_rows(&chunk)))
            break;
        int more = PQntuples(chunk) >= PL_CURSOR_CHUNK;
        if (ahead && more && (rc = prefetch(s))) {
            PQclear(chunk);
            break;
        }
        rc = fn(ctx, chunk);
        PQclear(chunk);
        if (rc || !more)
            break;
    }
    if (rc < 0) {
        pl_db_session_drain(s); /* the caller rolls back */
        return rc;
    }
    /* fn stopped early: the chunk asked for ahead still arrives, and a
     * failure in it is this call's. */
    if (pl_db_session_pending(s) && (rc = pl_db_session_receive(s, NULL)))
        return rc;
    return pl_db_session_run(s, PL_SQL_CURSOR_CLOSE, NULL, NULL, NULL);
}

int pl_cursor_open(pl_cursor *cur, pl_db *db, int select_stmt, const char *const *values,
                   int setup_stmt)
{
    memset(cur, 0, sizeof *cur);
    /* A connection found dead by the BEGIN is replaced (db/exec.c). */
    int rc = pl_db_session_begin(&cur->session, db, PL_CLASS_HEAVY, PL_SQL_TX_READ_SNAPSHOT);
    if (rc == PL_OK && setup_stmt >= 0)
        rc = run(cur, setup_stmt);
    if (rc == PL_OK)
        rc = pl_cursor_declare(&cur->session, select_stmt, values);
    if (rc && cur->session.conn)
        pl_cursor_close(cur, 0);
    return rc;
}

int pl_cursor_fetch(pl_cursor *cur, int all, PGresult **out)
{
    *out = NULL;
    pl_db_session *s = &cur->session;
    int rc;
    if (pl_db_session_pending(s))
        rc = all ? pl_fail(PL_EDB, "internal: FETCH ALL behind a prefetched chunk")
                 : pl_db_session_receive(s, out);
    else
        rc = pl_db_session_run(s, all ? PL_SQL_CURSOR_FETCH_ALL : PL_SQL_CURSOR_FETCH, NULL, NULL,
                               out);
    if (rc == PL_OK)
        rc = binary_rows(out);
    if (rc == PL_OK && !all && PQntuples(*out) >= PL_CURSOR_CHUNK && (rc = prefetch(s))) {
        PQclear(*out);
        *out = NULL;
    }
    return rc;
}

void pl_cursor_close(pl_cursor *cur, int ok)
{
    if (!cur->session.conn)
        return;
    /* A chunk asked for ahead (closed early): collected, so the connection
     * goes back clean; one that failed fails the transaction, rolled back. */
    pl_db_session_drain(&cur->session);
    if (pl_db_session_in_transaction(&cur->session)) {
        /* Keep the caller's error message: closing is not what failed. */
        pl_errsave saved;
        pl_error_save(&saved);
        int commit = ok && !pl_db_session_failed(&cur->session);
        if (run(cur, commit ? PL_SQL_TX_COMMIT : PL_SQL_TX_ROLLBACK))
            pl_error_restore(&saved);
    }
    /* Still inside a transaction (the rollback failed): the pool drops it. */
    pl_db_session_close(&cur->session);
}
