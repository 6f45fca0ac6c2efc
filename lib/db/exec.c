/* The one statement path (see exec.h). */
#include "exec.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "provledger.h"

/* The deadline of maintenance statements, as for migrations: DDL and view
 * refreshes on a big ledger may take long. */
#define MAINTENANCE_TIMEOUT_MS (3600u * 1000u)
/* Attempts of one call in all, whatever made it run again. */
#define MAX_ATTEMPTS 4

struct pl_db {
    pl_pool *primary;
    pl_pool *replica; /* NULL without replica_conninfo */
    char *schema;
    char *sql[PL_SQL_COUNT]; /* the registry, expanded for the schema */
    pl_metrics metrics;
};

/* What makes a failed statement run again, by class (enum pl_sql_class). */
enum after_result { RESULT_NEVER, RESULT_ONCE, RESULT_UNKNOWN };
static const struct retry_rule {
    unsigned char after_send;        /* the request never left */
    unsigned char after_rollback;    /* deadlock, serialization failure */
    unsigned char after_result;      /* sent, then the connection broke */
    unsigned char heavy_share;       /* runs on the pool's heavy share */
    unsigned char prepared;          /* a named prepared statement */
} rules[] = {
    [PL_CLASS_POINT] = {1, 1, RESULT_ONCE, 0, 1},
    [PL_CLASS_WRITE] = {1, 1, RESULT_UNKNOWN, 0, 1},
    [PL_CLASS_HEAVY] = {1, 1, RESULT_ONCE, 1, 0},
    /* DDL and refreshes are never sent twice: detach and attach are not
     * idempotent, and a refresh may have run. */
    [PL_CLASS_MAINTENANCE] = {1, 0, RESULT_NEVER, 1, 0},
    /* A point read, but unnamed: planned with its parameters every time. */
    [PL_CLASS_KEYSET] = {1, 1, RESULT_ONCE, 0, 0},
};

