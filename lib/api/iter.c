/* The iterators (the audit report, history, range), built on a binary
 * server-side cursor (db/cursor.h): rows arrive in chunks of
 * PL_CURSOR_CHUNK, so an answer of any size never sits in memory at once.
 * The cursor asks for the next chunk when it hands out a full one, so the
 * server reads while the caller works through the current chunk; freeing
 * the iterator early collects that chunk before the connection returns. */
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "error.h"
#include "ledger.h"
#include "page.h"
#include "result.h"
#include "validate.h"
#include "wire.h"

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

/* An iterator over registry SELECT stmt with text parameters. */
static int iter_start(pl_iter **out, pl_ledger *l, int stmt, const char *const *values)
{
    pl_iter *it = calloc(1, sizeof *it);
    if (!it)
        return pl_fail(PL_ENOMEM, "out of memory");
    int rc = pl_cursor_open(&it->cur, l->db, stmt, values, -1);
    if (rc) {
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
    char fbuf[PL_TIME_BUFSIZE], tbuf[PL_TIME_BUFSIZE];
    const char *values[3] = {pl_time_param(fbuf, from), pl_time_param(tbuf, to), source_type};
    return iter_start(out, l, PL_SQL_AUDIT, values);
}

int pl_audit_open(pl_iter **out, pl_ledger *l, const char *source_type, pl_time from, pl_time to)
{
    PL_GUARD(l, audit_open_call(out, l, source_type, from, to));
}

/* ------------------------------------------------------------------------ */
/* History and range iterators                                               */
/* ------------------------------------------------------------------------ */

/* The page statement of the question (page.h), unlimited, as a cursor. */
static int keyset_open_call(pl_iter **out, pl_ledger *l, int range, const char *entity_id,
                            const char *field_name, pl_time from, pl_time to, unsigned flags)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    pl_page_query q;
    int rc = pl_page_query_init(&q, range, entity_id, field_name, from, to, flags);
    /* Settled on a connection of its own before the cursor's snapshot is
     * taken: the snapshot then holds every writer that was in flight. */
    if (!rc)
        rc = pl_page_settle(l, &q);
    if (rc)
        return rc;
    pl_page_params p;
    pl_page_params_fill(&p, &q, 0, 0, 0, 0);
    return iter_start(out, l, q.stmt, p.values);
}

int pl_history_open(pl_iter **out, pl_ledger *l, const char *entity_id, const char *field_name,
                    unsigned flags)
{
    PL_GUARD(l, keyset_open_call(out, l, 0, entity_id, field_name, PL_TIME_ANY, PL_TIME_ANY, flags));
}

int pl_range_open(pl_iter **out, pl_ledger *l, const char *entity_id, const char *field_name, pl_time from,
                  pl_time to, unsigned flags)
{
    PL_GUARD(l, keyset_open_call(out, l, 1, entity_id, field_name, from, to, flags));
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
    int rc = pl_cursor_fetch(&it->cur, 0, &res);
    if (rc)
        return finish(it, rc);
    int n = PQntuples(res);
    it->chunk = pl_result_from_pg(res, 0);
    PQclear(res);
    if (!it->chunk)
        return finish(it, pl_fail(PL_EDB, "PostgreSQL returned rows this library cannot read"));
    it->pos = 0;
    if (n < PL_CURSOR_CHUNK) {
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
