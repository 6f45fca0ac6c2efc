/*
 * The result cache, and why it never serves a stale answer.
 *
 * Keys. All cached answers of one entity live in one Redis hash,
 * <prefix> NUL <ledger id>:<epoch>:<entity_id>, so one DEL invalidates the
 * entity and an
 * eviction removes all of it at once. Field "t" holds a fill token; other
 * fields hold encoded answers ("c"+field for current, "s" for the snapshot,
 * "a"/"S" + times for settled as-of answers). Key and fields travel as
 * binary-safe arguments, never through a format string.
 *
 * Fills race writes. A miss first makes sure the hash holds a token (one
 * script), then reads PostgreSQL, then stores the answer only if the token
 * is still there (a second script). A write DELs the hash after its commit,
 * taking the token with it, so a reader that read the database before that
 * commit finds its token gone and its fill is refused.
 *
 * Time moves answers. A current answer carries the next valid-time
 * boundary of its field (from the latest-state table); a hit past it, by
 * the server's clock as this process estimates it from its lease, is a
 * miss.
 *
 * Redis may be unreachable for a writer while other processes still read
 * it (a stall, a partition). Every process therefore holds a lease on the
 * shared cache state in PostgreSQL (table cache_state) and re-reads it at
 * least every cache_lease_ms. A writer that cannot DEL marks the cache
 * disabled there (which also moves the epoch, abandoning every old key) and
 * returns only once every lease taken before that has run out. While
 * disabled, nobody reads or fills; afterwards everyone starts on the new,
 * empty epoch. A Redis whose run_id differs from the one the state is bound
 * to (restarted, restored from an old snapshot, failed over) also moves the
 * epoch before anyone uses it.
 */
#include "cache.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "redis.h"

#define MAX_FIELDS_PER_ENTITY "512"
#define DEL_CHUNK 256

typedef struct lease {
    int valid;
    char ledger_id[40];      /* random per ledger: two ledgers never share keys */
    int64_t epoch;
    char run_id[64];
    int disabled;
    pl_time pg_now;          /* server clock when read */
    uint64_t sent_us;        /* monotonic time the request left */
} lease;

struct pl_cache {
    pl_ledger *l;
    pl_redis *redis;
    const char *prefix;
    unsigned ttl_ms, lease_ms;
    char ttl_text[24];

    pthread_mutex_t mu;         /* lease, counters, disable bookkeeping */
    pthread_mutex_t refresh_mu; /* one lease refresh at a time */
    lease lease;
    pl_time own_disabled_until;
    uint64_t own_disabled_at_us;   /* monotonic: when our disable call ran */
    int64_t own_disabled_for_us;   /* how long the window had run then */
    uint64_t disabled_seen_since;  /* monotonic, 0 when enabled */
    uint64_t disabled_total_us;

    uint64_t hits, misses, fills, refused, invalidations, bypassed;
    atomic_uint_fast64_t token_seq;
    uint64_t token_salt;

    void (*fill_hook)(void *);
    void *fill_hook_arg;

    /* listener for rows written with plain SQL */
    pthread_t listener;
    int listener_started;
    atomic_int stop;
    pthread_cond_t listening_cv; /* signalled once LISTEN took effect */
    int listening;
};

static void put_i64(char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        out[i] = (char)(u & 0xff);
}

#define COUNT(c, field)                \
    do {                               \
        pthread_mutex_lock(&(c)->mu);  \
        (c)->field++;                  \
        pthread_mutex_unlock(&(c)->mu); \
    } while (0)

static void *listener_main(void *arg);

