/*
 * The result cache: why every answer it serves is linearizable, and why
 * nobody who can write to Redis can change one.
 *
 * Keys. All cached answers of one entity live in one Redis hash,
 * <prefix> NUL <ledger id>:<epoch>:<entity_id>, so one step drops the
 * entity and an eviction removes all of it at once. Answer fields are "c" +
 * field (current), "s" (snapshot), "a"/"S" + times (settled as-of); field
 * "t" holds a fill token; fields W, n and g hold the entity's write intents
 * (latest deadline by the Redis clock, how many, their generation). The
 * key <prefix> NUL <ledger id>:<epoch>: (no entity: entity ids are never
 * empty) is the epoch's marker. Keys and fields travel as binary-safe
 * arguments, never through a format string. The scripts are in scripts.c.
 *
 * The protocol, per entity (each step is one atomic Redis script):
 *  - write: INTENT before the statement (drops every answer and the token,
 *    counts one more intent, deadline now + INTENT_TTL_MS), then the
 *    statement commits, then CLEAR (one intent less; the last one drops the
 *    hash). A batch pipelines one INTENT and one CLEAR per entity.
 *  - read: LOOKUP returns the answer, or else a token, but no token while
 *    an intent is in force or the epoch marker is missing. The reader reads
 *    PostgreSQL, then FILL stores the answer only if the token is still
 *    there and no intent is in force, and never over a newer answer (each
 *    entry starts with its version, the greatest (transaction time, id) it
 *    holds, in fixed-width hex).
 *
 * Why a hit is linearizable: take a hit at instant h serving an answer read
 * from PostgreSQL at instant r (r < h), under a token obtained at instant k
 * (k < r). Let W be a write of the entity that committed before h. Its
 * INTENT ran before its commit, at instant i:
 *  - i < k: at k the intent was no longer in force (no token is given
 *    while one is), so it had been cleared after the commit, or had run
 *    out, which the writer rules out below; so W committed before k < r and
 *    the answer includes W;
 *  - k < i < fill: INTENT dropped the token, the fill was refused;
 *  - fill < i < h: INTENT dropped the answer, there was nothing to hit.
 * So no write committed between r and h: the answer is the ledger's state
 * at h, and h is the read's linearization point. A miss reads PostgreSQL,
 * which is linearizable, and its fill is covered by the same argument. A
 * write is linearized at its commit, between its call and its return.
 *
 * What the writer must guarantee for that: its intent is in force until it
 * commits. An intent runs out INTENT_TTL_MS after it was placed, by Redis's
 * clock; a writer whose commit returned later than INTENT_SAFE_US after it
 * sent the intent cannot rule out that it ran out first, and takes the
 * disable path below after its commit (for that write the guarantee falls
 * back to "no read older than a write that returned"). A write whose
 * outcome is unknown (the connection broke after it was sent) leaves its
 * intents to run out rather than clearing them before a late commit.
 *
 * When Redis cannot take an intent (unreachable, stalled past the command
 * timeout, or the lease cannot be read), the writer disables the cache for
 * every process before it writes: it marks the shared state in PostgreSQL
 * (table cache_state, which also moves the epoch, abandoning every old key)
 * and waits until every lease taken before has run out. Every process holds
 * a lease on that state and re-reads it at least every cache_lease_ms; while
 * disabled nobody reads or fills. The window is at least INTENT_TTL_MS plus
 * two leases, so that every intent placed under the old epoch has been
 * committed and cleared (or has run out) before anyone uses the new one.
 *
 * When Redis lost data: a Redis whose run_id differs from the one the
 * state is bound to (restarted, restored from an old snapshot, failed over)
 * or whose epoch marker is missing (flushed, evicted) cannot be trusted to
 * hold the intents in flight. The process that notices calls
 * pl_cache_recover(), which moves the epoch and disables the cache for the
 * same window. The processes that first use an epoch after its window (per
 * Redis database and key prefix) set the marker and then record in
 * PostgreSQL that it was set (table cache_marks), so a marker missing after
 * that means data was lost, never that it was not set yet. (Between the
 * first SET and its record, a flush goes unnoticed: about a millisecond,
 * once per epoch.) Hashes holding an
 * intent have no TTL, so volatile-* eviction policies never drop one;
 * allkeys-* policies can, and the marker may survive it (README).
 *
 * Authentication. Every entry is version (32 hex) | filled_at (8 bytes,
 * server clock, a lower bound of when its database read began) | MAC (32)
 * | encoded answer, where MAC = HMAC-SHA-256(key, "plc1" | ledger id |
 * epoch | entity | answer field | version | filled_at | encoded answer),
 * each variable part length-prefixed. The key is the ledger's secret in
 * PostgreSQL (pl_cache_secret(); never sent to Redis). A hit is refused,
 * dropped and counted (cache_rejected) when the MAC does not verify, the
 * entry is malformed, it is older than the TTL by the server's clock as the
 * lease bounds it, or it was filled before a write this handle made to the
 * entity (a per-handle table of the last transaction time written per
 * entity, so a captured entry put back after our own write is refused).
 * Someone who can write to Redis can therefore empty the cache or slow it,
 * and at most replay an answer that was the ledger's genuine answer to the
 * same question within one TTL and not older than this handle's last write
 * of that entity; never a value the ledger did not hold, never another
 * entity's or another question's answer.
 */
