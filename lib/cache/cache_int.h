/* The cache's insides, shared by its files and by nothing else:
 *  - cache.c: the protocol (keys, lookups, fills, tokens, write intents,
 *    invalidation, statistics, hooks, create/destroy);
 *  - lease.c: the PostgreSQL side (the lease on the shared cache state, the
 *    MAC key, disabling the cache, recovery and epoch markers);
 *  - listen.c: the LISTEN thread for rows written with plain SQL;
 *  - scripts.c: the Lua scripts, cache_codec.c: the pure parts.
 * PostgreSQL is reached only through the db layer (db/exec.h), by two
 * functions: pg_run (lease.c) and pg_listen_open (listen.c); the
 * configuration is pl_cache.cfg, copied by pl_cache_create. */
#ifndef PL_CACHE_INT_H
#define PL_CACHE_INT_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cache.h"
#include "redis.h"
#include "wire.h"

#define INTENT_TTL_MS 3000u       /* how long a write intent stays in force */
#define HORIZON_SLOTS 4096u       /* power of two */

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

/* The last transaction time this handle wrote to an entity, at most the
 * server clock's estimate when the write ended (by a hash of its id; a
 * slot taken over by another entity forgets the older one). */
typedef struct horizon_slot {
    uint64_t hash;
    pl_time tt;
} horizon_slot;

struct pl_cache {
    pl_db *db;                  /* only for pg_run and pg_listen_open */
    pl_cache_config cfg;
    pl_redis *redis;
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

    /* listener for rows written with plain SQL (listen.c) */
    pthread_t listener;
    int listener_started;
    atomic_int stop;
    pthread_cond_t listening_cv; /* signalled once LISTEN took effect */
    int listening;
};

/* lease.c ---------------------------------------------------------------- */

/* A current lease, re-read from PostgreSQL when older than cache_lease_ms
 * (force: re-read now); reads the MAC key first while it is unknown.
 * Returns 0, or -1 when PostgreSQL cannot say. */
int pl_cache_lease_get(pl_cache *c, lease *out, int force);

/* The latest the server's clock can read now, by this lease. */
pl_time pl_cache_now_upper(const lease *ls);

/* The earliest the server's clock can read now, by this lease. */
pl_time pl_cache_now_lower(const lease *ls);

/* Redis cannot be trusted with the epoch in flight (another run_id, or the
 * epoch marker missing): let PostgreSQL move the epoch, or learn that the
 * epoch's marker was never confirmed, set it (on rc) and confirm it. rc and
 * marker may be NULL (a run_id mismatch: nothing to set). Returns 1 when
 * the marker is set (the epoch is usable), 0 otherwise. */
int pl_cache_recover_epoch(pl_cache *c, pl_redis_conn *rc, const char *run_id, int64_t epoch,
                           const pl_buf *marker);

/* Makes sure no process serves the cache before a new epoch whose window
 * outlasts every intent in flight, and returns PL_OK once every lease
 * taken before has run out. When PostgreSQL cannot record it, returns the
 * error (the thread's error says why) and nothing is disabled. */
int pl_cache_disable(pl_cache *c);

/* listen.c --------------------------------------------------------------- */

/* Starts the listener thread and waits (bounded) until it listens.
 * PL_ENOMEM when the thread cannot be started. */
int pl_cache_listen_start(pl_cache *c);

/* Stops and joins the listener thread, if one was started. */
void pl_cache_listen_stop(pl_cache *c);

#endif
