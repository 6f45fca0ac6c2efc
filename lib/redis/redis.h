/* A small pool of hiredis connections behind a circuit breaker, which runs
 * Lua scripts its user hands it (by index into the user's array, loaded on
 * every new connection and reloaded after NOSCRIPT). Speaks Redis; knows
 * nothing of SQL, of the scripts' texts, or of what the keys mean. */
#ifndef PL_REDIS_H
#define PL_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pl_redis pl_redis;
typedef struct pl_redis_conn pl_redis_conn;

typedef struct pl_redis_config {
    const char *url;
    unsigned int connect_timeout_ms;
    unsigned int command_timeout_ms;
    unsigned int pool_size;
    unsigned int retry_ms;
} pl_redis_config;

/* PL_OK when the URL is well formed, else PL_EINVAL saying why. */
int pl_redis_check_url(const char *url);

/* Parses the URL (PL_EINVAL when malformed); connects lazily. */
int pl_redis_create(pl_redis **out, const pl_redis_config *cfg);
void pl_redis_destroy(pl_redis *r);

/* The scripts every connection loads (SCRIPT LOAD) when it is made; the
 * script arguments below are indexes into this array. Borrowed: the array
 * and its texts must outlive r. Call before the first pl_redis_acquire. */
void pl_redis_set_scripts(pl_redis *r, const char *const *scripts, size_t n);

/* A connection, or NULL while the breaker is open or Redis cannot be
 * reached (which opens the breaker). At most one caller probes a failed
 * Redis per retry window; the others get NULL at once. */
pl_redis_conn *pl_redis_acquire(pl_redis *r);
/* Returns a connection; `failed` closes it and opens the breaker. */
void pl_redis_release(pl_redis *r, pl_redis_conn *c, int failed);

/* The database number the URL selects. */
int pl_redis_db(const pl_redis *r);

/* Where the URL points, borrowed from r: *host and *port for TCP (*path
 * NULL), or *path for a unix socket (*host NULL); *password NULL when the
 * URL has none. For tests of the URL parser; any out pointer may be NULL. */
void pl_redis_endpoint(const pl_redis *r, const char **host, int *port, const char **path,
                       const char **password);

/* The server's run_id, read when the connection was made. */
const char *pl_redis_run_id(const pl_redis_conn *c);
redisContext *pl_redis_ctx(pl_redis_conn *c);
/* Whether c's context may take another command (not after an error, nor
 * after hiredis lost its output buffer to a failed allocation). */
int pl_redis_usable(pl_redis_conn *c);
/* redisCommandArgv on c, safe when an allocation fails (redis.c); NULL
 * on any failure, after which c is not usable. argvlen NULL: strlen. */
redisReply *pl_redis_command(pl_redis_conn *c, int argc, const char **argv, const size_t *argvlen);

/* Runs the preloaded script number `script` (EVALSHA, reloading the
 * scripts after SCRIPT FLUSH or a restart). Returns NULL on a connection
 * error (or an index or argument count out of range); the caller frees. */
redisReply *pl_redis_script(pl_redis_conn *c, int script, int nkeys, int argc, const char **argv,
                            const size_t *argvlen);

/* Queues the preloaded script number `script` without waiting for its
 * reply (pipelining); read the replies with pl_redis_script_reply in
 * order. Returns -1 when the command could not be queued. */
int pl_redis_script_append(pl_redis_conn *c, int script, int nkeys, int argc, const char **argv,
                           const size_t *argvlen);
/* The next queued reply, or NULL on a connection error. A NOSCRIPT error
 * (Redis lost its scripts) comes back as that error and is remembered for
 * pl_redis_reload_if_needed. */
redisReply *pl_redis_script_reply(pl_redis_conn *c);
/* After pipelined replies: reloads the scripts when one said NOSCRIPT;
 * -1 when that failed. */
int pl_redis_reload_if_needed(pl_redis_conn *c);

/* The longest wait between reconnection attempts of an open breaker. */
#define PL_REDIS_MAX_BACKOFF_MS 2000u

typedef struct pl_redis_counters {
    uint64_t errors;
    uint64_t degraded_us; /* closed time windows plus the current one */
    int degraded;
} pl_redis_counters;

void pl_redis_counters_get(pl_redis *r, pl_redis_counters *out);
/* Counts a failed command whose connection stays usable (an error reply). */
void pl_redis_count_error(pl_redis *r);

#endif