#include "cache.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cache_codec.h"
#include "error.h"
#include "redis.h"
#include "scripts.h"

#define MAX_FIELDS_PER_ENTITY "512"
#define CHUNK 256                 /* entities per pipelined round */
#define INTENT_TTL_MS 3000u       /* how long a write intent stays in force */
#define INTENT_SAFE_US 2500000u   /* a commit later than this after the intent: disable path */
#define MAC_KEY_BYTES 32
#define HORIZON_SLOTS 4096u       /* power of two */
#define AGE_SLACK_US 1000000      /* clock-estimate slack of the TTL check */
#define HORIZON_SLACK_US 1000     /* and of the check against our own last write */

typedef struct lease {
    int valid;
    char ledger_id[40];      /* random per ledger: two ledgers never share keys */
    int64_t epoch;
    char run_id[64];
    int disabled;
    pl_time pg_now;          /* server clock when read */
    uint64_t sent_us;        /* monotonic time the request left */
    uint64_t recv_us;        /* monotonic time its answer came back */
} lease;

/* The last transaction time this handle wrote to an entity (by a hash of
 * its id; a slot taken over by another entity forgets the older one). */
typedef struct horizon_slot {
    uint64_t hash;
    pl_time tt;
} horizon_slot;

struct pl_cache {
    pl_ledger *l;
    pl_redis *redis;
    const char *prefix;
    unsigned ttl_ms, lease_ms;
    char ttl_text[24];
    char intent_ttl_text[24];

    pthread_mutex_t mu;         /* lease, key, counters, horizon, disable bookkeeping */
    pthread_mutex_t refresh_mu; /* one lease refresh at a time */
    lease lease;
    EVP_MAC_CTX *mac_base;      /* keyed with the ledger's secret; NULL until read */
    int have_key;
    pl_time own_disabled_until;
    uint64_t own_disabled_at_us;   /* monotonic: when our disable call ran */
    int64_t own_disabled_for_us;   /* how long the window had run then */
    uint64_t disabled_seen_since;  /* monotonic, 0 when enabled */
    uint64_t disabled_total_us;

    uint64_t hits, misses, fills, refused, invalidations, bypassed, rejected;
    uint64_t rejected_at_us;       /* monotonic time of the last rejection */
    atomic_uint_fast64_t token_seq;
    uint64_t token_salt;
    horizon_slot horizon[HORIZON_SLOTS];

    void (*fill_hook)(void *);
    void *fill_hook_arg;
    void (*write_hook)(void *);
    void *write_hook_arg;

    /* listener for rows written with plain SQL */
    pthread_t listener;
    int listener_started;
    atomic_int stop;
    pthread_cond_t listening_cv; /* signalled once LISTEN took effect */
    int listening;
};

#define COUNT(c, field)                \
    do {                               \
        pthread_mutex_lock(&(c)->mu);  \
        (c)->field++;                  \
        pthread_mutex_unlock(&(c)->mu); \
    } while (0)

static void *listener_main(void *arg);

/* How long the cache stays off after a disable or an epoch move: every
 * intent placed before has run out or been cleared by then, and every lease
 * taken before has been renewed (cache.c, top). */
