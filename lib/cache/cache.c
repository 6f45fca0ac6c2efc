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
 * When PostgreSQL cannot record that either, the write is not sent (its
 * caller gets the error): PostgreSQL may answer the write a moment later,
 * a failover completing, while the other processes still serve the cache.
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
 *
 * Files. This one holds the protocol: keys, lookups, fills, tokens, write
 * intents, invalidation, and the statistics, test hooks, creation and
 * destruction. lease.c holds what the protocol keeps in PostgreSQL (the
 * lease, the MAC key, disabling, recovery and markers), listen.c the
 * listener for rows written with plain SQL, scripts.c the Redis scripts,
 * cache_codec.c the entry format; cache_int.h is what they share.
 */
#include "cache_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cache_codec.h"
#include "clock.h"
#include "error.h"
#include "scripts.h"

#define MAX_FIELDS_PER_ENTITY "512"
#define CHUNK 256                 /* entities per pipelined round */
#define INTENT_SAFE_US 2500000u   /* a commit later than this after the intent: disable path */
#define AGE_SLACK_US 1000000      /* clock-estimate slack of the TTL check */
#define HORIZON_SLACK_US 1000     /* and of the check against our own last write */

#define COUNT(c, field)                \
    do {                               \
        pthread_mutex_lock(&(c)->mu);  \
        (c)->field++;                  \
        pthread_mutex_unlock(&(c)->mu); \
    } while (0)

int pl_cache_create(pl_cache **out, const pl_cache_config *cfg, pl_db *db)
{
    *out = NULL;
    pl_cache *c = calloc(1, sizeof *c);
    if (!c)
        return pl_fail(PL_ENOMEM, "out of memory");
    c->db = db;
    c->cfg = *cfg;
    snprintf(c->ttl_text, sizeof c->ttl_text, "%u", c->cfg.ttl_ms);
    snprintf(c->intent_ttl_text, sizeof c->intent_ttl_text, "%u", INTENT_TTL_MS);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->refresh_mu, NULL);
    pthread_cond_init(&c->listening_cv, NULL);
    if (getrandom(&c->token_salt, sizeof c->token_salt, 0) != sizeof c->token_salt)
        c->token_salt = (uint64_t)getpid() * 0x9e3779b97f4a7c15u ^ pl_mono_us();
    int rc = pl_redis_create(&c->redis, &c->cfg.redis);
    if (rc) {
        pl_cache_destroy(c);
        return rc;
    }
    pl_redis_set_scripts(c->redis, pl_cache_scripts, PL_SCRIPT_COUNT);
    if (c->cfg.listen_external_writes && (rc = pl_cache_listen_start(c))) {
        pl_cache_destroy(c);
        return rc;
    }
    *out = c;
    return PL_OK;
}

void pl_cache_destroy(pl_cache *c)
{
    if (!c)
        return;
    pl_cache_listen_stop(c);
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
    if (pl_cache_now_upper(ls) - filled_at > (pl_time)c->cfg.ttl_ms * 1000 + AGE_SLACK_US)
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
    if (until != PL_TIME_INFINITY && until <= pl_cache_now_upper(ls)) {
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
    if (pl_cache_lease_get(c, ls, 0) < 0)
        return NULL;
    pl_redis_conn *rc = pl_redis_acquire(c->redis);
    if (!rc)
        return NULL;
    if (strcmp(pl_redis_run_id(rc), ls->run_id) != 0) {
        /* A new or restarted instance whose contents cannot be trusted. */
        char run_id[64];
        snprintf(run_id, sizeof run_id, "%s", pl_redis_run_id(rc));
        pl_cache_recover_epoch(c, NULL, run_id, ls->epoch, NULL);
        if (pl_cache_lease_get(c, ls, 0) < 0 || strcmp(run_id, ls->run_id) != 0) {
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
            t->read_after = pl_cache_now_lower(ls);
            outcome = LOOK_MISS;
        }
        break;
    case 3:
        outcome = LOOK_MISS; /* a write is in flight: read, do not fill */
        break;
    case 4:
        /* No marker: either nobody has used this epoch yet, or Redis lost
         * it. PostgreSQL knows which. */
        outcome = pl_cache_recover_epoch(c, rc, ls->run_id, ls->epoch, marker) ? LOOK_AGAIN : LOOK_BYPASS;
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
    pl_cc_make_key(&t->key, c->cfg.key_prefix, ls.ledger_id, ls.epoch, entity);
    pl_cc_make_key(&marker, c->cfg.key_prefix, ls.ledger_id, ls.epoch, "");
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
            pl_cc_make_key(k, er->c->cfg.key_prefix, er->ledger_id, er->epochs[i % er->nepochs],
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
     * this write is over. When that cannot be recorded either, the write
     * must not be sent: PostgreSQL may answer it a moment later (a
     * failover completing), and it would commit while other processes
     * serve their cached answers. */
    int disabled = pl_cache_disable(c);
    if (disabled != PL_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", pl_errmsg());
        free(it->gens);
        it->gens = NULL;
        return pl_fail(disabled, "not written: Redis did not take the write's intents and the cache "
                           "could not be disabled in PostgreSQL: %s", why);
    }
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
    if (tts) {
        /* Noted as the server's clock saw the write, never later: fills
         * are timed by that clock, and after a failover to a server whose
         * clock is behind, transaction times run ahead of it (migration
         * 11); noting them would refuse every honest fill meanwhile. */
        pl_time clock_upper = PL_TIME_INFINITY;
        pthread_mutex_lock(&c->mu);
        if (c->lease.pg_now != 0)
            clock_upper = pl_cache_now_upper(&c->lease);
        pthread_mutex_unlock(&c->mu);
        for (size_t i = 0; i < n; i++)
            horizon_note(c, entities[i], tts[i] < clock_upper ? tts[i] : clock_upper);
    }
    pthread_mutex_lock(&c->mu);
    c->invalidations += n;
    pthread_mutex_unlock(&c->mu);
    if (outcome == PL_CACHE_COMMITTED && c->write_hook)
        c->write_hook(c->write_hook_arg);
    /* The intents (or the disabled window) may have run out before the
     * commit: make sure nobody serves what was filled meanwhile. */
    if (outcome == PL_CACHE_COMMITTED && pl_mono_us() - it->sent_us > INTENT_SAFE_US)
        (void)pl_cache_disable(c); /* committed: nothing to refuse; CLEAR still drops fills */
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
    if (pl_cache_lease_get(c, &ls, 0) < 0) {
        /* Without the state we cannot name the keys: make sure nobody
         * serves them instead. */
        (void)pl_cache_disable(c); /* best effort: no write waits on it */
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
        (void)pl_cache_disable(c); /* best effort: the write has committed */
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
