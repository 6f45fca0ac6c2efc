/* Reads: check arguments, try the cache, read PostgreSQL, build one
 * immutable result, fill the cache when that is safe. */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "error.h"
#include "ledger.h"
#include "result.h"
#include "validate.h"
#include "wire.h"

#define MAXP 4

/* One read, described before it runs. */
typedef struct query {
    int stmt;
    int nparams;
    const char *values[MAXP];
    int lengths[MAXP];
    char times[MAXP][8];
    int empty_is_not_found; /* point answers: nothing visible is PL_NOT_FOUND */
    int has_boundary;       /* an extra last column: next valid-time boundary */
    int cacheable;
    pl_buf field;           /* cache field: which answer of the entity */
} query;

static void add_text(query *q, const char *s)
{
    q->values[q->nparams] = s;
    q->lengths[q->nparams] = (int)strlen(s);
    q->nparams++;
}

/* PL_TIME_NOW travels as NULL: the statement substitutes the server's now(). */
static void add_time(query *q, pl_time t)
{
    if (t == PL_TIME_NOW) {
        q->values[q->nparams] = NULL;
        q->lengths[q->nparams] = 0;
    } else {
        pl_wire_put_time(q->times[q->nparams], t);
        q->values[q->nparams] = q->times[q->nparams];
        q->lengths[q->nparams] = 8;
    }
    q->nparams++;
}

static void cache_field(query *q, char kind, const pl_time *times, int ntimes, const char *field)
{
    q->cacheable = 1;
    pl_buf_put(&q->field, &kind, 1);
    for (int i = 0; i < ntimes; i++)
        pl_buf_put_i64(&q->field, times[i]);
    if (field)
        pl_buf_put(&q->field, field, strlen(field));
}

/* How long a replica that could not be reached is left alone: reads that
 * allow staleness go to the primary meanwhile. */
#define REPLICA_RETRY_US 1000000u

static int replica_usable(pl_ledger *l)
{
    return pl_mono_us() >= atomic_load(&l->replica_retry_at_us);
}

static void replica_failed(pl_ledger *l)
{
    atomic_store(&l->replica_retry_at_us, pl_mono_us() + REPLICA_RETRY_US);
}

/* Measures the replica's replay lag at most once a second; -1 when the
 * replica cannot tell (unreachable, broken), so that no answer of it is
 * reported with a lag nobody measured. */