static unsigned disable_window_ms(const pl_cache *c)
{
    unsigned w = INTENT_TTL_MS + 2 * c->lease_ms + 1000;
    if (w < c->lease_ms * 4)
        w = c->lease_ms * 4;
    return w;
}

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
    snprintf(c->intent_ttl_text, sizeof c->intent_ttl_text, "%u", INTENT_TTL_MS);
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
    pl_redis_set_scripts(c->redis, pl_cache_scripts, PL_SCRIPT_COUNT);
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
    EVP_MAC_CTX_free(c->mac_base);
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

void pl_cache_set_write_hook(pl_cache *c, void (*hook)(void *), void *arg)
{
    c->write_hook = hook;
    c->write_hook_arg = arg;
}

/* ------------------------------------------------------------------------ */
/* The lease and the key                                                     */
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

/* Runs one cache-state statement without replacing the caller's error
 * message (a cache detail is never the answer to the caller's call). */
static int state_stmt(pl_cache *c, int stmt, const char *const *values, const int *lengths,
                      PGresult **out)
{
    pl_errsave saved;
    pl_error_save(&saved);
    int rc = pl_read(c->l, 0, stmt, values, lengths, out);
    pl_error_restore(&saved);
    return rc;
}

/* Reads the MAC key once; until it is known the cache is not used. */
static void load_key(pl_cache *c)
{
    PGresult *r = NULL;
    if (state_stmt(c, PL_STMT_CACHE_SECRET, NULL, NULL, &r) == PL_OK && PQntuples(r) == 1 &&
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
    pl_cc_put_i64(ms, c->lease_ms);
    const char *values[1] = {ms};
    int lengths[1] = {8};
    before = pl_mono_us();
    int rc = state_stmt(c, PL_STMT_CACHE_LEASE, values, lengths, &r);
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

/* The latest the server's clock can read now, by this lease. */
static pl_time pg_now_upper(const lease *ls)
{
    return ls->pg_now + (pl_time)(pl_mono_us() - ls->sent_us);
}

/* The earliest the server's clock can read now, by this lease. */
static pl_time pg_now_lower(const lease *ls)
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
    pl_buf_put(&binding, c->prefix, strlen(c->prefix));
    int answer = -1;
    if (!binding.failed) {
        const char *values[5] = {run_id, ep, window, binding.data, conf};
        int lengths[5] = {(int)strlen(run_id), 8, 8, (int)binding.len, 8};
        PGresult *r = NULL;
        if (state_stmt(c, PL_STMT_CACHE_RECOVER, values, lengths, &r) == PL_OK &&
            PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 4)
            answer = (int)pl_get_u32(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    pl_buf_free(&binding);
    return answer;
}

static int marker_exists(pl_redis_conn *rc, const pl_buf *marker)
{
    const char *argv[2] = {"EXISTS", marker->data};
    size_t argl[2] = {6, marker->len};
    redisReply *rep = redisCommandArgv(pl_redis_ctx(rc), 2, argv, argl);
    int yes = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    if (rep)
        freeReplyObject(rep);
    return yes;
}

/* Redis cannot be trusted with the epoch in flight (another run_id, or the
 * epoch marker missing): let PostgreSQL move the epoch, or learn that the
 * epoch's marker was never confirmed, set it and confirm it. A marker seen
 * missing before another process confirmed it is looked at again before
 * anything moves. Returns 1 when the marker is set (the epoch is usable),
 * 0 otherwise. */
static int recover(pl_cache *c, pl_redis_conn *rc, const char *run_id, int64_t epoch,
                   const pl_buf *marker)
{
    lease ignored;
    int answer = recover_call(c, run_id, epoch, RECOVER_ASK);
    if (answer == 2 && rc && marker) {
        if (marker_exists(rc, marker))
            return 1;
        recover_call(c, run_id, epoch, RECOVER_MOVE); /* lost: Redis was flushed or evicted */
        answer = 0;
    }
    if (answer != 1 || !rc || !marker) {
        lease_get(c, &ignored, 1);
        return 0;
    }
    const char *argv[3] = {"SET", marker->data, "1"};
    size_t argl[3] = {3, marker->len, 1};
    redisReply *rep = redisCommandArgv(pl_redis_ctx(rc), 3, argv, argl);
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep)
        freeReplyObject(rep);
    return ok && recover_call(c, run_id, epoch, RECOVER_CONFIRM) == 1;
}

/* ------------------------------------------------------------------------ */
/* Keys, versions, MACs                                                      */
/* ------------------------------------------------------------------------ */

static void new_token(pl_cache *c, char out[40])
{
    uint64_t seq = atomic_fetch_add(&c->token_seq, 1);
    snprintf(out, 40, "%016llx%08x%llx", (unsigned long long)c->token_salt, (unsigned)getpid(),
             (unsigned long long)seq);
}

/* A fresh copy of the keyed MAC context for one entry (NULL while no key
 * is known, or out of memory); the caller frees it. */
static EVP_MAC_CTX *mac_copy(pl_cache *c)
{
    pthread_mutex_lock(&c->mu);
    EVP_MAC_CTX *m = c->mac_base ? EVP_MAC_CTX_dup(c->mac_base) : NULL;
    pthread_mutex_unlock(&c->mu);
    return m;
}

static uint64_t entity_hash(const char *entity)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)entity; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    return h | 1; /* 0 marks an empty slot */
}

