/* Analytics: dashboard aggregates (exact: the rollup of migration 7 plus
 * its tail, or the base table while the rollup cannot answer; or
 * provenance_daily_stats for callers that accept its staleness), the
 * rollup's background step, and metadata search with keyset pagination.
 * SQL in lib/sql/statements/ (the registry, schema.h). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "result.h"
#include "cursor.h"
#include "ledger.h"
#include "table.h"
#include "validate.h"
#include "wire.h"

#define DAY_US INT64_C(86400000000)

static int check_window(pl_time from, pl_time to, unsigned flags)
{
    int rc = pl_check_query_time("from", from);
    if (!rc)
        rc = pl_check_query_time("to", to);
    if (rc)
        return rc;
    if (from != PL_TIME_NOW && from != PL_TIME_ANY && to != PL_TIME_NOW && to != PL_TIME_ANY && from > to)
        return pl_fail(PL_EINVAL, "from: must not be after to");
    if (flags & ~(unsigned)(PL_REALTIME | PL_ALLOW_STALE))
        return pl_fail(PL_EINVAL, "flags: unknown bits 0x%x", flags & ~(unsigned)(PL_REALTIME | PL_ALLOW_STALE));
    return PL_OK;
}

static int is_midnight(pl_time t)
{
    return t != PL_TIME_NOW && t != PL_TIME_ANY && t % DAY_US == 0;
}

/* The view answers whole UTC days from a midnight it covers: NULL *out
 * (and PL_OK) when it cannot, so the caller reads the base table. */
static int changes_from_view(pl_table **out, pl_ledger *l, const char *const *values)
{
    *out = NULL;
    PGresult *res;
    int rc = pl_db_run(l->db, PL_SQL_DASHBOARD_VIEW_STATE, NULL, NULL, 0, &res);
    if (rc)
        return rc;
    int usable = PQntuples(res) > 0;
    PQclear(res);
    if (!usable)
        return PL_OK;
    if ((rc = pl_db_run(l->db, PL_SQL_DASHBOARD_VIEW, values, NULL, 0, &res)))
        return rc;
    int rows = PQntuples(res), cols = PQnfields(res);
    if (rows == 0 || cols < 6 || PQgetisnull(res, 0, 5) || PQgetvalue(res, 0, 5)[0] != 't') {
        PQclear(res);
        return PL_OK; /* never refreshed, or the window starts before the view */
    }
    int64_t stale = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    pl_table *t = pl_table_from_pg(res, "tsii", 1);
    PQclear(res);
    if (!t)
        return pl_fail(PL_ENOMEM, "out of memory reading the answer");
    t->origin = PL_ORIGIN_VIEW;
    t->staleness_us = stale > 0 ? stale : 0;
    *out = t;
    return PL_OK;
}

/* The exact answer from the rollup and its tail: NULL *out (and PL_OK)
 * when the rollup cannot answer (never advanced, or a partition attached
 * since its last step), so the caller reads the base table. The
 * statement's first row says which, and when the horizon was set. */
static int from_rollup(pl_table **out, pl_ledger *l, int stmt, const char *const *values,
                       const char *kinds)
{
    *out = NULL;
    PGresult *res;
    int rc = pl_db_run(l->db, stmt, values, NULL, 0, &res);
    if (rc)
        return rc;
    int cols = PQnfields(res), usable_col = (int)strlen(kinds), horizon_col = usable_col + 1;
    if (PQntuples(res) < 1 || cols <= horizon_col || !PQgetisnull(res, 0, 0) ||
        PQgetvalue(res, 0, usable_col)[0] != 't' || PQgetisnull(res, 0, horizon_col)) {
        PQclear(res);
        return PL_OK;
    }
    pl_time horizon = (pl_time)strtoll(PQgetvalue(res, 0, horizon_col), NULL, 10);
    pl_table *t = pl_table_from_pg(res, kinds, 1);
    PQclear(res);
    if (!t)
        return pl_fail(PL_ENOMEM, "out of memory reading the answer");
    t->horizon = horizon;
    *out = t;
    return PL_OK;
}

