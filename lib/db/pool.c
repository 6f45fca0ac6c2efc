/* PostgreSQL connection pool (see pool.h). */
#include "pool.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "sqlstate.h"
#include "provledger.h"

struct pl_conn {
    PGconn *pg;
    unsigned generation;                  /* pool generation at connect */
    unsigned char prepared[PL_SQL_COUNT]; /* by registry id */
    int named;                            /* use named prepared statements */
    unsigned timeout_ms;                  /* per-connection deadline override, 0: pool's */
    int broken;
    int heavy;                            /* holds one of the pool's heavy shares */
    int pending;                          /* a statement sent whose result is not
                                             collected yet (pl_conn_send) */
};

/* A thread waiting for a connection. Waiters queue in arrival order and a
 * released connection is handed to the oldest one directly, so no newcomer
 * can overtake a thread that has waited longer (the p95 tail under load). */
typedef struct pool_waiter {
    pthread_cond_t cv;
    size_t slot;
    int granted;
    int heavy;                /* waits for a slot for a long call */
    struct pool_waiter *next;
} pool_waiter;

typedef struct wait_queue {
    pool_waiter *head, *tail;
} wait_queue;

struct pl_pool {
    pthread_mutex_t mu;
    wait_queue waiting;       /* FIFO of threads waiting for a connection */
    wait_queue heavy_waiting; /* FIFO of heavy calls waiting for a share */
    size_t heavy_limit, heavy_in_use;
    /* Connections held by short calls, at most cfg.size. There are
     * cfg.size slots, plus one when cfg.size is 1: that extra slot lets a
     * long call run beside the short ones (the header's promise that point
     * reads and writes always find a connection holds for every size). */
    size_t light_in_use;
    size_t nslots;
    pl_pool_config cfg;
    char *conninfo;
    pl_conn *slots;
    size_t *idle; /* stack of idle slot indexes */
    size_t nidle;
    unsigned generation;
    pl_pool_counters counters;
};

/* libpq's message without its trailing newline. */
static const char *pg_message(PGconn *pg)
{
    static _Thread_local char buf[512];
    snprintf(buf, sizeof buf, "%s", pg ? PQerrorMessage(pg) : "no connection");
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return buf;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *pl_pool_connect_raw(pl_pool *p, int *rc)
{
    char timeout[16], idle[16];
    snprintf(timeout, sizeof timeout, "%u", (p->cfg.connect_timeout_ms + 999) / 1000);
    snprintf(idle, sizeof idle, "%u", p->cfg.keepalives_idle_s);
    const char *keys[10], *vals[10];
    int k = 0;
    /* Order matters: the user's conninfo comes last, so that whatever it
     * says explicitly (application_name, connect_timeout, keepalives...)
     * overrides the configured defaults before it (header: pg_conninfo). */
    keys[k] = "application_name", vals[k++] = "libprovledger";
    keys[k] = "connect_timeout", vals[k++] = timeout;
    if (p->cfg.keepalives_idle_s) {
        keys[k] = "keepalives", vals[k++] = "1";
        keys[k] = "keepalives_idle", vals[k++] = idle;
    }
    /* libpq's default gssencmode=prefer asks libgssapi_krb5 for
     * credentials on every TCP connect, and that library crashes when one
     * of its allocations fails (issue 12). Encryption is TLS's job here:
     * off, unless the conninfo (which comes after and wins) or
     * PGGSSENCMODE asks for it. GSSAPI authentication is unaffected. */
    if (!getenv("PGGSSENCMODE"))
        keys[k] = "gssencmode", vals[k++] = "disable";
    keys[k] = "dbname", vals[k++] = p->conninfo;
    keys[k] = NULL, vals[k] = NULL;
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg) {
        *rc = pl_fail(PL_ENOMEM, "PostgreSQL: out of memory connecting");
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        *rc = pl_fail(PL_ECONNECT, "PostgreSQL: %s", pg_message(pg));
        PQfinish(pg);
        return NULL;
    }
    /* Server notices (e.g. "already exists, skipping") are not errors and
     * must not be printed on the caller's stderr. */
    PQsetNoticeProcessor(pg, ignore_notice, NULL);
    if (PQsetnonblocking(pg, 1) != 0) {
        *rc = pl_fail(PL_ECONNECT, "PostgreSQL: %s", pg_message(pg));
        PQfinish(pg);
        return NULL;
    }
    *rc = PL_OK;
    return pg;
}