static void horizon_note(pl_cache *c, const char *entity, pl_time tt)
{
    uint64_t h = entity_hash(entity);
    horizon_slot *s = &c->horizon[h & (HORIZON_SLOTS - 1)];
    pthread_mutex_lock(&c->mu);
    if (s->hash != h || s->tt < tt) {
        s->hash = h;
        s->tt = tt;
    }
    pthread_mutex_unlock(&c->mu);
}

static pl_time horizon_get(pl_cache *c, const char *entity)
{
    uint64_t h = entity_hash(entity);
    const horizon_slot *s = &c->horizon[h & (HORIZON_SLOTS - 1)];
    pthread_mutex_lock(&c->mu);
    pl_time tt = s->hash == h ? s->tt : INT64_MIN;
    pthread_mutex_unlock(&c->mu);
    return tt;
}

/* Verifies an entry found under (entity, field) and decodes it. Returns 1
 * with *out set, 0 when it is genuine but past its valid-time boundary (a
 * plain miss), -1 when it must be refused. */
static int entry_open(pl_cache *c, const lease *ls, const char *entity, const pl_buf *field,
                      const char *val, size_t len, pl_result **out)
{
    *out = NULL;
    pl_time filled_at;
    EVP_MAC_CTX *m = mac_copy(c);
    int verified = pl_cc_entry_verify(m, ls->ledger_id, ls->epoch, entity, field, val, len, &filled_at);
    EVP_MAC_CTX_free(m);
    if (verified < 0)
        return -1;
    /* A hash lives at most cache_ttl_ms from its first fill (FILL sets its
     * TTL once), so a genuine entry is never older than that plus the
     * slack of the two clock estimates: an older one was put back. */
    if (pg_now_upper(ls) - filled_at > (pl_time)c->ttl_ms * 1000 + AGE_SLACK_US)
        return -1;
    /* Filled before our own last write of the entity: put back after it.
     * (A genuine fill after the write read the database after the write's
     * commit; the margin covers this lease's estimate of the clock.) */
    pl_time written = horizon_get(c, entity);
    if (written != INT64_MIN &&
        filled_at < written - (pl_time)(ls->recv_us - ls->sent_us) - HORIZON_SLACK_US)
        return -1;
    pl_time until;
    pl_result *r = pl_result_decode(val + ENTRY_HEADER, len - ENTRY_HEADER, &until);
    if (!r)
        return -1;
    if (until != PL_TIME_INFINITY && until <= pg_now_upper(ls)) {
        pl_result_free(r);
        return 0;
    }
    *out = r;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                     */
/* ------------------------------------------------------------------------ */

void pl_cache_note_bypass(pl_cache *c)
{
    COUNT(c, bypassed);
}

/* A connection to the Redis the shared state is bound to, under a lease
 * that may be used for reads (enabled, key known), or NULL. */
static pl_redis_conn *bound_conn(pl_cache *c, lease *ls)
{
    if (lease_get(c, ls, 0) < 0)
        return NULL;
    pl_redis_conn *rc = pl_redis_acquire(c->redis);
    if (!rc)
        return NULL;
    if (strcmp(pl_redis_run_id(rc), ls->run_id) != 0) {
        /* A new or restarted instance whose contents cannot be trusted. */
        char run_id[64];
        snprintf(run_id, sizeof run_id, "%s", pl_redis_run_id(rc));
        recover(c, NULL, run_id, ls->epoch, NULL);
        if (lease_get(c, ls, 0) < 0 || strcmp(run_id, ls->run_id) != 0) {
            pl_redis_release(c->redis, rc, 0);
            return NULL;
        }
    }
    return rc;
}

static pl_redis_conn *usable_conn(pl_cache *c, lease *ls)
{
    pl_redis_conn *rc = bound_conn(c, ls);
    if (rc && (ls->disabled || !c->have_key)) {
        pl_redis_release(c->redis, rc, 0);
        return NULL;
    }
    return rc;
}

static void reject(pl_cache *c, pl_redis_conn *rc, const pl_cache_ticket *t, const char *val,
                   size_t len, int count)
{
    if (count) {
        pthread_mutex_lock(&c->mu);
        c->rejected++;
        c->rejected_at_us = pl_mono_us();
        pthread_mutex_unlock(&c->mu);
    }
    const char *av[3] = {t->key.data, t->field.data, val};
    size_t al[3] = {t->key.len, t->field.len, len};
    redisReply *rep = pl_redis_script(rc, PL_SCRIPT_DROP, 1, 3, av, al);
    if (rep)
        freeReplyObject(rep);
}

/* Lookup outcomes of one LOOKUP call. */
enum { LOOK_BYPASS = -1, LOOK_MISS = 0, LOOK_HIT = 1, LOOK_AGAIN = 2 };

static int lookup_once(pl_cache *c, pl_redis_conn *rc, const lease *ls, pl_cache_ticket *t,
                       const pl_buf *marker, int *broken, pl_result **out)
{
    char fresh[40];
    new_token(c, fresh);
    const char *av[5] = {t->key.data, marker->data, t->field.data, fresh, c->ttl_text};
    size_t al[5] = {t->key.len, marker->len, t->field.len, strlen(fresh), strlen(c->ttl_text)};
    redisReply *rep = pl_redis_script(rc, PL_SCRIPT_LOOKUP, 2, 5, av, al);
    if (!rep) {
        *broken = 1;
        return LOOK_BYPASS;
    }
    int status = -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER)
        status = (int)rep->element[0]->integer;
    const redisReply *arg = rep->elements >= 2 ? rep->element[1] : NULL;
    int outcome = LOOK_BYPASS;
    if ((status == 1 || status == 2) && (!arg || arg->type != REDIS_REPLY_STRING))
        status = -1;
    switch (status) {
    case 1: {
        pl_result *r = NULL;
        int v = entry_open(c, ls, t->entity, &t->field, arg->str, arg->len, &r);
        if (v == 1) {
            r->origin = PL_ORIGIN_CACHE;
            *out = r;
            outcome = LOOK_HIT;
        } else {
            /* Refused (counted) or past its valid-time boundary (not):
             * drop it and look again, which hands out a token. */
            reject(c, rc, t, arg->str, arg->len, v < 0);
            outcome = LOOK_AGAIN;
        }
        break;
    }
    case 2:
        if (arg->len < sizeof t->token) {
            memcpy(t->token, arg->str, arg->len);
            t->token[arg->len] = '\0';
            t->armed = 1;
            /* The database read that follows starts after this instant. */
            t->read_after = pg_now_lower(ls);
            outcome = LOOK_MISS;
        }
        break;
    case 3:
        outcome = LOOK_MISS; /* a write is in flight: read, do not fill */
        break;
    case 4:
        /* No marker: either nobody has used this epoch yet, or Redis lost
         * it. PostgreSQL knows which. */
        outcome = recover(c, rc, ls->run_id, ls->epoch, marker) ? LOOK_AGAIN : LOOK_BYPASS;
        break;
    default:
        pl_redis_count_error(c->redis);
        break;
    }
    freeReplyObject(rep);
    return outcome;
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
    pl_buf marker;
    memset(&marker, 0, sizeof marker);
    pl_cc_make_key(&t->key, c->prefix, ls.ledger_id, ls.epoch, entity);
    pl_cc_make_key(&marker, c->prefix, ls.ledger_id, ls.epoch, "");
    pl_buf_put(&t->field, field, field_len);
    t->entity = entity;
    t->epoch = ls.epoch;
    snprintf(t->ledger_id, sizeof t->ledger_id, "%s", ls.ledger_id);
    int outcome = LOOK_BYPASS, broken = 0;
    if (!t->key.failed && !t->field.failed && !marker.failed) {
        outcome = lookup_once(c, rc, &ls, t, &marker, &broken, out);
        if (outcome == LOOK_AGAIN)
            outcome = lookup_once(c, rc, &ls, t, &marker, &broken, out);
        if (outcome == LOOK_AGAIN) {
            /* Refused twice in a row: someone keeps writing it. */
            pl_result_free(*out);
            *out = NULL;
            outcome = LOOK_BYPASS;
        }
    }
    pl_buf_free(&marker);
    pl_redis_release(c->redis, rc, broken);
    if (outcome == LOOK_HIT) {
        COUNT(c, hits);
        return 1;
    }
    if (outcome == LOOK_MISS) {
        COUNT(c, misses);
        return 0;
    }
    t->armed = 0;
    COUNT(c, bypassed);
    return -1;
}