int pl_db_open(pl_db **out, const pl_db_config *cfg)
{
    *out = NULL;
    pl_db *db = calloc(1, sizeof *db);
    if (!db)
        return pl_fail(PL_ENOMEM, "out of memory");
    pl_metrics_init(&db->metrics);
    int failed = !(db->schema = strdup(cfg->schema));
    for (int i = 0; i < PL_SQL_COUNT && !failed; i++)
        failed = !(db->sql[i] = pl_sql_expand(pl_sql_registry[i].sql, cfg->schema));
    if (failed) {
        pl_db_close(db);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    pl_pool_config pc = {
        .conninfo = cfg->conninfo,
        .size = cfg->pool_size,
        .wait_timeout_ms = cfg->wait_timeout_ms,
        .statement_timeout_ms = cfg->statement_timeout_ms,
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .keepalives_idle_s = cfg->keepalives_idle_s,
        .prepare = cfg->prepare,
    };
    int rc = pl_pool_create(&db->primary, &pc);
    if (rc == PL_OK && cfg->replica_conninfo) {
        /* A replica that is down must not keep the ledger from opening. */
        pc.conninfo = cfg->replica_conninfo;
        pc.lazy = 1;
        rc = pl_pool_create(&db->replica, &pc);
    }
    if (rc) {
        pl_db_close(db);
        return rc;
    }
    *out = db;
    return PL_OK;
}

void pl_db_close(pl_db *db)
{
    if (!db)
        return;
    pl_pool_destroy(db->primary);
    pl_pool_destroy(db->replica);
    for (int i = 0; i < PL_SQL_COUNT; i++)
        free(db->sql[i]);
    free(db->schema);
    pl_metrics_destroy(&db->metrics);
    free(db);
}

void pl_db_drop_replica(pl_db *db)
{
    pl_pool_destroy(db->replica);
    db->replica = NULL;
}

int pl_db_has_replica(const pl_db *db)
{
    return db->replica != NULL;
}

const char *pl_db_sql(const pl_db *db, int stmt)
{
    return db->sql[stmt];
}

const char *pl_db_schema(const pl_db *db)
{
    return db->schema;
}

pl_metrics *pl_db_metrics(pl_db *db)
{
    return &db->metrics;
}

PGconn *pl_db_connect(pl_db *db, int *rc)
{
    return pl_pool_connect_raw(db->primary, rc);
}

void pl_db_counters(pl_db *db, pl_pool_counters *primary, pl_pool_counters *replica)
{
    pl_pool_counters_get(db->primary, primary);
    memset(replica, 0, sizeof *replica);
    if (db->replica)
        pl_pool_counters_get(db->replica, replica);
}

static pl_pool_stmt pool_stmt(const pl_db *db, int stmt)
{
    const pl_stmt_def *d = &pl_sql_registry[stmt];
    return (pl_pool_stmt){
        .id = rules[d->class].prepared ? stmt : -1,
        .name = d->name,
        .sql = db->sql[stmt],
        .nparams = d->nparams,
        /* Text parameters travel untyped, as the server infers them from
         * the casts in the text. */
        .types = d->params_binary ? d->types : NULL,
        .params_binary = d->params_binary,
        .result_binary = d->result_binary,
    };
}

/* Statements without parameters that are not prepared and answer in text
 * go in the simple protocol: one round trip, and a text of several
 * statements (SET LOCAL ...; SET LOCAL ...) is fine there. */
static int exec_on(pl_pool *pool, pl_conn *c, const pl_pool_stmt *st, const char *const *values,
                   const int *lengths, PGresult **out, int *phase)
{
    if (st->id < 0 && st->nparams == 0 && !st->result_binary)
        return pl_conn_exec_script(pool, c, st->sql, out, phase);
    return pl_conn_exec(pool, c, st, values, lengths, out, phase);
}

static int acquire(pl_pool *pool, int cls, pl_conn **c)
{
    int rc = rules[cls].heavy_share ? pl_pool_acquire_heavy(pool, c) : pl_pool_acquire(pool, c);
    if (rc == PL_OK && cls == PL_CLASS_MAINTENANCE)
        pl_conn_set_timeout(*c, MAINTENANCE_TIMEOUT_MS);
    return rc;
}

static void release(pl_pool *pool, pl_conn *c)
{
    pl_conn_set_timeout(c, 0);
    pl_pool_release(pool, c);
}

/* Whether a failed attempt may run again, by the class's rule. */
static int may_retry(const struct retry_rule *r, int phase, unsigned flags, int *result_retries)
{
    switch (phase) {
    case PL_PHASE_SEND:
        return r->after_send;
    case PL_PHASE_RETRY:
        return r->after_rollback;
    case PL_PHASE_RESULT:
        if (*result_retries > 0)
            return 0;
        if (r->after_result == RESULT_ONCE ||
            (r->after_result == RESULT_UNKNOWN && (flags & PL_RUN_IDEMPOTENT))) {
            (*result_retries)++;
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* Runs st on c and records its latency under op. */
static int measured(pl_db *db, pl_pool *pool, pl_conn *c, int op, const pl_pool_stmt *st,
                    const char *const *values, const int *lengths, PGresult **out, int *phase)
{
    uint64_t start = pl_mono_us();
    int rc = exec_on(pool, c, st, values, lengths, out, phase);
    pl_metrics_record(&db->metrics, op, pl_mono_us() - start, rc != PL_OK);
    return rc;
}

/* Runs stmt on a connection of pool taken for class cls, as often as the
 * statement's own retry rule allows. With keep, the connection of the
 * attempt that succeeded is handed over instead of released. */
static int run_retried(pl_db *db, pl_pool *pool, int cls, int stmt, const char *const *values,
                       const int *lengths, unsigned flags, PGresult **out, pl_conn **keep)
{
    const struct retry_rule *rule = &rules[pl_sql_registry[stmt].class];
    const pl_pool_stmt st = pool_stmt(db, stmt);
    int rc = PL_OK, phase = PL_PHASE_NONE, result_retries = 0;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        pl_conn *c;
        if ((rc = acquire(pool, cls, &c)))
            return rc;
        rc = measured(db, pool, c, stmt, &st, values, lengths, out, &phase);
        if (rc == PL_OK && keep) {
            *keep = c;
            return PL_OK;
        }
        release(pool, c);
        if (rc == PL_OK || !may_retry(rule, phase, flags, &result_retries))
            break;
    }
    /* A write sent whose answer never came: the connection broke, or the
     * deadline passed and the server did not answer the cancel either
     * (PL_ETIMEOUT in that phase). Either way it may have committed, so
     * neither code may be returned as if nothing was written: a stalled
     * proxy made an unkeyed write return PL_ETIMEOUT although its row was
     * there (issue 12, hostile servers). */
    if (rc != PL_OK && phase == PL_PHASE_RESULT && rule->after_result == RESULT_UNKNOWN &&
        (rc == PL_ECONNECT || rc == PL_ETIMEOUT))
        rc = pl_fail(PL_EUNKNOWN,
                     "the write was sent and then %s; it may or may not have committed (%s). "
                     "Retry with an idempotency key to land it exactly once",
                     rc == PL_ETIMEOUT ? "its answer never came" : "the connection broke",
                     pl_errmsg());
    return rc;
}

int pl_db_run(pl_db *db, int stmt, const char *const *values, const int *lengths, unsigned flags,
              PGresult **out)
{
    *out = NULL;
    pl_pool *pool = (flags & PL_RUN_REPLICA) ? db->replica : db->primary;
    return run_retried(db, pool, pl_sql_registry[stmt].class, stmt, values, lengths, flags, out, NULL);
}

int pl_db_session_begin(pl_db_session *s, pl_db *db, int cls, int begin_stmt)
{
    s->db = db;
    s->cls = cls;
    s->conn = NULL;
    s->sent_stmt = -1;
    s->sent_us = 0;
    PGresult *res = NULL;
    int rc = run_retried(db, db->primary, cls, begin_stmt, NULL, NULL, 0, &res, &s->conn);
    PQclear(res);
    return rc;
}

int pl_db_session_run(pl_db_session *s, int stmt, const char *const *values, const int *lengths,
                      PGresult **out)
{
    const pl_pool_stmt st = pool_stmt(s->db, stmt);
    int phase;
    PGresult *discard = NULL;
    int rc = measured(s->db, s->db->primary, s->conn, stmt, &st, values, lengths, out ? out : &discard,
                      &phase);
    PQclear(discard);
    return rc;
}

int pl_db_session_send(pl_db_session *s, int stmt, const char *const *values, const int *lengths)
{
    const pl_pool_stmt st = pool_stmt(s->db, stmt);
    int phase;
    uint64_t start = pl_mono_us();
    int rc = pl_conn_send(s->db->primary, s->conn, &st, values, lengths, &phase);
    s->sent_us = pl_mono_us() - start;
    s->sent_stmt = rc ? -1 : stmt; /* a failed send has nothing to receive */
    if (rc)
        pl_metrics_record(&s->db->metrics, stmt, s->sent_us, 1);
    return rc;
}

int pl_db_session_receive(pl_db_session *s, PGresult **out)
{
    int phase;
    PGresult *discard = NULL;
    uint64_t start = pl_mono_us();
    int rc = pl_conn_receive(s->db->primary, s->conn, out ? out : &discard, &phase);
    PQclear(discard);
    /* What the caller waited for: the send and this wait, not the work it
     * did in between. */
    if (s->sent_stmt >= 0)
        pl_metrics_record(&s->db->metrics, s->sent_stmt, s->sent_us + (pl_mono_us() - start),
                          rc != PL_OK);
    s->sent_stmt = -1;
    return rc;
}

int pl_db_session_pending(const pl_db_session *s)
{
    return s->conn && pl_conn_pending(s->conn);
}

void pl_db_session_drain(pl_db_session *s)
{
    if (!pl_db_session_pending(s))
        return;
    pl_errsave saved;
    pl_error_save(&saved);
    pl_db_session_receive(s, NULL);
    pl_error_restore(&saved);
}

void pl_db_session_rollback_close(pl_db_session *s)
{
    pl_db_session_drain(s);
    if (s->conn && pl_db_session_in_transaction(s)) {
        /* Keep the caller's error message: ending is not what failed. */
        pl_errsave saved;
        pl_error_save(&saved);
        pl_db_session_run(s, PL_SQL_TX_ROLLBACK, NULL, NULL, NULL);
        pl_error_restore(&saved);
    }
    pl_db_session_close(s);
}

int pl_db_session_text(pl_db_session *s, int stmt, const char *sql, int nparams,
                       const char *const *values, PGresult **out)
{
    /* Never prepared; without parameters (and so with text results) it
     * goes in the simple protocol (exec_on), as a script may need. */
    const pl_pool_stmt st = {
        .id = -1,
        .name = "",
        .sql = sql,
        .nparams = nparams,
        .types = NULL,
        .params_binary = 0,
        .result_binary = nparams > 0 && pl_sql_registry[stmt].result_binary,
    };
    int phase;
    return measured(s->db, s->db->primary, s->conn, stmt, &st, values, NULL, out, &phase);
}

void pl_db_session_close(pl_db_session *s)
{
    if (!s->conn)
        return;
    release(s->db->primary, s->conn);
    s->conn = NULL;
}

int pl_db_session_in_transaction(const pl_db_session *s)
{
    PGconn *pg = s->conn ? pl_conn_pg(s->conn) : NULL;
    return pg && PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) != PQTRANS_IDLE;
}

int pl_db_session_failed(const pl_db_session *s)
{
    PGconn *pg = s->conn ? pl_conn_pg(s->conn) : NULL;
    return !pg || PQtransactionStatus(pg) != PQTRANS_INTRANS;
}
