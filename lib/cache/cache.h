/* The result cache, as the API files use it: lookups and fills of reads,
 * the intents of writes, invalidation after writes made with plain SQL,
 * statistics. The protocol that keeps every hit exact is argued at the top
 * of cache.c; the cache's insides are in cache_int.h. It speaks to Redis
 * through redis.h and to PostgreSQL only through the cache-state
 * statements (lease.c) and the listener's connection (listen.c). */
#ifndef PL_CACHE_H
#define PL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "exec.h"
#include "provledger.h" /* pl_time, pl_stats_info */
#include "redis.h"
#include "result.h"
#include "wire.h"

typedef struct pl_cache pl_cache;

/* What the cache needs of the handle's configuration. Strings are
 * borrowed: they must outlive the cache. */
typedef struct pl_cache_config {
    pl_redis_config redis;        /* redis_url, its timeouts, pool size, retry */
    const char *key_prefix;       /* cache_key_prefix */
    unsigned ttl_ms;              /* cache_ttl_ms */
    unsigned lease_ms;            /* cache_lease_ms */
    int listen_external_writes;
    unsigned pg_connect_timeout_ms; /* connect_timeout_ms: bounds the wait for LISTEN */
} pl_cache_config;

/* Creates the cache, running its PostgreSQL statements through db (which
 * must outlive it). An unreachable Redis is not an error (the cache starts
 * degraded); a malformed URL is PL_EINVAL. */
int pl_cache_create(pl_cache **out, const pl_cache_config *cfg, pl_db *db);
void pl_cache_destroy(pl_cache *c);

/* What a miss remembers so that its fill can be refused if a write landed
 * in between, and authenticated for what it answers. */
typedef struct pl_cache_ticket {
    int armed;          /* a fill may be attempted */
    int64_t epoch;
    char ledger_id[40];
    const char *entity; /* the caller's, alive until the fill */
    pl_time read_after; /* server clock: the database read starts after it */
    char token[40];
    pl_buf key;
    pl_buf field;
} pl_cache_ticket;

/* Looks up the answer stored under (entity, field bytes). Returns 1 on a
 * hit (*out set, may be an empty result for a cached "not found"), 0 on a
 * miss (the ticket is armed when a fill is possible), -1 when the cache
 * cannot be used now (bypass: read PostgreSQL, do not fill). */
int pl_cache_get(pl_cache *c, pl_cache_ticket *t, const char *entity, const void *field,
                 size_t field_len, pl_result **out);

/* Stores r after a miss unless a write completed since the lookup. */
void pl_cache_fill(pl_cache *c, pl_cache_ticket *t, const pl_result *r, pl_time valid_until);

void pl_cache_ticket_release(pl_cache_ticket *t);

/* A write's intents: placed before its statement, cleared after it. */
typedef struct pl_cache_intent {
    char (*gens)[40];   /* per (entity, epoch): the intent's generation, "" if none */
    size_t placed;      /* how many pairs hold one */
    char ledger_id[40];
    int64_t epochs[2];  /* the lease's epoch and the one before */
    uint64_t sent_us;   /* monotonic: when the intents were sent */
} pl_cache_intent;

/* How the write went, for pl_cache_intent_end. */
enum {
    PL_CACHE_COMMITTED, /* committed */
    PL_CACHE_FAILED,    /* rolled back, or never sent */
    PL_CACHE_UNKNOWN    /* may commit still: leave the intents to run out */
};

/* Before a write of these entities: records an intent in each entity's
 * hash, or, when Redis cannot take them, disables the cache for every
 * process before returning. An error when nothing could be set up (out of
 * memory, or neither Redis nor PostgreSQL recorded it): the write must not
 * go ahead. */
int pl_cache_intent_begin(pl_cache *c, pl_cache_intent *it, const char *const *entities, size_t n);

/* After the write: notes the transaction times written (tts, may be NULL)
 * and clears the intents. Frees what begin allocated. */
void pl_cache_intent_end(pl_cache *c, pl_cache_intent *it, const char *const *entities,
                         const pl_time *tts, size_t n, int outcome);

/* After a write the library did not see coming (plain SQL, reported by
 * NOTIFY): drop the cached answers of these entities. `epoch` is the cache
 * epoch the write saw. When Redis cannot be reached, disables the cache for
 * every process before returning. */
void pl_cache_invalidate(pl_cache *c, const char *const *entities, size_t n, int64_t epoch);

/* Counts a read that skipped the cache on purpose (PL_REALTIME). */
void pl_cache_note_bypass(pl_cache *c);

void pl_cache_stats(pl_cache *c, pl_stats_info *s);

/* Test hook: called between a miss's database read and its fill. */
void pl_cache_set_fill_hook(pl_cache *c, void (*hook)(void *), void *arg);

/* Test hook: called after a write committed, before its intents are
 * cleared (where the old protocol would have invalidated). */
void pl_cache_set_write_hook(pl_cache *c, void (*hook)(void *), void *arg);

#endif