/* A proxy such as PgBouncer answers on a port other than the server's own;
 * named statements do not survive transaction pooling there. */
static int detect_named(pl_pool *p, PGconn *pg)
{
    if (p->cfg.prepare == PL_PREPARE_NAMED)
        return 1;
    if (p->cfg.prepare == PL_PREPARE_UNNAMED)
        return 0;
    PQsetnonblocking(pg, 0);
    PGresult *r = PQexec(pg, "SELECT current_setting('port')");
    int named = 1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        const char *port = PQport(pg);
        if (port && *port && strcmp(port, PQgetvalue(r, 0, 0)) != 0)
            named = 0;
    } else {
        named = 0; /* cannot tell: the safe choice works everywhere */
    }
    PQclear(r);
    PQsetnonblocking(pg, 1);
    return named;
}

static int conn_open(pl_pool *p, pl_conn *c)
{
    int rc;
    PGconn *pg = pl_pool_connect_raw(p, &rc);
    if (!pg)
        return rc;
    int heavy = c->heavy; /* the share belongs to the caller, not to the session */
    memset(c, 0, sizeof *c);
    c->heavy = heavy;
    c->pg = pg;
    c->named = detect_named(p, pg);
    pthread_mutex_lock(&p->mu);
    c->generation = p->generation;
    p->counters.open++;
    pthread_mutex_unlock(&p->mu);
    return PL_OK;
}

static void conn_close(pl_pool *p, pl_conn *c, int counted)
{
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
        if (counted) {
            pthread_mutex_lock(&p->mu);
            p->counters.open--;
            pthread_mutex_unlock(&p->mu);
        }
    }
    c->broken = 0;
    c->pending = 0;
}

int pl_pool_create(pl_pool **out, const pl_pool_config *cfg)
{
    *out = NULL;
    pl_pool *p = calloc(1, sizeof *p);
    if (!p)
        return pl_fail(PL_ENOMEM, "out of memory");
    p->cfg = *cfg;
    p->conninfo = strdup(cfg->conninfo);
    p->nslots = cfg->size + (cfg->size == 1);
    p->slots = calloc(p->nslots, sizeof *p->slots);
    p->idle = calloc(p->nslots, sizeof *p->idle);
    if (!p->conninfo || !p->slots || !p->idle) {
        free(p->conninfo);
        free(p->slots);
        free(p->idle);
        free(p);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    for (size_t i = 0; i < p->nslots; i++)
        p->idle[p->nidle++] = p->nslots - 1 - i;
    p->heavy_limit = cfg->size / 2 ? cfg->size / 2 : 1;
    /* One connection up front: a wrong conninfo fails pl_open, not later. */
    int rc = cfg->lazy ? PL_OK : conn_open(p, &p->slots[0]);
    if (rc) {
        pl_pool_destroy(p);
        return rc;
    }
    *out = p;
    return PL_OK;
}

void pl_pool_destroy(pl_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nslots; i++)
        conn_close(p, &p->slots[i], 0);
    pthread_mutex_destroy(&p->mu);
    free(p->conninfo);
    free(p->slots);
    free(p->idle);
    free(p);
}

/* An idle connection has nothing to read; if its socket is readable, the
 * server said goodbye (restart, terminate) or closed it: find out now,
 * before a write is sent into a dead connection and its outcome becomes
 * unknown. */
static int conn_alive(PGconn *pg)
{
    if (PQstatus(pg) != CONNECTION_OK)
        return 0;
    struct pollfd pfd = {PQsocket(pg), POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0)
        return 1;
    /* Unasked-for bytes: a NOTIFY is harmless; anything else is the
     * server's goodbye (its FATAL message arrives before the EOF). */
    if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)
        return 0;
    int notified = 0;
    PGnotify *n;
    while ((n = PQnotifies(pg))) {
        PQfreemem(n);
        notified = 1;
    }
    return notified;
}