/* Exact: the rollup when it can answer, else the base table. */
static int exact_table(pl_table **out, pl_ledger *l, int rollup_stmt, int base_stmt,
                       const char *const *values, const char *kinds)
{
    int rc = from_rollup(out, l, rollup_stmt, values, kinds);
    if (rc || *out)
        return rc;
    return pl_db_table(out, l->db, base_stmt, values, kinds);
}

static int dashboard_changes_call(pl_table **out, pl_ledger *l, pl_time from, pl_time to,
                                  const char *source_type, unsigned flags)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    int rc = check_window(from, to, flags);
    if (!rc && source_type)
        rc = pl_check_text("source_type", source_type, PL_MAX_KEY_BYTES, 1);
    if (rc)
        return rc;
    char fbuf[PL_TIME_BUFSIZE], tbuf[PL_TIME_BUFSIZE];
    const char *values[3] = {pl_time_param(fbuf, from), pl_time_param(tbuf, to), source_type};
    if ((flags & PL_ALLOW_STALE) && !(flags & PL_REALTIME) && is_midnight(from) &&
        (to == PL_TIME_NOW || to == PL_TIME_ANY || is_midnight(to))) {
        if ((rc = changes_from_view(out, l, values)))
            return rc;
        if (*out)
            return PL_OK;
    }
    return exact_table(out, l, PL_SQL_DASHBOARD_ROLLUP, PL_SQL_DASHBOARD_BASE, values, "tsii");
}

int pl_dashboard_changes(pl_table **out, pl_ledger *l, pl_time from, pl_time to,
                         const char *source_type, unsigned flags)
{
    PL_GUARD(l, dashboard_changes_call(out, l, from, to, source_type, flags));
}

static int dashboard_corrections_call(pl_table **out, pl_ledger *l, pl_time from, pl_time to, unsigned flags)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    int rc = check_window(from, to, flags);
    if (rc)
        return rc;
    char fbuf[PL_TIME_BUFSIZE], tbuf[PL_TIME_BUFSIZE];
    const char *values[2] = {pl_time_param(fbuf, from), pl_time_param(tbuf, to)};
    /* No view holds corrections: always exact. */
    return exact_table(out, l, PL_SQL_CORRECTIONS_ROLLUP, PL_SQL_CORRECTIONS, values, "ssi");
}

int pl_dashboard_corrections(pl_table **out, pl_ledger *l, pl_time from, pl_time to, unsigned flags)
{
    PL_GUARD(l, dashboard_corrections_call(out, l, from, to, flags));
}

