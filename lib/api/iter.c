/* Binary server-side cursors, and the audit report iterator built on one:
 * rows arrive in chunks of PL_ITER_CHUNK, so a report of any size never
 * sits in memory at once. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "result.h"
#include "schema_ops.h"
#include "table.h"
#include "validate.h"

/* Rows per FETCH: the most records an iterator holds at once. */
#define PL_ITER_CHUNK 1000
#define PL_ITER_CHUNK_TEXT "1000"

static int simple(pl_cursor *cur, const char *sql)
{
    PGresult *res;
    int phase;
    int rc = pl_exec_simple(cur->l->pool, cur->conn, sql, &res, &phase);
    PQclear(res);
    return rc;
}

static int open_on(pl_cursor *cur, const char *declare, int nparams, const char *const *values,
                   const char *setup, int *phase)
{
    PGresult *res = NULL;
    *phase = PL_PHASE_NONE;
    int rc = pl_exec_simple(cur->l->pool, cur->conn,
                            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &res, phase);
    PQclear(res);
    if (rc)
        return rc;
    if (setup && (rc = simple(cur, setup)))
        return rc;
    rc = pl_exec_text(cur->l->pool, cur->conn, declare, nparams, values, &res, phase);
    PQclear(res);
    return rc;
}

int pl_cursor_open(pl_cursor *cur, pl_ledger *l, const char *select_tmpl, int nparams,
                   const char *const *values, const char *setup)
{
    static const char prefix[] = "DECLARE pl_cursor BINARY NO SCROLL CURSOR FOR ";
    cur->l = l;
    cur->conn = NULL;
    char *select = pl_sql_expand(select_tmpl, l->cfg.schema);
    char *declare = select ? malloc(sizeof prefix + strlen(select)) : NULL;
    if (!declare) {
        free(select);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    memcpy(declare, prefix, sizeof prefix - 1);
    memcpy(declare + sizeof prefix - 1, select, strlen(select) + 1);
    free(select);
    int rc = PL_OK;
    /* A pooled connection found dead on first use is replaced once:
     * nothing has been read yet. */
    for (int attempt = 0; attempt < 2; attempt++) {
        /* A report may stay open long: it runs on the heavy share. */
        if ((rc = pl_pool_acquire_heavy(l->pool, &cur->conn)))
            break;
        int phase;
        rc = open_on(cur, declare, nparams, values, setup, &phase);
        if (rc == PL_OK)
            break;
        pl_cursor_close(cur, 0);
        if (rc != PL_ECONNECT)
            break;
    }
    free(declare);
    return rc;
}

int pl_cursor_fetch(pl_cursor *cur, const char *count, PGresult **out)
{
    char sql[64];
    snprintf(sql, sizeof sql, "FETCH FORWARD %s FROM pl_cursor", count);
    int phase;
    int rc = pl_exec_simple(cur->l->pool, cur->conn, sql, out, &phase);
    if (rc == PL_OK && PQnfields(*out) > 0 && PQfformat(*out, 0) != 1) {
        PQclear(*out);
        *out = NULL;
        rc = pl_fail(PL_EDB, "the server returned text rows from a binary cursor");
    }
    return rc;
}

void pl_cursor_close(pl_cursor *cur, int ok)
{
    if (!cur->conn)
        return;
    PGconn *pg = pl_conn_pg(cur->conn);
    if (pg && PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) != PQTRANS_IDLE) {
        /* Keep the caller's error message: closing is not what failed. */
        pl_errsave saved;
        pl_error_save(&saved);
        if (simple(cur, ok && PQtransactionStatus(pg) == PQTRANS_INTRANS ? "COMMIT" : "ROLLBACK"))
            pl_error_restore(&saved);
    }
    /* Still inside a transaction (the rollback failed): the pool drops it. */
    pl_pool_release(cur->l->pool, cur->conn);
    cur->conn = NULL;
}

/* ------------------------------------------------------------------------ */
/* The audit iterator                                                        */
/* ------------------------------------------------------------------------ */