static void queue_unlink(wait_queue *q, pool_waiter *w)
{
    pool_waiter **pp = &q->head, *prev = NULL;
    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = w->next;
    if (q->tail == w)
        q->tail = prev;
}

static pool_waiter *queue_pop(wait_queue *q)
{
    pool_waiter *w = q->head;
    if (w) {
        q->head = w->next;
        if (!q->head)
            q->tail = NULL;
    }
    return w;
}

static void deadline_in(struct timespec *deadline, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, deadline);
    uint64_t ns = (uint64_t)deadline->tv_nsec + (uint64_t)(ms % 1000) * 1000000u;
    deadline->tv_sec += (time_t)(ms / 1000 + ns / 1000000000u);
    deadline->tv_nsec = (long)(ns % 1000000000u);
}

/* Queues the caller on q and waits until a releasing thread grants it
 * (handing over *slot) or the deadline passes. Called and returns with
 * p->mu held. */
static int queue_wait(pl_pool *p, wait_queue *q, const struct timespec *deadline, size_t *slot,
                      int heavy)
{
    uint64_t start = pl_mono_us();
    pool_waiter w = {.granted = 0, .heavy = heavy, .next = NULL};
    pthread_cond_init(&w.cv, NULL);
    /* w lives on this stack only while queued: it is unlinked (by a grant or
     * below) before this function returns. */
    if (q->tail)
        q->tail->next = &w;
    else
        q->head = &w; /* cppcheck-suppress autoVariables ; unlinked before return */
    q->tail = &w;     /* cppcheck-suppress autoVariables ; unlinked before return */
    int timed_out = 0;
    while (!w.granted && !timed_out) {
        if (p->cfg.wait_timeout_ms == 0)
            pthread_cond_wait(&w.cv, &p->mu);
        else if (pthread_cond_timedwait(&w.cv, &p->mu, deadline) == ETIMEDOUT)
            timed_out = !w.granted;
    }
    if (!w.granted)
        queue_unlink(q, &w); /* a grant always dequeues first */
    pthread_cond_destroy(&w.cv);
    p->counters.wait_us += pl_mono_us() - start;
    if (!w.granted)
        return pl_fail(PL_ETIMEOUT, "no pooled connection became free within %u ms",
                       p->cfg.wait_timeout_ms);
    if (slot)
        *slot = w.slot;
    return PL_OK;
}

/* Gives a heavy share back: to the oldest heavy waiter, if any. Called with
 * p->mu held. */
static void heavy_put(pl_pool *p)
{
    pool_waiter *w = queue_pop(&p->heavy_waiting);
    if (w) {
        w->granted = 1; /* the share passes on: heavy_in_use stays */
        pthread_cond_signal(&w->cv);
    } else {
        p->heavy_in_use--;
    }
}

/* Whether a call of that kind may take an idle slot now. Called with
 * p->mu held. */
static int slot_free(const pl_pool *p, int heavy)
{
    return p->nidle > 0 && (heavy || p->light_in_use < p->cfg.size);
}

/* Hands idle slots to the oldest waiters that may take one (a short call
 * waits while cfg.size short calls hold connections). Called with p->mu
 * held. */
static void grant_waiters(pl_pool *p)
{
    while (p->waiting.head && slot_free(p, p->waiting.head->heavy)) {
        pool_waiter *w = queue_pop(&p->waiting);
        w->slot = p->idle[--p->nidle];
        w->granted = 1;
        if (!w->heavy)
            p->light_in_use++; /* counted at the grant, not at the wakeup */
        pthread_cond_signal(&w->cv);
    }
}