int pl_cache_create(pl_cache **out, pl_ledger *l)
{
    *out = NULL;
    pl_cache *c = calloc(1, sizeof *c);
    if (!c)
        return pl_fail(PL_ENOMEM, "out of memory");
    c->l = l;
    c->prefix = l->cfg.cache_key_prefix;
    c->ttl_ms = l->cfg.cache_ttl_ms;
    c->lease_ms = l->cfg.cache_lease_ms;
    snprintf(c->ttl_text, sizeof c->ttl_text, "%u", c->ttl_ms);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->refresh_mu, NULL);
    pthread_cond_init(&c->listening_cv, NULL);
    if (getrandom(&c->token_salt, sizeof c->token_salt, 0) != sizeof c->token_salt)
        c->token_salt = (uint64_t)getpid() * 0x9e3779b97f4a7c15u ^ pl_mono_us();
    pl_redis_config rc_cfg = {
        .url = l->cfg.redis_url,
        .connect_timeout_ms = l->cfg.redis_connect_timeout_ms,
        .command_timeout_ms = l->cfg.redis_command_timeout_ms,
        .pool_size = l->cfg.redis_pool_size,
        .retry_ms = l->cfg.redis_retry_ms ? l->cfg.redis_retry_ms : 1000,
    };
    int rc = pl_redis_create(&c->redis, &rc_cfg);
    if (rc) {
        pl_cache_destroy(c);
        return rc;
    }
    if (l->cfg.listen_external_writes) {
        if (pthread_create(&c->listener, NULL, listener_main, c) != 0) {
            pl_cache_destroy(c);
            return pl_fail(PL_ENOMEM, "cannot start the external-write listener thread");
        }
        c->listener_started = 1;
        /* Commits right after pl_open must not slip past: wait (bounded)
         * until the listener is listening. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(l->cfg.connect_timeout_ms / 1000 + 2);
        pthread_mutex_lock(&c->mu);
        while (!c->listening &&
               pthread_cond_timedwait(&c->listening_cv, &c->mu, &until) == 0)
            ;
        pthread_mutex_unlock(&c->mu);
    }
    *out = c;
    return PL_OK;
}

void pl_cache_destroy(pl_cache *c)
{
    if (!c)
        return;
    if (c->listener_started) {
        atomic_store(&c->stop, 1);
        pthread_join(c->listener, NULL);
    }
    pl_redis_destroy(c->redis);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->refresh_mu);
    pthread_cond_destroy(&c->listening_cv);
    free(c);
}

void pl_cache_set_fill_hook(pl_cache *c, void (*hook)(void *), void *arg)
{
    c->fill_hook = hook;
    c->fill_hook_arg = arg;
}

/* ------------------------------------------------------------------------ */
/* The lease                                                                 */
/* ------------------------------------------------------------------------ */

static void note_disabled(pl_cache *c, int disabled, uint64_t now)
{
    if (disabled && !c->disabled_seen_since) {
        c->disabled_seen_since = now;
    } else if (!disabled && c->disabled_seen_since) {
        c->disabled_total_us += now - c->disabled_seen_since;
        c->disabled_seen_since = 0;
    }
}

static int lease_fresh(const pl_cache *c, uint64_t now)
{
    return c->lease.valid && now - c->lease.sent_us < (uint64_t)c->lease_ms * 1000u;
}

/* A current lease, re-read from PostgreSQL when older than cache_lease_ms
 * (force: re-read now). Returns 0, or -1 when PostgreSQL cannot say. */
static int lease_get(pl_cache *c, lease *out, int force)
{
    pthread_mutex_lock(&c->mu);
    if (!force && lease_fresh(c, pl_mono_us())) {
        *out = c->lease;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    pthread_mutex_unlock(&c->mu);

    pthread_mutex_lock(&c->refresh_mu);
    pthread_mutex_lock(&c->mu);
    uint64_t before = pl_mono_us();
    if (!force && lease_fresh(c, before)) {
        *out = c->lease;
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_unlock(&c->refresh_mu);
        return 0;
    }
    pthread_mutex_unlock(&c->mu);
    PGresult *r = NULL;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", pl_errmsg());
    /* Our lease length joins the shared maximum, which writers wait out. */
    char ms[8];
    put_i64(ms, c->lease_ms);
    const char *values[1] = {ms};
    int lengths[1] = {8};
    int rc = pl_read(c->l, 0, PL_STMT_CACHE_LEASE, values, lengths, &r);
    pl_fail(0, "%s", saved); /* a cache detail must not replace the caller's message */
    int ok = rc == PL_OK && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8 &&
             PQgetlength(r, 0, 2) == 4 && PQgetlength(r, 0, 3) == 8 &&
             PQgetlength(r, 0, 4) > 0 && PQgetlength(r, 0, 4) < 40;
    lease nl;
    memset(&nl, 0, sizeof nl);
    if (ok) {
        nl.valid = 1;
        memcpy(nl.ledger_id, PQgetvalue(r, 0, 4), (size_t)PQgetlength(r, 0, 4));
        nl.epoch = pl_get_i64(PQgetvalue(r, 0, 0));
        snprintf(nl.run_id, sizeof nl.run_id, "%.*s", PQgetlength(r, 0, 1), PQgetvalue(r, 0, 1));
        nl.disabled = pl_get_u32(PQgetvalue(r, 0, 2)) != 0;
        nl.pg_now = pl_wire_get_time(PQgetvalue(r, 0, 3));
        nl.sent_us = before;
    }
    PQclear(r);
    pthread_mutex_lock(&c->mu);
    if (ok) {
        c->lease = nl;
        note_disabled(c, nl.disabled, pl_mono_us());
    } else {
        c->lease.valid = 0;
    }
    *out = c->lease;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&c->refresh_mu);
    return ok ? 0 : -1;
}

/* The latest the server's clock can read now, by this lease. */
static pl_time pg_now_upper(const lease *ls)
{
    return ls->pg_now + (pl_time)(pl_mono_us() - ls->sent_us);
}

/* Binds the cache state to the Redis instance this connection reached. */
static void bind_run_id(pl_cache *c, const char *run_id)
{
    const char *values[1] = {run_id};
    int lengths[1] = {(int)strlen(run_id)};
    PGresult *r = NULL;
    if (pl_read(c->l, 0, PL_STMT_CACHE_BIND, values, lengths, &r) == PL_OK) {
        PQclear(r);
        lease ignored;
        lease_get(c, &ignored, 1);
    }
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

/* NUL ends the prefix (neither it nor an entity id can hold one), so no
 * two (prefix, ledger, epoch, entity) ever share a key. */
static void make_key(pl_buf *key, const char *prefix, const char *ledger_id, int64_t epoch,
                     const char *entity)
{
    char num[24];
    int n = snprintf(num, sizeof num, ":%lld:", (long long)epoch);
    key->len = 0;
    pl_buf_put(key, prefix, strlen(prefix) + 1);
    pl_buf_put(key, ledger_id, strlen(ledger_id));
    pl_buf_put(key, num, (size_t)n);
    pl_buf_put(key, entity, strlen(entity));
}

static void new_token(pl_cache *c, char out[40])
{
    uint64_t seq = atomic_fetch_add(&c->token_seq, 1);
    snprintf(out, 40, "%016llx%08x%llx", (unsigned long long)c->token_salt, (unsigned)getpid(),
             (unsigned long long)seq);
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                     */
/* ------------------------------------------------------------------------ */

void pl_cache_note_bypass(pl_cache *c)
{
    COUNT(c, bypassed);
}

/* A connection usable under this lease, or NULL (the caller bypasses). */
static pl_redis_conn *usable_conn(pl_cache *c, lease *ls)
{
    if (lease_get(c, ls, 0) < 0 || ls->disabled)
        return NULL;
    pl_redis_conn *rc = pl_redis_acquire(c->redis);
    if (!rc)
        return NULL;
    if (strcmp(pl_redis_run_id(rc), ls->run_id) != 0) {
        /* A Redis the shared state does not know: a new or restarted
         * instance whose contents cannot be trusted. Move the epoch. */
        char run_id[64];
        snprintf(run_id, sizeof run_id, "%s", pl_redis_run_id(rc));
        pl_redis_release(c->redis, rc, 0);
        bind_run_id(c, run_id);
        if (lease_get(c, ls, 0) < 0 || ls->disabled || strcmp(run_id, ls->run_id) != 0)
            return NULL;
        if (!(rc = pl_redis_acquire(c->redis)))
            return NULL;
        if (strcmp(pl_redis_run_id(rc), ls->run_id) != 0) {
            pl_redis_release(c->redis, rc, 0);
            return NULL;
        }
    }
    return rc;
}

int pl_cache_get(pl_cache *c, pl_cache_ticket *t, const char *entity, const void *field,
                 size_t field_len, pl_result **out)
{
    memset(t, 0, sizeof *t);
    *out = NULL;
    lease ls;
    pl_redis_conn *rc = usable_conn(c, &ls);
    if (!rc) {
        COUNT(c, bypassed);
        return -1;
    }
    make_key(&t->key, c->prefix, ls.ledger_id, ls.epoch, entity);
    pl_buf_put(&t->field, field, field_len);
    if (t->key.failed || t->field.failed) {
        pl_redis_release(c->redis, rc, 0);
        COUNT(c, bypassed);
        return -1;
    }
    const char *argv[4] = {"HMGET", t->key.data, "t", t->field.data};
    size_t argl[4] = {5, t->key.len, 1, t->field.len};
    redisReply *rep = redisCommandArgv(pl_redis_ctx(rc), 4, argv, argl);
    if (!rep) {
        pl_redis_release(c->redis, rc, 1);
        COUNT(c, bypassed);
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        freeReplyObject(rep);
        pl_redis_count_error(c->redis);
        pl_redis_release(c->redis, rc, 0);
        COUNT(c, bypassed);
        return -1;
    }
    redisReply *tok = rep->element[0], *val = rep->element[1];
    if (val->type == REDIS_REPLY_STRING) {
        pl_time until;
        pl_result *r = pl_result_decode(val->str, val->len, &until);
        if (r && (until == PL_TIME_INFINITY || until > pg_now_upper(&ls))) {
            freeReplyObject(rep);
            pl_redis_release(c->redis, rc, 0);
            r->origin = PL_ORIGIN_CACHE;
            *out = r;
            COUNT(c, hits);
            return 1;
        }
        if (!r)
            pl_redis_count_error(c->redis);
        pl_result_free(r);
    }
    COUNT(c, misses);
    if (tok->type == REDIS_REPLY_STRING && tok->len < sizeof t->token) {
        memcpy(t->token, tok->str, tok->len);
        t->token[tok->len] = '\0';
        freeReplyObject(rep);
    } else {
        freeReplyObject(rep);
        char fresh[40];
        new_token(c, fresh);
        const char *av[3] = {t->key.data, fresh, c->ttl_text};
        size_t al[3] = {t->key.len, strlen(fresh), strlen(c->ttl_text)};
        redisReply *tr = pl_redis_script(rc, PL_SCRIPT_TOKEN, 1, 3, av, al);
        if (!tr) {
            pl_redis_release(c->redis, rc, 1);
            return 0;
        }
        int good = tr->type == REDIS_REPLY_STRING && tr->len < sizeof t->token;
        if (good) {
            memcpy(t->token, tr->str, tr->len);
            t->token[tr->len] = '\0';
        } else {
            pl_redis_count_error(c->redis);
        }
        freeReplyObject(tr);
        if (!good) {
            pl_redis_release(c->redis, rc, 0);
            return 0;
        }
    }
    pl_redis_release(c->redis, rc, 0);
    t->armed = 1;
    t->epoch = ls.epoch;
    return 0;
}

void pl_cache_fill(pl_cache *c, pl_cache_ticket *t, const pl_result *r, pl_time valid_until)
{
    if (!t->armed)
        return;
    if (c->fill_hook)
        c->fill_hook(c->fill_hook_arg);
    pl_buf val;
    memset(&val, 0, sizeof val);
    if (pl_result_encode(&val, r, valid_until) < 0) {
        pl_buf_free(&val);
        return;
    }
    pl_redis_conn *rc = pl_redis_acquire(c->redis);
    if (!rc) {
        pl_buf_free(&val);
        return;
    }
    const char *av[6] = {t->key.data, t->token, t->field.data, val.data, c->ttl_text,
                         MAX_FIELDS_PER_ENTITY};
    size_t al[6] = {t->key.len, strlen(t->token), t->field.len, val.len, strlen(c->ttl_text),
                    strlen(MAX_FIELDS_PER_ENTITY)};
    redisReply *rep = pl_redis_script(rc, PL_SCRIPT_FILL, 1, 6, av, al);
    pl_buf_free(&val);
    if (!rep) {
        pl_redis_release(c->redis, rc, 1);
        return;
    }
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
        COUNT(c, fills);
    else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
        COUNT(c, refused);
    else if (rep->type == REDIS_REPLY_ERROR)
        pl_redis_count_error(c->redis);
    freeReplyObject(rep);
    pl_redis_release(c->redis, rc, 0);
}

void pl_cache_ticket_release(pl_cache_ticket *t)
{
    pl_buf_free(&t->key);
    pl_buf_free(&t->field);
    t->armed = 0;
}

/* ------------------------------------------------------------------------ */
/* Writes                                                                    */
/* ------------------------------------------------------------------------ */

static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Redis could not be told about a committed write: make sure no process
 * can serve the entity's old answers, then return. */
static void disable_for_write(pl_cache *c)
{
    uint64_t now = pl_mono_us();
    pthread_mutex_lock(&c->mu);
    lease ls = c->lease;
    int covered = c->own_disabled_at_us && ls.valid &&
                  c->own_disabled_until - pg_now_upper(&ls) > 100000 &&
                  (int64_t)(now - c->own_disabled_at_us) + c->own_disabled_for_us >=
                      (int64_t)c->lease_ms * 1000;
    pthread_mutex_unlock(&c->mu);
    if (covered)
        return; /* our own window still covers this commit, and is old enough */

    unsigned window = c->lease_ms * 4 > 10000 ? c->lease_ms * 4 : 10000;
    char ms[8];
    put_i64(ms, window);
    const char *values[1] = {ms};
    int lengths[1] = {8};
    PGresult *r = NULL;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", pl_errmsg());
    uint64_t sent = pl_mono_us();
    int rc = pl_read(c->l, 0, PL_STMT_CACHE_DISABLE, values, lengths, &r);
    pl_fail(0, "%s", saved);
    if (rc != PL_OK || PQntuples(r) != 1) {
        /* PostgreSQL went away right after the commit as well: nothing more
         * can be done; the TTL bounds how long an old answer may live. */
        PQclear(r);
        return;
    }
    int64_t disabled_for = pl_get_i64(PQgetvalue(r, 0, 1));
    pl_time until = pl_wire_get_time(PQgetvalue(r, 0, 2));
    pl_time pg_now = pl_wire_get_time(PQgetvalue(r, 0, 3));
    /* Wait out the longest lease any process holds, not just ours. */
    int64_t lease_us = (int64_t)c->lease_ms * 1000;
    if (PQgetlength(r, 0, 4) == 4) {
        int64_t shared = (int64_t)pl_get_u32(PQgetvalue(r, 0, 4)) * 1000;
        if (shared > lease_us)
            lease_us = shared;
    }
    PQclear(r);
    pthread_mutex_lock(&c->mu);
    c->own_disabled_until = until;
    c->own_disabled_at_us = sent;
    c->own_disabled_for_us = disabled_for;
    c->lease.valid = 0; /* everyone, us included, must re-read the state */
    (void)pg_now;
    pthread_mutex_unlock(&c->mu);
    int64_t wait = lease_us - disabled_for;
    if (wait > 0)
        sleep_us(wait + 1000);
}

static int del_keys(pl_redis_conn *rc, const char *prefix, const char *ledger_id,
                    const int64_t *epochs, int nepochs, const char *const *entities, size_t n)
{
    size_t per = (size_t)nepochs;
    size_t max_keys = DEL_CHUNK * per + 1;
    const char **argv = malloc(max_keys * sizeof *argv);
    size_t *argl = malloc(max_keys * sizeof *argl);
    pl_buf *keys = calloc(DEL_CHUNK * per, sizeof *keys);
    int rc_out = 0;
    size_t sent = 0;
    if (!argv || !argl || !keys) {
        rc_out = -1;
        goto done;
    }
    for (size_t start = 0; start < n; start += DEL_CHUNK) {
        size_t end = start + DEL_CHUNK < n ? start + DEL_CHUNK : n;
        int argc = 0;
        argv[argc] = "DEL", argl[argc++] = 3;
        for (size_t i = start; i < end; i++) {
            for (size_t e = 0; e < per; e++) {
                pl_buf *k = &keys[(i - start) * per + e];
                make_key(k, prefix, ledger_id, epochs[e], entities[i]);
                if (k->failed) {
                    rc_out = -1;
                    goto done;
                }
                argv[argc] = k->data, argl[argc++] = k->len;
            }
        }
        if (redisAppendCommandArgv(pl_redis_ctx(rc), argc, argv, argl) != REDIS_OK) {
            rc_out = -1;
            goto done;
        }
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        void *rep = NULL;
        if (redisGetReply(pl_redis_ctx(rc), &rep) != REDIS_OK || !rep) {
            rc_out = -1;
            goto done;
        }
        int err = ((redisReply *)rep)->type == REDIS_REPLY_ERROR;
        freeReplyObject(rep);
        if (err)
            rc_out = -1;
    }
done:
    if (keys)
        for (size_t i = 0; i < DEL_CHUNK * per; i++)
            pl_buf_free(&keys[i]);
    free(keys);
    free(argv);
    free(argl);
    return rc_out;
}

void pl_cache_invalidate(pl_cache *c, const char *const *entities, size_t n, int64_t epoch)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&c->mu);
    c->invalidations += n;
    pthread_mutex_unlock(&c->mu);
    lease ls;
    if (lease_get(c, &ls, 0) < 0) {
        /* Without the state we cannot name the keys: make sure nobody
         * serves them instead. */
        disable_for_write(c);
        return;
    }
    /* The epoch the write saw, its neighbours (a move may have raced the
     * write) and the one our lease names. */
    int64_t epochs[4] = {epoch - 1, epoch, epoch + 1, 0};
    int nepochs = 3;
    if (ls.valid && (ls.epoch < epoch - 1 || ls.epoch > epoch + 1))
        epochs[nepochs++] = ls.epoch;
    pl_redis_conn *rc = pl_redis_acquire(c->redis);
    if (!rc) {
        disable_for_write(c);
        return;
    }
    if (del_keys(rc, c->prefix, ls.ledger_id, epochs, nepochs, entities, n) < 0) {
        pl_redis_release(c->redis, rc, 1);
        disable_for_write(c);
        return;
    }
    pl_redis_release(c->redis, rc, 0);
}

/* ------------------------------------------------------------------------ */
/* Rows written with plain SQL                                               */
/* ------------------------------------------------------------------------ */

static void invalidate_external(pl_cache *c, const char *entity)
{
    lease ls;
    if (lease_get(c, &ls, 0) < 0) {
        disable_for_write(c);
        return;
    }
    pl_cache_invalidate(c, &entity, 1, ls.epoch);
}

static void *listener_main(void *arg)
{
    pl_cache *c = arg;
    char *listen = pl_sql_expand("LISTEN \"@s@_external\"", c->l->cfg.schema);
    int connected_before = 0;
    unsigned backoff_ms = 100;
    while (listen && !atomic_load(&c->stop)) {
        int rc;
        PGconn *pg = pl_pool_connect_raw(c->l->pool, &rc);
        if (pg) {
            PQsetnonblocking(pg, 0);
            PGresult *r = PQexec(pg, listen);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                PQfinish(pg);
                pg = NULL;
            }
            PQclear(r);
        }
        if (!pg) {
            for (unsigned w = 0; w < backoff_ms && !atomic_load(&c->stop); w += 50)
                sleep_us(50000);
            backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
            continue;
        }
        backoff_ms = 100;
        /* Notifications sent while we were away are lost: treat the gap
         * like a write that could not invalidate. */
        if (connected_before)
            disable_for_write(c);
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
    free(listen);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

void pl_cache_stats(pl_cache *c, pl_stats_info *s)
{
    pl_redis_counters rc;
    pl_redis_counters_get(c->redis, &rc);
    pthread_mutex_lock(&c->mu);
    s->cache_hits = c->hits;
    s->cache_misses = c->misses;
    s->cache_fills = c->fills;
    s->cache_fills_refused = c->refused;
    s->cache_invalidations = c->invalidations;
    s->cache_bypassed = c->bypassed;
    uint64_t now = pl_mono_us();
    uint64_t disabled = c->disabled_total_us + (c->disabled_seen_since ? now - c->disabled_seen_since : 0);
    s->cache_degraded = rc.degraded || c->disabled_seen_since != 0;
    pthread_mutex_unlock(&c->mu);
    s->redis_errors = rc.errors;
    s->cache_degraded_us = rc.degraded_us + disabled;
}