static int64_t replica_lag(pl_ledger *l)
{
    uint64_t now = pl_mono_us();
    pthread_mutex_lock(&l->lag_mu);
    int fresh = l->replica_lag_at_us && now - l->replica_lag_at_us < 1000000u;
    /* Between measurements the lag may have grown by the time since the
     * last one: report that bound, never less. */
    int64_t lag = l->replica_lag_us + (int64_t)(now - l->replica_lag_at_us);
    pthread_mutex_unlock(&l->lag_mu);
    if (fresh)
        return lag;
    lag = -1;
    PGresult *r = NULL;
    if (pl_db_run(l->db, PL_SQL_REPLICA_LAG, NULL, NULL, PL_RUN_REPLICA, &r) == PL_OK && PQntuples(r) == 1 &&
        PQgetlength(r, 0, 0) == 8)
        lag = pl_get_i64(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (lag < 0)
        return -1; /* not recorded: the next read measures again */
    pthread_mutex_lock(&l->lag_mu);
    l->replica_lag_us = lag;
    l->replica_lag_at_us = now;
    pthread_mutex_unlock(&l->lag_mu);
    return lag;
}

static int finish_answer(pl_result **out, pl_result *r, const query *q)
{
    if (q->empty_is_not_found && r->count == 0) {
        pl_result_free(r);
        *out = NULL;
        return PL_NOT_FOUND;
    }
    *out = r;
    return PL_OK;
}

static int run(pl_result **out, pl_ledger *l, const char *entity, query *q, unsigned flags)
{
    int use_cache = l->cache && q->cacheable && !(flags & PL_REALTIME) && !q->field.failed;
    int use_replica = pl_db_has_replica(l->db) && (flags & PL_ALLOW_STALE) && !(flags & PL_REALTIME);
    if (use_replica && !replica_usable(l)) {
        use_replica = 0; /* down a moment ago: the primary answers */
        atomic_fetch_add(&l->replica_fallbacks, 1);
    }
    pl_cache_ticket ticket;
    memset(&ticket, 0, sizeof ticket);
    if (l->cache && (flags & PL_REALTIME))
        pl_cache_note_bypass(l->cache);
    if (use_cache) {
        pl_result *hit = NULL;
        uint64_t start = pl_mono_us();
        int found = pl_cache_get(l->cache, &ticket, entity, q->field.data, q->field.len, &hit);
        if (found == 1) {
            pl_metrics_record(pl_db_metrics(l->db), PL_OP_CACHE_HIT, pl_mono_us() - start, 0);
            pl_cache_ticket_release(&ticket);
            pl_buf_free(&q->field);
            return finish_answer(out, hit, q);
        }
    }
    int64_t staleness = 0;
    PGresult *res = NULL;
    int rc = PL_OK, from_replica = 0;
    if (use_replica) {
        /* A replica that cannot be reached must not make a read that
         * accepts staleness less available than one that does not: the
         * primary answers it, exactly. */
        staleness = replica_lag(l);
        rc = staleness >= 0 ? pl_db_run(l->db, q->stmt, q->values, q->lengths, PL_RUN_REPLICA, &res) : PL_ECONNECT;
        if (rc == PL_OK) {
            from_replica = 1;
            atomic_fetch_add(&l->replica_reads, 1);
        } else if (rc == PL_ECONNECT || rc == PL_ETIMEOUT) {
            replica_failed(l);
            atomic_fetch_add(&l->replica_fallbacks, 1);
            staleness = 0;
        }
    }
    if (!from_replica && (!use_replica || rc == PL_ECONNECT || rc == PL_ETIMEOUT))
        rc = pl_db_run(l->db, q->stmt, q->values, q->lengths, 0, &res);
    pl_result *r = NULL;
    if (rc == PL_OK) {
        r = pl_result_from_pg(res, 0);
        if (!r)
            rc = pl_fail(PL_EDB, "PostgreSQL returned rows this library cannot read");
    }
    if (rc == PL_OK) {
        pl_time boundary = PL_TIME_INFINITY;
        if (q->has_boundary && PQntuples(res) > 0) {
            int col = PQnfields(res) - 1;
            if (!PQgetisnull(res, 0, col) && PQgetlength(res, 0, col) == 8)
                boundary = pl_wire_get_time(PQgetvalue(res, 0, col));
        }
        if (from_replica) {
            r->origin = PL_ORIGIN_REPLICA;
            r->staleness_us = staleness;
        } else if (ticket.armed) {
            /* Only primary answers are exact enough to cache. */
            pl_cache_fill(l->cache, &ticket, r, boundary);
        }
    }
    PQclear(res);
    pl_cache_ticket_release(&ticket);
    pl_buf_free(&q->field);
    if (rc)
        return rc;
    return finish_answer(out, r, q);
}

static int check_common(pl_result **out, pl_ledger *l, const char *entity_id)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    return pl_check_text("entity_id", entity_id, PL_MAX_KEY_BYTES, 1);
}

static int check_flags(unsigned flags)
{
    if (flags & ~(unsigned)(PL_REALTIME | PL_ALLOW_STALE))
        return pl_fail(PL_EINVAL, "flags: unknown bits 0x%x", flags & ~(unsigned)(PL_REALTIME | PL_ALLOW_STALE));
    return PL_OK;
}

/* On the transaction axis, "now" and "any" ask the same question: every
 * committed record (none can carry a time in the server's future). */
static pl_time tx_bound(pl_time t)
{
    return (t == PL_TIME_NOW || t == PL_TIME_ANY) ? PL_TIME_INFINITY : t;
}

/* The statements and cache kinds of one point question (pl_as_of or
 * pl_snapshot) in its three shapes. */
typedef struct point_shape {
    int now_stmt, now_plain_stmt, any_valid_stmt, valid_stmt;
    char now_kind, settled_kind;
} point_shape;

/* A point question at (T, V): "now as known now" is answered by the
 * latest-state table; any other is answered by the ledger, and cached
 * unless it depends on the clock (V = now with T given). */
static int point(pl_result **out, pl_ledger *l, const char *entity_id, const char *field_name,
                 pl_time tx_time, pl_time valid_time, unsigned flags, const point_shape *shape)
{
    int rc = check_common(out, l, entity_id);
    if (!rc && shape->now_kind == 'c')
        rc = pl_check_text("field_name", field_name, PL_MAX_KEY_BYTES, 1);
    if (!rc)
        rc = pl_check_query_time("tx_time", tx_time);
    if (!rc)
        rc = pl_check_query_time("valid_time", valid_time);
    if (!rc)
        rc = check_flags(flags);
    if (rc)
        return rc;
    query q;
    memset(&q, 0, sizeof q);
    q.empty_is_not_found = 1;
    pl_time t = tx_bound(tx_time);
    add_text(&q, entity_id);
    if (field_name)
        add_text(&q, field_name);
    pl_time key[2] = {t, valid_time};
    if (t == PL_TIME_INFINITY && valid_time == PL_TIME_NOW) {
        q.stmt = shape->now_stmt;
        q.has_boundary = 1;
        /* The boundary only matters to a cache fill. */
        if (shape->now_plain_stmt >= 0 && (!l->cache || (flags & PL_REALTIME))) {
            q.stmt = shape->now_plain_stmt;
            q.has_boundary = 0;
        }
        cache_field(&q, shape->now_kind, NULL, 0, field_name);
    } else if (valid_time == PL_TIME_ANY) {
        q.stmt = shape->any_valid_stmt;
        add_time(&q, t);
        cache_field(&q, shape->settled_kind, key, 2, field_name);
    } else {
        q.stmt = shape->valid_stmt;
        add_time(&q, t);
        add_time(&q, valid_time);
        if (valid_time != PL_TIME_NOW)
            cache_field(&q, shape->settled_kind, key, 2, field_name);
    }
    return run(out, l, entity_id, &q, flags);
}

