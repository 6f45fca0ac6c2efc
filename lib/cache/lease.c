/* The cache's PostgreSQL side: the lease on the shared cache state (table
 * cache_state: ledger id, epoch, the Redis run_id it is bound to, whether
 * the cache is disabled, the server's clock), the MAC key (the ledger's
 * secret), disabling the cache for every process, and recovery when Redis
 * lost data (pl_cache_recover(), epoch markers and table cache_marks). Why
 * each is needed is argued at the top of cache.c. Every statement goes
 * through pg_run, the only function here that reaches PostgreSQL (through
 * db/exec.h, with the retry rules of an idempotent write). */
#include "cache_int.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "cache_codec.h"
#include "clock.h"
#include "error.h"
#include "schema.h"

#define MAC_KEY_BYTES 32

/* How long the cache stays off after a disable or an epoch move: every
 * intent placed before has run out or been cleared by then, and every lease
 * taken before has been renewed (cache.c, top). */
static unsigned disable_window_ms(const pl_cache *c)
{
    unsigned w = INTENT_TTL_MS + 2 * c->cfg.lease_ms + 1000;
    if (w < c->cfg.lease_ms * 4)
        w = c->cfg.lease_ms * 4;
    return w;
}

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
    return c->lease.valid && now - c->lease.sent_us < (uint64_t)c->cfg.lease_ms * 1000u;
}

/* Runs one cache-state statement on the primary without replacing the
 * caller's error message (a cache detail is never the answer to the
 * caller's call). With pg_listen_open (listen.c), the cache's only way to
 * PostgreSQL. */
static int pg_run(pl_cache *c, int stmt, const char *const *values, const int *lengths,
                  PGresult **out)
{
    pl_errsave saved;
    pl_error_save(&saved);
    int rc = pl_db_run(c->db, stmt, values, lengths, PL_RUN_IDEMPOTENT, out);
    pl_error_restore(&saved);
    return rc;
}

/* Reads the MAC key once; until it is known the cache is not used. */
static void load_key(pl_cache *c)
{
    PGresult *r = NULL;
    if (pg_run(c, PL_SQL_CACHE_SECRET, NULL, NULL, &r) == PL_OK && PQntuples(r) == 1 &&
        PQgetlength(r, 0, 0) == MAC_KEY_BYTES) {
        /* One keyed HMAC-SHA-256 context, copied for each MAC: the key
         * schedule and the digest lookup are paid once. */
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *base = mac ? EVP_MAC_CTX_new(mac) : NULL;
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
        if (base && EVP_MAC_init(base, (const unsigned char *)PQgetvalue(r, 0, 0), MAC_KEY_BYTES,
                                 params) == 1) {
            pthread_mutex_lock(&c->mu);
            c->mac_base = base;
            c->have_key = 1;
            pthread_mutex_unlock(&c->mu);
        } else {
            EVP_MAC_CTX_free(base);
        }
        EVP_MAC_free(mac); /* the context keeps its own reference */
    }
    PQclear(r);
}

int pl_cache_lease_get(pl_cache *c, lease *out, int force)
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
    int have_key = c->have_key;
    if (!force && lease_fresh(c, before)) {
        *out = c->lease;
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_unlock(&c->refresh_mu);
        return 0;
    }
    pthread_mutex_unlock(&c->mu);
    if (!have_key)
        load_key(c);
    PGresult *r = NULL;
    /* Our lease length joins the shared maximum, which writers wait out. */
    char ms[8];
    pl_cc_put_i64(ms, c->cfg.lease_ms);
    const char *values[1] = {ms};
    int lengths[1] = {8};
    before = pl_mono_us();
    int rc = pg_run(c, PL_SQL_CACHE_LEASE, values, lengths, &r);
    uint64_t after = pl_mono_us();
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
        nl.recv_us = after;
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

pl_time pl_cache_now_upper(const lease *ls)
{
    return ls->pg_now + (pl_time)(pl_mono_us() - ls->sent_us);
}

pl_time pl_cache_now_lower(const lease *ls)
{
    return ls->pg_now + (pl_time)(pl_mono_us() - ls->recv_us);
}

/* What pl_cache_recover is asked to do (its comment in
 * lib/sql/migrations/003_cache_secret.sql). */
enum { RECOVER_ASK = 0, RECOVER_CONFIRM = 1, RECOVER_MOVE = 2 };

/* Asks PostgreSQL about the epoch (pl_cache_recover). Returns the
 * function's answer, or -1. */