void pl_cache_fill(pl_cache *c, pl_cache_ticket *t, const pl_result *r, pl_time valid_until)
{
    if (!t->armed)
        return;
    if (c->fill_hook)
        c->fill_hook(c->fill_hook_arg);
    pl_buf val;
    memset(&val, 0, sizeof val);
    EVP_MAC_CTX *m = mac_copy(c);
    int sealed = pl_cc_entry_seal(&val, m, t->ledger_id, t->epoch, t->entity, &t->field, r,
                                  valid_until, t->read_after);
    EVP_MAC_CTX_free(m);
    if (sealed < 0) {
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
    else if (rep->type == REDIS_REPLY_INTEGER && (rep->integer == 0 || rep->integer == 3))
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

/* Makes sure no process serves the cache before a new epoch whose window
 * outlasts every intent in flight, and returns once every lease taken
 * before has run out. */
static void disable_cache(pl_cache *c)
{
    uint64_t now = pl_mono_us();
    pthread_mutex_lock(&c->mu);
    lease ls = c->lease;
    int covered = c->own_disabled_at_us && ls.valid &&
                  c->own_disabled_until - pg_now_upper(&ls) > (pl_time)INTENT_TTL_MS * 1000 &&
                  (int64_t)(now - c->own_disabled_at_us) + c->own_disabled_for_us >=
                      (int64_t)c->lease_ms * 1000;
    pthread_mutex_unlock(&c->mu);
    if (covered)
        return; /* our window is known to all, and outlasts this write */

    char ms[8];
    pl_cc_put_i64(ms, disable_window_ms(c));
    const char *values[1] = {ms};
    int lengths[1] = {8};
    PGresult *r = NULL;
    uint64_t sent = pl_mono_us();
    int rc = state_stmt(c, PL_STMT_CACHE_DISABLE, values, lengths, &r);
    if (rc != PL_OK || PQntuples(r) != 1) {
        /* PostgreSQL cannot be reached either: the write itself will fail
         * or, after a commit, the TTL bounds how long an old answer lives. */
        PQclear(r);
        return;
    }
    int64_t disabled_for = pl_get_i64(PQgetvalue(r, 0, 1));
    pl_time until = pl_wire_get_time(PQgetvalue(r, 0, 2));
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
    pthread_mutex_unlock(&c->mu);
    int64_t wait = lease_us - disabled_for;
    if (wait > 0)
        sleep_us(wait + 1000);
}

/* One script per (entity, epoch) pair, pipelined CHUNK calls at a time:
 * call i is entity i / nepochs in epoch i % nepochs, with arguments from
 * args(i); reply(i, reply) sees each answer. Returns -1 when the connection
 * failed (replies not yet read are lost) or a reload of lost scripts did. */
typedef struct entity_round {
    pl_cache *c;
    pl_redis_conn *rc;
    const char *ledger_id;
    const int64_t *epochs;
    size_t nepochs;
    const char *const *entities;
    size_t n;
    int script;
    int argc;                                   /* after the key */
    void (*args)(struct entity_round *, size_t i, const char **av, size_t *al);
    void (*reply)(struct entity_round *, size_t i, const redisReply *rep);
    void *state;
} entity_round;

static int run_round(entity_round *er)
{
    pl_buf keys[CHUNK];
    memset(keys, 0, sizeof keys);
    int rc_out = 0;
    size_t calls = er->n * er->nepochs;
    for (size_t start = 0; start < calls && rc_out == 0; start += CHUNK) {
        size_t end = start + CHUNK < calls ? start + CHUNK : calls;
        size_t sent = 0;
        for (size_t i = start; i < end; i++) {
            pl_buf *k = &keys[i - start];
            pl_cc_make_key(k, er->c->prefix, er->ledger_id, er->epochs[i % er->nepochs],
                     er->entities[i / er->nepochs]);
            const char *av[8] = {k->data};
            size_t al[8] = {k->len};
            if (er->args)
                er->args(er, i, av + 1, al + 1);
            if (k->failed ||
                pl_redis_script_append(er->rc, er->script, 1, 1 + er->argc, av, al) < 0) {
                rc_out = -1;
                break;
            }
            sent++;
        }
        for (size_t i = 0; i < sent; i++) {
            redisReply *rep = pl_redis_script_reply(er->rc);
            if (!rep) {
                rc_out = -1;
                break;
            }
            er->reply(er, start + i, rep);
            freeReplyObject(rep);
        }
        if (pl_redis_reload_if_needed(er->rc) < 0)
            rc_out = -1;
    }
    for (size_t i = 0; i < CHUNK; i++)
        pl_buf_free(&keys[i]);
    return rc_out;
}

static void intent_args(entity_round *er, size_t i, const char **av, size_t *al)
{
    pl_cache_intent *it = er->state;
    new_token(er->c, it->gens[i]);
    av[0] = er->c->intent_ttl_text, al[0] = strlen(er->c->intent_ttl_text);
    av[1] = it->gens[i], al[1] = strlen(it->gens[i]);
}

static void intent_reply(entity_round *er, size_t i, const redisReply *rep)
{
    pl_cache_intent *it = er->state;
    if (rep->type == REDIS_REPLY_STRING && rep->len < sizeof it->gens[i]) {
        memcpy(it->gens[i], rep->str, rep->len);
        it->gens[i][rep->len] = '\0';
        it->placed++;
    } else {
        it->gens[i][0] = '\0'; /* NOSCRIPT, or an error */
        if (rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8) != 0)
            pl_redis_count_error(er->c->redis);
    }
}

/* Places every intent; a NOSCRIPT reply (Redis lost its scripts, reloaded
 * by run_round) leaves its pair without one, and a second round places the
 * missing ones. */
static int place_intents(pl_cache *c, pl_redis_conn *rc, pl_cache_intent *it,
                         const char *const *entities, size_t n)
{
    entity_round er = {c, rc, it->ledger_id, it->epochs, 2, entities, n, PL_SCRIPT_INTENT, 2,
                       intent_args, intent_reply, it};
    if (run_round(&er) < 0)
        return -1;
    for (size_t i = 0; i < 2 * n && it->placed < 2 * n; i++) {
        if (it->gens[i][0])
            continue;
        pl_cache_intent one = {.gens = &it->gens[i]};
        entity_round er1 = {c, rc, it->ledger_id, &it->epochs[i % 2], 1, &entities[i / 2], 1,
                            PL_SCRIPT_INTENT, 2, intent_args, intent_reply, &one};
        if (run_round(&er1) < 0)
            return -1;
        it->placed += one.placed;
    }
    return it->placed == 2 * n ? 0 : -1;
}

int pl_cache_intent_begin(pl_cache *c, pl_cache_intent *it, const char *const *entities, size_t n)
{
    memset(it, 0, sizeof *it);
    it->gens = calloc(n ? 2 * n : 1, sizeof *it->gens);
    if (!it->gens)
        return pl_fail(PL_ENOMEM, "out of memory");
    it->sent_us = pl_mono_us();
    lease ls;
    pl_redis_conn *rc = bound_conn(c, &ls);
    if (rc) {
        /* The epoch before ours too: a process whose lease predates a move
         * by pl_cache_recover() may still read it (cache.c, top). */
        snprintf(it->ledger_id, sizeof it->ledger_id, "%s", ls.ledger_id);
        it->epochs[0] = ls.epoch - 1;
        it->epochs[1] = ls.epoch;
        int failed = place_intents(c, rc, it, entities, n) < 0;
        pl_redis_release(c->redis, rc, failed);
        if (!failed)
            return PL_OK;
    }
    /* Some entity has no intent in force: nobody may use the cache until
     * this write is over. */
    disable_cache(c);
    return PL_OK;
}

static void clear_args(entity_round *er, size_t i, const char **av, size_t *al)
{
    pl_cache_intent *it = er->state;
    av[0] = it->gens[i], al[0] = strlen(it->gens[i]);
}

static void count_reply(entity_round *er, size_t i, const redisReply *rep)
{
    (void)i;
    if (rep->type != REDIS_REPLY_INTEGER)
        pl_redis_count_error(er->c->redis);
}

void pl_cache_intent_end(pl_cache *c, pl_cache_intent *it, const char *const *entities,
                         const pl_time *tts, size_t n, int outcome)
{
    if (tts)
        for (size_t i = 0; i < n; i++)
            horizon_note(c, entities[i], tts[i]);
    pthread_mutex_lock(&c->mu);
    c->invalidations += n;
    pthread_mutex_unlock(&c->mu);
    if (outcome == PL_CACHE_COMMITTED && c->write_hook)
        c->write_hook(c->write_hook_arg);
    /* The intents (or the disabled window) may have run out before the
     * commit: make sure nobody serves what was filled meanwhile. */
    if (outcome == PL_CACHE_COMMITTED && pl_mono_us() - it->sent_us > INTENT_SAFE_US)
        disable_cache(c);
    if (it->placed && outcome != PL_CACHE_UNKNOWN) {
        /* Pairs whose intent was not placed have an empty generation,
         * which CLEAR never matches: it drops their hash. */
        pl_redis_conn *rc = pl_redis_acquire(c->redis);
        if (rc) {
            entity_round er = {c, rc, it->ledger_id, it->epochs, 2, entities, n, PL_SCRIPT_CLEAR,
                               1, clear_args, count_reply, it};
            pl_redis_release(c->redis, rc, run_round(&er) < 0);
        }
        /* When Redis is gone the intents stay in force until they run out:
         * nobody can fill an old answer meanwhile. */
    }
    free(it->gens);
    it->gens = NULL;
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
        disable_cache(c);
        return;
    }
    /* The epoch the write saw, its neighbours (a move may have raced the
     * write) and the one our lease names. */
    int64_t epochs[4] = {epoch - 1, epoch, epoch + 1, 0};
    size_t nepochs = 3;
    if (ls.epoch < epoch - 1 || ls.epoch > epoch + 1)
        epochs[nepochs++] = ls.epoch;
    pl_redis_conn *rc = pl_redis_acquire(c->redis);
    int failed = rc == NULL;
    if (rc) {
        entity_round er = {c, rc, ls.ledger_id, epochs, nepochs, entities, n, PL_SCRIPT_INVALIDATE,
                           0, NULL, count_reply, NULL};
        failed = run_round(&er) < 0;
        pl_redis_release(c->redis, rc, failed);
    }
    if (failed)
        disable_cache(c);
}

/* ------------------------------------------------------------------------ */
/* Rows written with plain SQL                                               */
/* ------------------------------------------------------------------------ */

static void invalidate_external(pl_cache *c, const char *entity)
{
    lease ls;
    if (lease_get(c, &ls, 0) < 0) {
        disable_cache(c);
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
            disable_cache(c);
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
    s->cache_rejected = c->rejected;
    uint64_t now = pl_mono_us();
    uint64_t disabled = c->disabled_total_us + (c->disabled_seen_since ? now - c->disabled_seen_since : 0);
    s->cache_degraded = rc.degraded || c->disabled_seen_since != 0;
    pthread_mutex_unlock(&c->mu);
    s->redis_errors = rc.errors;
    s->cache_degraded_us = rc.degraded_us + disabled;
}