struct pl_iter {
    pl_ledger *ledger;  /* one reference, dropped by pl_iter_free */
    pl_cursor cur;
    pl_result *chunk;   /* the records of the last FETCH */
    size_t pos;         /* next record of chunk */
    int drained;        /* the server has no more rows */
    int finished;       /* PL_ITEROVER or an error was returned */
    int status;         /* what a finished iterator returns */
};

static int audit_open_call(pl_iter **out, pl_ledger *l, const char *source_type, pl_time from, pl_time to)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    int rc = PL_OK;
    if (source_type)
        rc = pl_check_text("source_type", source_type, PL_MAX_KEY_BYTES, 1);
    if (!rc)
        rc = pl_check_query_time("from", from);
    if (!rc)
        rc = pl_check_query_time("to", to);
    if (rc)
        return rc;
    if (from != PL_TIME_NOW && from != PL_TIME_ANY && to != PL_TIME_NOW && to != PL_TIME_ANY && from > to)
        return pl_fail(PL_EINVAL, "from: must not be after to");
    pl_iter *it = calloc(1, sizeof *it);
    if (!it)
        return pl_fail(PL_ENOMEM, "out of memory");
    char fbuf[PL_TIME_BUFSIZE], tbuf[PL_TIME_BUFSIZE];
    const char *values[3] = {pl_time_param(fbuf, from), pl_time_param(tbuf, to), source_type};
    if ((rc = pl_cursor_open(&it->cur, l, pl_sql_audit, 3, values, NULL))) {
        free(it);
        return rc;
    }
    /* The iterator may outlive pl_close(): it keeps the pool its
     * connection belongs to. */
    pl_ledger_ref(l);
    it->ledger = l;
    *out = it;
    return PL_OK;
}

int pl_audit_open(pl_iter **out, pl_ledger *l, const char *source_type, pl_time from, pl_time to)
{
    PL_GUARD(l, audit_open_call(out, l, source_type, from, to));
}

/* Ends the iterator's work on the server; it keeps answering `status`. */
static int finish(pl_iter *it, int status)
{
    pl_result_free(it->chunk);
    it->chunk = NULL;
    pl_cursor_close(&it->cur, status == PL_ITEROVER);
    it->finished = 1;
    it->status = status;
    return status;
}

int pl_iter_next(const pl_record **rec, pl_iter *it)
{
    if (!rec)
        return pl_fail(PL_EINVAL, "rec: NULL");
    *rec = NULL;
    if (!it)
        return pl_fail(PL_EINVAL, "iterator: NULL");
    if (it->finished)
        return it->status;
    if (it->chunk && it->pos < it->chunk->count) {
        *rec = &it->chunk->records[it->pos++];
        return PL_OK;
    }
    /* The previous chunk is done: free it before fetching the next. */
    pl_result_free(it->chunk);
    it->chunk = NULL;
    if (it->drained)
        return finish(it, PL_ITEROVER);
    PGresult *res;
    int rc = pl_cursor_fetch(&it->cur, PL_ITER_CHUNK_TEXT, &res);
    if (rc)
        return finish(it, rc);
    int n = PQntuples(res);
    it->chunk = pl_result_from_pg(res, 0);
    PQclear(res);
    if (!it->chunk)
        return finish(it, pl_fail(PL_EDB, "PostgreSQL returned rows this library cannot read"));
    it->pos = 0;
    if (n < PL_ITER_CHUNK) {
        /* The last chunk: give the connection back now. */
        it->drained = 1;
        pl_cursor_close(&it->cur, 1);
    }
    if (it->chunk->count == 0)
        return finish(it, PL_ITEROVER);
    *rec = &it->chunk->records[it->pos++];
    return PL_OK;
}

void pl_iter_free(pl_iter *it)
{
    if (!it)
        return;
    pl_result_free(it->chunk);
    pl_cursor_close(&it->cur, 0);
    pl_ledger_unref(it->ledger);
    free(it);
}