static int recover_call(pl_cache *c, const char *run_id, int64_t epoch, int action)
{
    char ep[8], window[8], conf[8];
    pl_cc_put_i64(ep, epoch);
    pl_cc_put_i64(window, disable_window_ms(c));
    pl_cc_put_i64(conf, action);
    /* Markers are per Redis database and key prefix. */
    pl_buf binding;
    memset(&binding, 0, sizeof binding);
    char db[16];
    snprintf(db, sizeof db, "%d:", pl_redis_db(c->redis));
    pl_buf_put(&binding, db, strlen(db));
    pl_buf_put(&binding, c->cfg.key_prefix, strlen(c->cfg.key_prefix));
    int answer = -1;
    if (!binding.failed) {
        const char *values[5] = {run_id, ep, window, binding.data, conf};
        int lengths[5] = {(int)strlen(run_id), 8, 8, (int)binding.len, 8};
        PGresult *r = NULL;
        if (pg_run(c, PL_SQL_CACHE_RECOVER, values, lengths, &r) == PL_OK &&
            PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 4)
            answer = (int)pl_get_u32(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    pl_buf_free(&binding);
    return answer;
}

/* 1 the marker is there, 0 Redis says it is not, -1 no sane answer. */
static int marker_exists(pl_redis_conn *rc, const pl_buf *marker)
{
    const char *argv[2] = {"EXISTS", marker->data};
    size_t argl[2] = {6, marker->len};
    redisReply *rep = pl_redis_command(rc, 2, argv, argl);
    int yes = -1;
    if (rep && rep->type == REDIS_REPLY_INTEGER && (rep->integer == 0 || rep->integer == 1))
        yes = (int)rep->integer;
    if (rep)
        freeReplyObject(rep);
    return yes;
}

/* (cache_int.h) A marker seen missing before another process confirmed it
 * is looked at again before anything moves. */
int pl_cache_recover_epoch(pl_cache *c, pl_redis_conn *rc, const char *run_id, int64_t epoch,
                           const pl_buf *marker)
{
    lease ignored;
    int answer = recover_call(c, run_id, epoch, RECOVER_ASK);
    if (answer == 2 && rc && marker) {
        int exists = marker_exists(rc, marker);
        if (exists == 1)
            return 1;
        /* Only Redis saying the marker is gone is evidence that it lost
         * data. A timeout, a broken or a nonsensical reply is not: moving
         * the epoch on one disabled the cache of every process for its
         * window (issue 12, hostile servers); this read just bypasses. */
        if (exists < 0)
            return 0;
        recover_call(c, run_id, epoch, RECOVER_MOVE); /* lost: Redis was flushed or evicted */
        answer = 0;
    }
    if (answer != 1 || !rc || !marker) {
        pl_cache_lease_get(c, &ignored, 1);
        return 0;
    }
    const char *argv[3] = {"SET", marker->data, "1"};
    size_t argl[3] = {3, marker->len, 1};
    redisReply *rep = pl_redis_command(rc, 3, argv, argl);
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep)
        freeReplyObject(rep);
    return ok && recover_call(c, run_id, epoch, RECOVER_CONFIRM) == 1;
}

/* (cache_int.h) Marks the shared state disabled in PostgreSQL (which moves
 * the epoch) unless our own window is known to cover this write. */
int pl_cache_disable(pl_cache *c)
{
    uint64_t now = pl_mono_us();
    pthread_mutex_lock(&c->mu);
    lease ls = c->lease;
    int covered = c->own_disabled_at_us && ls.valid &&
                  c->own_disabled_until - pl_cache_now_upper(&ls) > (pl_time)INTENT_TTL_MS * 1000 &&
                  (int64_t)(now - c->own_disabled_at_us) + c->own_disabled_for_us >=
                      (int64_t)c->cfg.lease_ms * 1000;
    pthread_mutex_unlock(&c->mu);
    if (covered)
        return PL_OK; /* our window is known to all, and outlasts this write */

    char ms[8];
    pl_cc_put_i64(ms, disable_window_ms(c));
    const char *values[1] = {ms};
    int lengths[1] = {8};
    PGresult *r = NULL;
    uint64_t sent = pl_mono_us();
    /* Not pg_run: a failure's reason stays the thread's error, for the
     * write that must then not be sent (pl_cache_intent_begin). */
    pl_errsave saved;
    pl_error_save(&saved);
    int rc = pl_db_run(c->db, PL_SQL_CACHE_DISABLE, values, lengths, PL_RUN_IDEMPOTENT, &r);
    if (rc == PL_OK && (PQntuples(r) != 1 || PQnfields(r) < 5))
        rc = pl_fail(PL_EDB, "pl_cache_disable() returned %d rows", PQntuples(r));
    if (rc != PL_OK) {
        PQclear(r);
        return rc;
    }
    pl_error_restore(&saved);
    int64_t disabled_for = pl_get_i64(PQgetvalue(r, 0, 1));
    pl_time until = pl_wire_get_time(PQgetvalue(r, 0, 2));
    /* Wait out the longest lease any process holds, not just ours. */
    int64_t lease_us = (int64_t)c->cfg.lease_ms * 1000;
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
    pthread_mutex_unlock(&c->mu);
    int64_t wait = lease_us - disabled_for;
    if (wait > 0)
        pl_sleep_us(wait + 1000);
    return PL_OK;
}