static int acquire(pl_pool *p, pl_conn **out, int heavy)
{
    *out = NULL;
    size_t slot = 0;
    struct timespec deadline = {0, 0};
    if (p->cfg.wait_timeout_ms)
        deadline_in(&deadline, p->cfg.wait_timeout_ms);
    pthread_mutex_lock(&p->mu);
    if ((heavy && p->heavy_in_use >= p->heavy_limit) || !slot_free(p, heavy))
        p->counters.waits++; /* one wait per call, whatever it waits for */
    if (heavy) {
        if (p->heavy_in_use < p->heavy_limit) {
            p->heavy_in_use++;
        } else {
            int rc = queue_wait(p, &p->heavy_waiting, &deadline, NULL, 1);
            if (rc) {
                pthread_mutex_unlock(&p->mu);
                return rc;
            }
        }
    }
    /* Behind earlier waiters, never past them. */
    if (!p->waiting.head && slot_free(p, heavy)) {
        slot = p->idle[--p->nidle];
        if (!heavy)
            p->light_in_use++;
    } else {
        int rc = queue_wait(p, &p->waiting, &deadline, &slot, heavy);
        if (rc) {
            if (heavy)
                heavy_put(p);
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
    }
    p->slots[slot].heavy = heavy;
    pl_conn *c = &p->slots[slot];
    int stale = c->pg && c->generation != p->generation;
    pthread_mutex_unlock(&p->mu);

    if (c->pg && (stale || !conn_alive(c->pg))) {
        conn_close(p, c, 1);
        pthread_mutex_lock(&p->mu);
        p->counters.reconnects++;
        pthread_mutex_unlock(&p->mu);
    }
    if (!c->pg) {
        int rc = conn_open(p, c);
        if (rc) {
            pl_pool_release(p, c);
            return rc;
        }
    }
    *out = c;
    return PL_OK;
}

int pl_pool_acquire(pl_pool *p, pl_conn **out)
{
    return acquire(p, out, 0);
}

int pl_pool_acquire_heavy(pl_pool *p, pl_conn **out)
{
    return acquire(p, out, 1);
}

void pl_pool_release(pl_pool *p, pl_conn *c)
{
    if (!c)
        return;
    /* A result still on its way would be read by the next user as theirs:
     * such a connection is closed, as one left inside a transaction. */
    if (c->broken || c->pending || (c->pg && PQtransactionStatus(c->pg) != PQTRANS_IDLE)) {
        conn_close(p, c, 1);
        pthread_mutex_lock(&p->mu);
        p->counters.reconnects++; /* the slot reconnects on its next use */
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    if (c->heavy) {
        c->heavy = 0;
        heavy_put(p);
    } else {
        p->light_in_use--;
    }
    p->idle[p->nidle++] = (size_t)(c - p->slots);
    grant_waiters(p);
    pthread_mutex_unlock(&p->mu);
}

void pl_pool_suspect_all(pl_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->generation++;
    pthread_mutex_unlock(&p->mu);
}

void pl_conn_set_timeout(pl_conn *c, unsigned timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

PGconn *pl_conn_pg(pl_conn *c)
{
    return c->pg;
}

void pl_pool_counters_get(pl_pool *p, pl_pool_counters *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->counters;
    pthread_mutex_unlock(&p->mu);
}

/* The connection died: close it, and treat its siblings as suspect. */
static int broken(pl_pool *p, pl_conn *c, int *phase, int ph, const char *what)
{
    int rc = pl_fail(PL_ECONNECT, "PostgreSQL connection lost %s: %s", what, pg_message(c->pg));
    c->broken = 1;
    *phase = ph;
    pl_pool_suspect_all(p);
    return rc;
}

/* Waits for the socket with the statement deadline; 0 ready, -1 timeout. */
static int wait_socket(PGconn *pg, int events, uint64_t deadline)
{
    for (;;) {
        int timeout = -1;
        if (deadline) {
            uint64_t now = pl_mono_us();
            if (now >= deadline)
                return -1;
            timeout = (int)((deadline - now + 999) / 1000);
        }
        struct pollfd pfd = {PQsocket(pg), (short)events, 0};
        int n = poll(&pfd, 1, timeout);
        if (n > 0)
            return 0;
        if (n == 0)
            return -1;
        if (errno != EINTR)
            return 0; /* let libpq report the socket error */
    }
}

/* Flushes the request and collects the final result within the deadline;
 * on expiry cancels the statement and, failing that, drops the connection. */
static int finish(pl_pool *p, pl_conn *c, PGresult **out, int *phase)
{
    unsigned timeout = c->timeout_ms ? c->timeout_ms : p->cfg.statement_timeout_ms;
    uint64_t deadline = timeout ? pl_mono_us() + (uint64_t)timeout * 1000u : 0;
    int cancelled = 0;
    for (;;) {
        int f = PQflush(c->pg);
        if (f < 0)
            return broken(p, c, phase, PL_PHASE_SEND, "while sending");
        if (f == 0)
            break;
        if (wait_socket(c->pg, POLLOUT | POLLIN, deadline) < 0)
            return broken(p, c, phase, PL_PHASE_SEND, "(send timed out)");
        if (!PQconsumeInput(c->pg))
            return broken(p, c, phase, PL_PHASE_SEND, "while sending");
    }
    PGresult *last = NULL;
    for (;;) {
        while (PQisBusy(c->pg)) {
            if (wait_socket(c->pg, POLLIN, deadline) < 0) {
                if (cancelled) {
                    PQclear(last);
                    c->broken = 1;
                    *phase = PL_PHASE_RESULT;
                    return pl_fail(PL_ETIMEOUT,
                                   "statement exceeded %u ms and the server did not answer the cancel",
                                   timeout);
                }
                PGcancel *cn = PQgetCancel(c->pg);
                char err[256];
                if (cn) {
                    PQcancel(cn, err, sizeof err);
                    PQfreeCancel(cn);
                }
                cancelled = 1;
                deadline = pl_mono_us() + 2000000u;
                continue;
            }
            if (!PQconsumeInput(c->pg)) {
                PQclear(last);
                return broken(p, c, phase, PL_PHASE_RESULT, "while waiting for the answer");
            }
        }
        PGresult *r = PQgetResult(c->pg);
        if (!r)
            break;
        if (last)
            PQclear(last);
        last = r;
    }
    if (!last) {
        if (PQstatus(c->pg) != CONNECTION_OK)
            return broken(p, c, phase, PL_PHASE_RESULT, "while waiting for the answer");
        c->broken = 1; /* libpq lost it (out of memory): the session state is unknown */
        return pl_fail(PL_ENOMEM, "PostgreSQL: no result (out of memory?)");
    }
    ExecStatusType st = PQresultStatus(last);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *out = last;
        return PL_OK;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        PQclear(last);
        return broken(p, c, phase, PL_PHASE_RESULT, "while waiting for the answer");
    }
    const char *state = PQresultErrorField(last, PG_DIAG_SQLSTATE);
    if (!state) {
        /* No SQLSTATE: libpq's own error, not the server's; out of memory
         * while reading the answer. The server may have done more than we
         * know (a statement prepared, a message skipped): the connection
         * is replaced rather than trusted. */
        c->broken = 1;
        const char *why = PQresultErrorMessage(last);
        int code = strstr(why, "out of memory") ? PL_ENOMEM : PL_ECONNECT;
        pl_fail(code, "PostgreSQL: %.200s", why);
        PQclear(last);
        return code;
    }
    const char *msg = PQresultErrorField(last, PG_DIAG_MESSAGE_PRIMARY);
    const char *constraint = PQresultErrorField(last, PG_DIAG_CONSTRAINT_NAME);
    state = state ? state : "";
    msg = msg ? msg : pg_message(c->pg);
    const pl_sqlstate_rule *rule = pl_sqlstate_lookup(state, constraint);
    int code = rule->code;
    if (rule->message)
        msg = rule->message;
    if (rule->effect == PL_STATE_CANCELLED && cancelled)
        msg = "statement exceeded the statement timeout and was cancelled";
    if (rule->effect == PL_STATE_BROKEN) {
        c->broken = 1;
        pl_pool_suspect_all(p);
        *phase = PL_PHASE_RESULT;
    } else if (rule->effect == PL_STATE_ROLLED_BACK) {
        *phase = PL_PHASE_RETRY;
    }
    pl_fail(code, "PostgreSQL [%s]: %s", state, msg);
    PQclear(last);
    return code;
}

static void count_query(pl_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->counters.queries++;
    pthread_mutex_unlock(&p->mu);
}

static int prepare(pl_pool *p, pl_conn *c, const pl_pool_stmt *st, int *phase)
{
    if (!PQsendPrepare(c->pg, st->name, st->sql, st->nparams, st->types))
        return broken(p, c, phase, PL_PHASE_SEND, "while preparing");
    PGresult *r = NULL;
    int rc = finish(p, c, &r, phase);
    PQclear(r);
    if (rc == PL_OK)
        c->prepared[st->id] = 1;
    return rc;
}

/* Flushes the request within the statement deadline (the rest of it is
 * the result's, in finish). */
static int flush(pl_pool *p, pl_conn *c, int *phase)
{
    unsigned timeout = c->timeout_ms ? c->timeout_ms : p->cfg.statement_timeout_ms;
    uint64_t deadline = timeout ? pl_mono_us() + (uint64_t)timeout * 1000u : 0;
    for (;;) {
        int f = PQflush(c->pg);
        if (f < 0)
            return broken(p, c, phase, PL_PHASE_SEND, "while sending");
        if (f == 0)
            return PL_OK;
        if (wait_socket(c->pg, POLLOUT | POLLIN, deadline) < 0)
            return broken(p, c, phase, PL_PHASE_SEND, "(send timed out)");
        if (!PQconsumeInput(c->pg))
            return broken(p, c, phase, PL_PHASE_SEND, "while sending");
    }
}

int pl_conn_send(pl_pool *p, pl_conn *c, const pl_pool_stmt *st, const char *const *values,
                 const int *lengths, int *phase)
{
    *phase = PL_PHASE_NONE;
    if (c->pending) {
        *phase = PL_PHASE_SEND;
        return pl_fail(PL_EDB, "internal: a statement was sent while the previous one's result was pending");
    }
    int formats[PL_POOL_MAX_PARAMS];
    for (int i = 0; i < st->nparams && i < PL_POOL_MAX_PARAMS; i++)
        formats[i] = st->params_binary;
    const int *fmt = st->params_binary ? formats : NULL;
    const int *len = st->params_binary ? lengths : NULL;
    int ok;
    if (c->named && st->id >= 0) {
        if (!c->prepared[st->id]) {
            int rc = prepare(p, c, st, phase);
            if (rc)
                return rc;
        }
        ok = PQsendQueryPrepared(c->pg, st->name, st->nparams, values, len, fmt, st->result_binary);
    } else {
        ok = PQsendQueryParams(c->pg, st->sql, st->nparams, st->types, values, len, fmt,
                               st->result_binary);
    }
    if (!ok)
        return broken(p, c, phase, PL_PHASE_SEND, "while sending");
    count_query(p);
    c->pending = 1;
    int rc = flush(p, c, phase);
    /* The send failed: nothing will come (the connection is broken). */
    if (rc)
        c->pending = 0;
    return rc;
}

int pl_conn_receive(pl_pool *p, pl_conn *c, PGresult **out, int *phase)
{
    *out = NULL;
    *phase = PL_PHASE_NONE;
    if (!c->pending) {
        *phase = PL_PHASE_SEND;
        return pl_fail(PL_EDB, "internal: a result was collected that no statement was sent for");
    }
    int rc = finish(p, c, out, phase);
    /* Collected, or the connection is marked broken and will be closed;
     * either way nothing more of it is pending. */
    c->pending = 0;
    return rc;
}

int pl_conn_pending(const pl_conn *c)
{
    return c->pending;
}

int pl_conn_exec(pl_pool *p, pl_conn *c, const pl_pool_stmt *st, const char *const *values,
                 const int *lengths, PGresult **out, int *phase)
{
    *out = NULL;
    int rc = pl_conn_send(p, c, st, values, lengths, phase);
    return rc ? rc : pl_conn_receive(p, c, out, phase);
}

int pl_conn_exec_script(pl_pool *p, pl_conn *c, const char *sql, PGresult **out, int *phase)
{
    *out = NULL;
    *phase = PL_PHASE_NONE;
    if (c->pending) {
        *phase = PL_PHASE_SEND;
        return pl_fail(PL_EDB, "internal: a statement was sent while the previous one's result was pending");
    }
    count_query(p);
    if (!PQsendQuery(c->pg, sql))
        return broken(p, c, phase, PL_PHASE_SEND, "while sending");
    return finish(p, c, out, phase);
}