static int as_of_call(pl_result **out, pl_ledger *l, const char *entity_id, const char *field_name,
                      pl_time tx_time, pl_time valid_time, unsigned flags)
{
    static const point_shape as_of = {PL_SQL_CURRENT, PL_SQL_CURRENT_PLAIN, PL_SQL_ASOF_T,
                                       PL_SQL_ASOF_TV, 'c', 'a'};
    return point(out, l, entity_id, field_name, tx_time, valid_time, flags, &as_of);
}

int pl_as_of(pl_result **out, pl_ledger *l, const char *entity_id, const char *field_name,
             pl_time tx_time, pl_time valid_time, unsigned flags)
{
    PL_GUARD(l, as_of_call(out, l, entity_id, field_name, tx_time, valid_time, flags));
}

int pl_current(pl_result **out, pl_ledger *l, const char *entity_id, const char *field_name,
               unsigned flags)
{
    return pl_as_of(out, l, entity_id, field_name, PL_TIME_NOW, PL_TIME_NOW, flags);
}

static int snapshot_call(pl_result **out, pl_ledger *l, const char *entity_id, pl_time tx_time,
                         pl_time valid_time, unsigned flags)
{
    static const point_shape snapshot = {PL_SQL_SNAPSHOT_CURRENT, -1, PL_SQL_SNAPSHOT_T,
                                         PL_SQL_SNAPSHOT_TV, 's', 'S'};
    return point(out, l, entity_id, NULL, tx_time, valid_time, flags, &snapshot);
}

int pl_snapshot(pl_result **out, pl_ledger *l, const char *entity_id, pl_time tx_time,
                pl_time valid_time, unsigned flags)
{
    PL_GUARD(l, snapshot_call(out, l, entity_id, tx_time, valid_time, flags));
}

static int range_call(pl_result **out, pl_ledger *l, const char *entity_id, const char *field_name,
                      pl_time from, pl_time to, unsigned flags)
{
    int rc = check_common(out, l, entity_id);
    if (!rc && field_name)
        rc = pl_check_text("field_name", field_name, PL_MAX_KEY_BYTES, 1);
    if (!rc)
        rc = pl_check_query_time("from", from);
    if (!rc)
        rc = pl_check_query_time("to", to);
    if (!rc)
        rc = check_flags(flags);
    if (rc)
        return rc;
    if (from != PL_TIME_NOW && from != PL_TIME_ANY && to != PL_TIME_NOW && to != PL_TIME_ANY &&
        from > to)
        return pl_fail(PL_EINVAL, "from: must not be after to");
    query q;
    memset(&q, 0, sizeof q);
    add_text(&q, entity_id);
    if (field_name)
        add_text(&q, field_name);
    q.stmt = field_name ? PL_SQL_RANGE_FIELD : PL_SQL_RANGE_ALL;
    add_time(&q, from);                                      /* ANY: -infinity */
    add_time(&q, to == PL_TIME_ANY ? PL_TIME_INFINITY : to); /* ANY: infinity */
    return run(out, l, entity_id, &q, flags);
}

int pl_range(pl_result **out, pl_ledger *l, const char *entity_id, const char *field_name,
             pl_time from, pl_time to, unsigned flags)
{
    PL_GUARD(l, range_call(out, l, entity_id, field_name, from, to, flags));
}

static int history_call(pl_result **out, pl_ledger *l, const char *entity_id, const char *field_name,
                        unsigned flags)
{
    int rc = check_common(out, l, entity_id);
    if (!rc && field_name)
        rc = pl_check_text("field_name", field_name, PL_MAX_KEY_BYTES, 1);
    if (!rc)
        rc = check_flags(flags);
    if (rc)
        return rc;
    query q;
    memset(&q, 0, sizeof q);
    add_text(&q, entity_id);
    if (field_name)
        add_text(&q, field_name);
    q.stmt = field_name ? PL_SQL_HISTORY_FIELD : PL_SQL_HISTORY_ALL;
    return run(out, l, entity_id, &q, flags);
}

int pl_history(pl_result **out, pl_ledger *l, const char *entity_id, const char *field_name,
               unsigned flags)
{
    PL_GUARD(l, history_call(out, l, entity_id, field_name, flags));
}
