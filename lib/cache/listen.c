/* The listener for rows written with plain SQL: a thread on a dedicated
 * PostgreSQL connection, LISTENing on the schema's "<schema>_external"
 * channel (a trigger notifies it of every entity a statement outside the
 * library wrote), that drops the cached answers of each entity it hears of. A gap in
 * listening (the connection broke) is treated like a write that could not
 * invalidate: the cache is disabled. The connection comes from
 * pg_listen_open, the only function here that reaches PostgreSQL (a
 * dedicated connection from db/exec.h, LISTENing with the registry's
 * pl_listen_external). */
#include "cache_int.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "schema.h"

/* The listener's own connection, in blocking mode, once LISTEN took
 * effect on it; NULL when PostgreSQL cannot be reached or refused. With
 * pg_run (lease.c), the cache's only way to PostgreSQL. */
static PGconn *pg_listen_open(pl_cache *c)
{
    const char *listen = pl_db_sql(c->db, PL_SQL_LISTEN_EXTERNAL);
    int rc;
    PGconn *pg = pl_db_connect(c->db, &rc);
    if (pg) {
        PQsetnonblocking(pg, 0);
        PGresult *r = PQexec(pg, listen);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            PQfinish(pg);
            pg = NULL;
        }
        PQclear(r);
    }
    return pg;
}

static void invalidate_external(pl_cache *c, const char *entity)
{
    lease ls;
    if (pl_cache_lease_get(c, &ls, 0) < 0) {
        (void)pl_cache_disable(c); /* best effort: the write has committed */
        return;
    }
    pl_cache_invalidate(c, &entity, 1, ls.epoch);
}

static void *listener_main(void *arg)
{
    pl_cache *c = arg;
    int connected_before = 0;
    unsigned backoff_ms = 100;
    while (!atomic_load(&c->stop)) {
        PGconn *pg = pg_listen_open(c);
        if (!pg) {
            for (unsigned w = 0; w < backoff_ms && !atomic_load(&c->stop); w += 50)
                pl_sleep_us(50000);
            backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
            continue;
        }
        backoff_ms = 100;
        /* Notifications sent while we were away are lost: treat the gap
         * like a write that could not invalidate. */
        if (connected_before)
            (void)pl_cache_disable(c); /* best effort: those writes have committed */
        connected_before = 1;
        pthread_mutex_lock(&c->mu);
        c->listening = 1;
        pthread_cond_broadcast(&c->listening_cv);
        pthread_mutex_unlock(&c->mu);
        while (!atomic_load(&c->stop)) {
            struct pollfd pfd = {PQsocket(pg), POLLIN, 0};
            int n = poll(&pfd, 1, 100);
            if (n < 0)
                continue;
            if (n > 0 && !PQconsumeInput(pg))
                break;
            PGnotify *note;
            while ((note = PQnotifies(pg))) {
                invalidate_external(c, note->extra);
                PQfreemem(note);
            }
            if (PQstatus(pg) != CONNECTION_OK)
                break;
        }
        PQfinish(pg);
    }
    return NULL;
}

int pl_cache_listen_start(pl_cache *c)
{
    if (pthread_create(&c->listener, NULL, listener_main, c) != 0)
        return pl_fail(PL_ENOMEM, "cannot start the external-write listener thread");
    c->listener_started = 1;
    /* Commits right after pl_open must not slip past: wait (bounded)
     * until the listener is listening. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(c->cfg.pg_connect_timeout_ms / 1000 + 2);
    pthread_mutex_lock(&c->mu);
    while (!c->listening &&
           pthread_cond_timedwait(&c->listening_cv, &c->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&c->mu);
    return PL_OK;
}

void pl_cache_listen_stop(pl_cache *c)
{
    if (c->listener_started) {
        atomic_store(&c->stop, 1);
        pthread_join(c->listener, NULL);
        c->listener_started = 0;
    }
}