static int rollup_advance_call(int64_t *records, pl_ledger *l)
{
    if (records)
        *records = 0;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    PGresult *res;
    int rc = pl_db_run(l->db, PL_SQL_ROLLUP_ADVANCE, NULL, NULL, 0, &res);
    if (rc)
        return rc;
    if (records && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        *records = (int64_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return PL_OK;
}

int pl_rollup_advance(int64_t *records, pl_ledger *l)
{
    PL_GUARD(l, rollup_advance_call(records, l));
}

/* ------------------------------------------------------------------------ */
/* Metadata search                                                           */
/* ------------------------------------------------------------------------ */

/* A search cursor is "v1:<transaction time us>:<id>:<check>", where check
 * is a hash of the rest and of the query text, so garbage and cursors of
 * another query are refused. */
static uint64_t fnv1a(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static uint64_t cursor_check(const char *head, size_t head_len, const char *query)
{
    uint64_t h = fnv1a(UINT64_C(14695981039346656037), head, head_len);
    return fnv1a(h, query, strlen(query));
}

static char *cursor_make(pl_time tt, int64_t id, const char *query)
{
    char head[64];
    int n = snprintf(head, sizeof head, "v1:%" PRId64 ":%" PRId64 ":", (int64_t)tt, id);
    char *out = malloc((size_t)n + 17);
    if (out) {
        memcpy(out, head, (size_t)n);
        snprintf(out + n, 17, "%016" PRIx64, cursor_check(head, (size_t)n, query));
    }
    return out;
}

static int parse_i64(const char **p, int64_t *out)
{
    const char *s = *p;
    if (*s == '-')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    long long v = strtoll(*p, &end, 10);
    if (*end != ':')
        return -1;
    *out = (int64_t)v;
    *p = end + 1;
    return 0;
}

static int cursor_parse(const char *cursor, const char *query, pl_time *tt, int64_t *id)
{
    int rc = pl_check_text("cursor", cursor, 128, 1);
    if (rc)
        return rc;
    const char *p = cursor;
    if (strncmp(p, "v1:", 3) != 0)
        return pl_fail(PL_EINVAL, "cursor: not a search cursor");
    p += 3;
    int64_t t;
    if (parse_i64(&p, &t) < 0 || parse_i64(&p, id) < 0 || pl_check_instant("cursor", t) != PL_OK)
        return pl_fail(PL_EINVAL, "cursor: not a search cursor");
    size_t head = (size_t)(p - cursor);
    char want[17];
    snprintf(want, sizeof want, "%016" PRIx64, cursor_check(cursor, head, query));
    if (strcmp(p, want) != 0)
        return pl_fail(PL_EINVAL, "cursor: not a cursor of this query");
    *tt = t;
    return PL_OK;
}

static int search_metadata_call(pl_result **out, char **next_cursor, pl_ledger *l, const char *query,
                                const char *cursor, size_t limit)
{
    if (next_cursor)
        *next_cursor = NULL;
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    int rc = pl_check_json("query", query, 1);
    if (rc)
        return rc;
    if (limit < 1 || limit > 10000)
        return pl_fail(PL_EINVAL, "limit: %zu is outside 1..10000", limit);
    pl_time after_tt = 0;
    int64_t after_id = 0;
    if (cursor && (rc = cursor_parse(cursor, query, &after_tt, &after_id)))
        return rc;
    char lim[24], tbuf[PL_TIME_BUFSIZE], idbuf[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    snprintf(idbuf, sizeof idbuf, "%" PRId64, after_id);
    const char *values[4] = {query, lim, pl_time_param(tbuf, after_tt), idbuf};
    json_t *parsed = json_loads(query, JSON_DECODE_ANY, NULL);
    int match_all = parsed && json_object_size(parsed) == 0;
    json_decref(parsed);
    pl_cursor cur;
    if ((rc = pl_cursor_open(&cur, l->db, cursor ? PL_SQL_SEARCH_NEXT : PL_SQL_SEARCH_FIRST, values,
                             match_all ? PL_SQL_SEARCH_SETUP_ALL : PL_SQL_SEARCH_SETUP)))
        return rc;
    PGresult *res;
    rc = pl_cursor_fetch(&cur, 1, &res);
    pl_cursor_close(&cur, rc == PL_OK);
    if (rc)
        return rc;
    int more = PQntuples(res) > (int)limit;
    pl_result *r = pl_result_from_pg(res, 0);
    PQclear(res);
    if (!r)
        return pl_fail(PL_EDB, "PostgreSQL returned rows this library cannot read");
    if (more && next_cursor && r->count > 0) {
        const pl_record *last = &r->records[r->count - 1];
        if (!(*next_cursor = cursor_make(last->transaction_time, last->id, query))) {
            pl_result_free(r);
            return pl_fail(PL_ENOMEM, "out of memory");
        }
    }
    *out = r;
    return PL_OK;
}

int pl_search_metadata(pl_result **out, char **next_cursor, pl_ledger *l, const char *query,
                       const char *cursor, size_t limit)
{
    PL_GUARD(l, search_metadata_call(out, next_cursor, l, query, cursor, limit));
}
