/*
 * libprovledger: a bitemporal, append-only provenance ledger on PostgreSQL,
 * with an optional Redis result cache that never serves a stale answer.
 *
 * This header is the reference for the library. Every declaration says what
 * it takes, what it returns, who owns what, and what is thread-safe.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PROVLEDGER_H
#define PROVLEDGER_H

#include <stddef.h>
#include <stdint.h>

#include <provledger/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a declaration exported from the shared library. */
#if defined(_WIN32)
#define PL_EXTERN __declspec(dllimport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define PL_EXTERN __attribute__((visibility("default")))
#else
#define PL_EXTERN
#endif

/**
 * @mainpage libprovledger
 *
 * @section model The model
 * Every change to one field of one entity is a record appended to the
 * ledger; records are never updated or deleted. A record carries two times:
 * - its *transaction time*: when the ledger learned it, assigned by the
 *   database server at commit, never by the client;
 * - its *valid time*: the half-open interval `[valid_from, valid_to)` in
 *   which the fact is true in the world, given by the caller.
 *
 * A record is *visible at (T, V)* when `transaction_time <= T` and
 * `valid_from <= V < valid_to` (an open end is infinity). For one entity and
 * field, *the answer at (T, V)* is the visible record with the greatest
 * `(transaction_time, id)`. #PL_TIME_ANY drops the condition on that axis;
 * #PL_TIME_NOW stands for the database server's current time; for one
 * entity, never a time before its last transaction time (after a failover
 * to a server whose clock is behind, an entity's transaction times run
 * ahead of that clock until it catches up, and its "now" is its last
 * transaction time meanwhile, so what was written valid "from now" is
 * current at once). On the transaction axis "now" means "everything
 * committed before the query's snapshot was taken", which is what the
 * ledger knows at that moment; as the end of a window it lies after every
 * record of the entity already committed.
 *
 * Within one entity, transaction times strictly increase in commit order:
 * concurrent writers to one entity are serialised, so an as-of answer for a
 * transaction time already past never changes.
 *
 * @section threads Threads
 * A #pl_ledger owns a pool of PostgreSQL connections and, when configured, a
 * pool of Redis connections: one handle may be shared by any number of
 * threads, and every function taking a `pl_ledger *` is safe to call
 * concurrently on the same handle, except pl_close(), which must be the last
 * call on it. A #pl_result is immutable and may be read from several threads
 * and freed by any thread. pl_errmsg() is per thread.
 */

/* ------------------------------------------------------------------------ */
/* Handles and time                                                          */
/* ------------------------------------------------------------------------ */

/** An open ledger: a connection pool, prepared statements, an optional cache.
 *  Opaque; one handle may be shared by many threads. */
typedef struct pl_ledger pl_ledger;

/** A query answer: an immutable, counted list of records. Opaque. */
typedef struct pl_result pl_result;

/** An instant: microseconds since 1970-01-01T00:00:00Z (UTC, no leap
 *  seconds). Stored instants lie in [#PL_TIME_MIN, #PL_TIME_MAX]. */
typedef int64_t pl_time;

/** In a query: no restriction on that time axis. */
#define PL_TIME_ANY INT64_MIN
/** Resolved to the database server's current time when the call runs. */
#define PL_TIME_NOW (INT64_MIN + 1)
/** The open end of a valid-time interval. */
#define PL_TIME_INFINITY INT64_MAX
/** The earliest storable instant, 0001-01-01T00:00:00Z. */
#define PL_TIME_MIN INT64_C(-62135596800000000)
/** The latest storable instant, 9999-12-31T23:59:59.999999Z. */
#define PL_TIME_MAX INT64_C(253402300799999999)

/* ------------------------------------------------------------------------ */
/* Status codes and error messages                                           */
/* ------------------------------------------------------------------------ */

/** Status codes. 0 is success, positive values are non-error outcomes,
 *  every error is negative. Values are never renumbered or reused. */
enum pl_status {
    PL_OK = 0,          /**< Success. */
    PL_NOT_FOUND = 1,   /**< No record answers the question (not an error). */
    PL_ITEROVER = 2,    /**< An iterator has no more items (not an error). */
    PL_EINVAL = -1,     /**< Bad argument: NULL, empty, invalid JSON or UTF-8,
                             too long, bad time. Nothing was written. */
    PL_ENOMEM = -2,     /**< Out of memory. */
    PL_ECONNECT = -3,   /**< Cannot reach PostgreSQL, or the connection broke
                             during the call (the pool replaces it). */
    PL_EDB = -4,        /**< PostgreSQL reported an error (message has it). */
    PL_ETIMEOUT = -5,   /**< A statement or pool-wait timeout expired. */
    PL_ESCHEMA = -6,    /**< The schema is missing, too old or too new:
                             run pl_migrate(), or upgrade the library. */
    PL_ECONFLICT = -7,  /**< An idempotency key was reused for a different
                             change, or imported transaction times are not
                             after the entity's last one. Nothing written. */
    PL_EPERM = -8,      /**< Not permitted: the ledger is append-only, or the
                             call needs an opt-in configuration field. */
    PL_EUNKNOWN = -9,   /**< The outcome of a write is unknown (the
                             connection broke during COMMIT). Retry with the
                             same idempotency key to land it exactly once. */
    PL_EUNSUPPORTED = -10, /**< The server lacks a feature the call needs
                               (for example the pg_cron extension). */
    PL_EVERIFY = -11    /**< Something did not verify: a proof, a signature,
                             a checkpoint, or the log against the rows
                             (evidence of tampering or corruption; pl_verify()
                             names what). */
};

/**
 * Static English text for a status code.
 * @param code any value returned by this library (unknown codes are fine).
 * @return a static string, never NULL.
 */
PL_EXTERN const char *pl_strerror(int code);

/**
 * The calling thread's last detailed error message, for example which
 * argument was wrong or the server's own text. Set by every call that fails;
 * left alone by calls that succeed.
 * @return a string owned by the library, valid until the next failing call
 *         on this thread; never NULL ("" when nothing failed yet).
 */
PL_EXTERN const char *pl_errmsg(void);

/* ------------------------------------------------------------------------ */
/* Versions                                                                  */
/* ------------------------------------------------------------------------ */

/** The library's version at run time, as "MAJOR.MINOR.PATCH". Compare with
 *  #PL_VERSION_STRING from <provledger/version.h> to detect a mismatch. */
PL_EXTERN const char *pl_version(void);

/** The library's version at run time as MAJOR*10000 + MINOR*100 + PATCH. */
PL_EXTERN int pl_version_number(void);

/* ------------------------------------------------------------------------ */
/* Configuration, open, close, migrate                                       */
/* ------------------------------------------------------------------------ */

/** The version of #pl_config this header describes. */
#define PL_CONFIG_VERSION 2

/** Where named prepared statements are used; see #pl_config.prepare. */
enum pl_prepare_mode {
    PL_PREPARE_AUTO = 0,    /**< Named prepared statements, unless the
                                 server is detected to be PgBouncer. */
    PL_PREPARE_NAMED = 1,   /**< Always named prepared statements, kept per
                                 connection (fastest, direct PostgreSQL). */
    PL_PREPARE_UNNAMED = 2  /**< Parameterised unnamed statements only:
                                 works through transaction-pooling proxies. */
};

/**
 * Settings for pl_open(). Fill with pl_config_init() and then set fields.
 * Fields are only ever appended, each new field with a new
 * #PL_CONFIG_VERSION, and #version tells the library which fields the
 * caller knows: the library never reads or writes past the fields of that
 * version, so a program keeps working, without recompiling, against every
 * later build of the library. Strings are copied by pl_open().
 */
typedef struct pl_config {
    /** The #PL_CONFIG_VERSION the caller was compiled with, 1 or more
     *  (pl_config_init() sets it). A version newer than the library's is
     *  #PL_EINVAL in pl_open(). */
    unsigned int version;
    /** libpq conninfo string or URI of the primary. Required. Settings
     *  written in it win over this struct's defaults: an explicit
     *  connect_timeout, keepalives, keepalives_idle or application_name
     *  in the conninfo is used as given, and #connect_timeout_ms and
     *  #tcp_keepalives_idle_s apply only where it is silent. */
    const char *pg_conninfo;
    /** Connections in the PostgreSQL pool, 1..1000 (default 8). Opened
     *  lazily; at most this many statements run at once. Long calls (the
     *  exact dashboards, open audit iterators, metadata search, view
     *  refresh and partition maintenance) share at most half of them
     *  (pool_size / 2, at least one) at a time, waiting in arrival order
     *  for a share, so that point reads and writes always find the rest.
     *  With pool_size 1 the long calls get one connection of their own,
     *  opened when one runs: the one pooled connection stays for point
     *  reads and writes. */
    unsigned int pool_size;
    /** How long a call waits for a free pooled connection, in ms, before
     *  failing with #PL_ETIMEOUT (default 10000; 0 waits forever). Waiting
     *  calls are served in arrival order: a released connection goes to
     *  the longest-waiting call, never to a newcomer. */
    unsigned int pool_wait_timeout_ms;
    /** Deadline for every statement, in ms (default 30000; 0 disables),
     *  kept by the client so that it also holds through proxies and
     *  against a stalled server: on expiry the statement is cancelled on
     *  the server and the call returns #PL_ETIMEOUT; a server that does not
     *  answer the cancel within 2 s loses the connection. */
    unsigned int statement_timeout_ms;
    /** Connect timeout for PostgreSQL, in ms (default 5000; 0: the
     *  default), unless #pg_conninfo sets connect_timeout. */
    unsigned int connect_timeout_ms;
    /** TCP keepalive idle time in seconds for PostgreSQL connections
     *  (default 30; 0 leaves the system default), unless #pg_conninfo sets
     *  keepalives or keepalives_idle. */
    unsigned int tcp_keepalives_idle_s;
    /** Database schema holding the ledger: 1..63 bytes of [a-z0-9_],
     *  not starting with a digit, and not a name PostgreSQL reserves
     *  ("information_schema", or starting with "pg_", such as pg_catalog,
     *  pg_toast and pg_temp) (default "provledger"). */
    const char *schema;
    /** See #pl_prepare_mode (default #PL_PREPARE_AUTO). */
    int prepare;

    /** Redis URL of the result cache: `redis://[:password@]host:port[/db]`
     *  or `unix:///path/to/redis.sock[?db=N]`. NULL (default): no cache. */
    const char *redis_url;
    /** Time to live of cached answers, in ms (default 300000). Freshness
     *  never depends on it; it bounds memory, and how old a genuine answer
     *  someone with write access to Redis could replay (README "The
     *  cache": threat model). */
    unsigned int cache_ttl_ms;
    /** Prefix of every Redis key, so several ledgers can share one Redis
     *  (default "pl:"; at most 64 bytes). */
    const char *cache_key_prefix;
    /** Redis connect timeout in ms (default 200). */
    unsigned int redis_connect_timeout_ms;
    /** Redis command timeout in ms (default 200). */
    unsigned int redis_command_timeout_ms;
    /** Connections in the Redis pool (default 8). */
    unsigned int redis_pool_size;
    /** How long one process trusts the cache state it read from PostgreSQL
     *  (the cache lease), in ms (default 1000, 50..60000). The longest lease
     *  any process of the ledger has used is recorded in the database; a
     *  write whose intent Redis could not take waits at most that long,
     *  once per outage, before it writes, so that no process serves a stale
     *  answer. The cache then stays off for max(4 x lease, 2 x lease + 4 s),
     *  and for the same window after Redis lost data (restart, flush). */
    unsigned int cache_lease_ms;
    /** After a Redis failure, how long the circuit breaker stays open before
     *  one probe, in ms (default 1000; doubles while failing, up to 2000 or
     *  this value if larger). */
    unsigned int redis_retry_ms;
    /** Non-zero: listen for rows written with plain SQL (not through this
     *  library) and invalidate their cached answers as they commit
     *  (default 0). Needs a dedicated PostgreSQL connection. */
    int listen_external_writes;

    /** Optional libpq conninfo of a read replica, used only by reads that
     *  pass #PL_ALLOW_STALE (default NULL). When the replica cannot be
     *  reached, those reads are answered by the primary (exact, origin
     *  #PL_ORIGIN_PRIMARY, counted in #pl_stats_info.replica_fallbacks) and
     *  the replica is tried again after a second. */
    const char *replica_conninfo;
    /** Non-zero enables pl_import_batch(), which writes caller-chosen
     *  transaction times for loading history (default 0: never). */
    int allow_import;

    /* appended in ABI 1.4: #PL_CONFIG_VERSION 2 */

    /** How many more times pl_insert(), pl_insert_batch() and
     *  pl_import_batch() run a write on their own when every change of
     *  the call carries an idempotency key and the attempt failed with
     *  #PL_ECONNECT (the connection was lost, or none could be made) or
     *  #PL_EUNKNOWN (it broke after the write was sent): the key makes
     *  running it again safe (when the first attempt did commit, the
     *  receipt names the record it wrote, never a second one). With the
     *  cache on, a write is not sent while neither Redis nor PostgreSQL can
     *  record that it is coming (#PL_ECONNECT or #PL_ETIMEOUT, nothing
     *  written); such a keyed write is tried again the same way. Attempts
     *  pause 50 ms, doubling up to 1 s, in between, within
     *  #keyed_write_retry_ms: with the default, a write outlasts a failover
     *  manager promoting a standby when #pg_conninfo names every node
     *  (`host=a,b target_session_attrs=read-write`). Default 0: never; a
     *  write with any change unkeyed is never retried, and the caller gets
     *  the error, as with 0. At most 1000. */
    unsigned int keyed_write_retries;
    /** The most time, in ms, one call's attempts and pauses may take
     *  together once the first attempt failed (default 30000; 1..3600000):
     *  no attempt starts after it, and the call returns the last
     *  attempt's error. */
    unsigned int keyed_write_retry_ms;
} pl_config;

/**
 * Fills @p cfg with the defaults listed on each field and sets its version,
 * writing exactly the @p size bytes of the caller's struct. Call it through
 * the pl_config_init() macro, which passes the #PL_CONFIG_VERSION and
 * `sizeof (pl_config)` of the header the caller was compiled with: a program
 * built against an older header gets an older, smaller struct filled, and
 * pl_open() then reads only the fields of that version (the others take
 * their defaults).
 * @param cfg the struct to fill; NULL is ignored.
 * @param version the #PL_CONFIG_VERSION the caller was compiled with.
 * @param size sizeof (pl_config) as the caller knows it; nothing is
 *        written past it.
 */
PL_EXTERN void pl_config_init_version(pl_config *cfg, unsigned int version, size_t size);

/**
 * Fills @p cfg with the defaults of version 1 of #pl_config (the fields
 * up to and including #pl_config.allow_import). This is the entry point
 * programs built against the 0.1.0 header call; new code reaches
 * pl_config_init_version() through the macro of the same name below.
 * @param cfg the struct to fill; NULL is ignored.
 */
PL_EXTERN void pl_config_init(pl_config *cfg);

/** Fills @p cfg with the defaults of the #pl_config this header describes:
 *  pl_config_init_version(cfg, #PL_CONFIG_VERSION, sizeof (pl_config)). */
#define pl_config_init(cfg) pl_config_init_version((cfg), PL_CONFIG_VERSION, sizeof(pl_config))

/**
 * Opens a ledger: checks the configuration, connects one PostgreSQL
 * connection to prove the server is reachable, and (when configured) tries
 * Redis. A Redis that cannot be reached does not fail the call: the cache
 * starts degraded and is retried in the background of later calls.
 * pl_open() does not create the schema: call pl_migrate().
 *
 * @param out receives the handle, or NULL on failure. Free with pl_close().
 * @param cfg settings, from pl_config_init(); copied.
 * @return #PL_OK; #PL_EINVAL for a bad configuration; #PL_ECONNECT with
 *         libpq's reason in pl_errmsg() when PostgreSQL cannot be reached;
 *         #PL_ENOMEM.
 */
PL_EXTERN int pl_open(pl_ledger **out, const pl_config *cfg);

/**
 * Closes a ledger and frees everything it owns. NULL is fine.
 *
 * What outlives it: results and tables obtained from @p l stay valid until
 * freed. An open #pl_iter keeps what it needs (its connection, and the pool
 * that connection belongs to) until pl_iter_free(): it can still be read to
 * its end, its borrowed records stay valid as pl_iter_next() says, and
 * pl_iter_free() may come before or after pl_close(), from any thread.
 *
 * pl_close() must be the last call on @p l. Calling it while other threads
 * still run calls on @p l is the caller's bug; where it is cheap to notice,
 * the library does: pl_close() waits for the calls already running to
 * return, and calls that start while it runs fail with #PL_EINVAL without
 * touching the handle's resources. A call made after pl_close() returned is
 * a use after free.
 */
PL_EXTERN void pl_close(pl_ledger *l);

/**
 * Creates the schema or upgrades it to the version this library needs,
 * applying ordered migrations under an advisory lock: idempotent, and safe
 * to run from many processes at once. Also creates the monthly partitions
 * from the current month to three months ahead. Its statements are not
 * bound by #pl_config.statement_timeout_ms (they may take up to an hour).
 * @return #PL_OK; #PL_ESCHEMA when the database holds a newer schema than
 *         this library knows; #PL_ECONNECT; #PL_EDB.
 */
PL_EXTERN int pl_migrate(pl_ledger *l);

/**
 * The schema version this library needs, and the one the database has.
 * @param out_db receives the database's schema version (0: none yet).
 * @return #PL_OK or an error; the library's own version is
 *         #PL_SCHEMA_VERSION.
 */
PL_EXTERN int pl_schema_version(int *out_db, pl_ledger *l);

/** The schema version this library creates with pl_migrate(). */
#define PL_SCHEMA_VERSION 11

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

/** Largest entity_id, field_name, source_type or idempotency_key, in bytes. */
#define PL_MAX_KEY_BYTES 1024
/** Largest change_reason, in bytes. */
#define PL_MAX_REASON_BYTES 65536
/** Largest new_value, old_value or metadata JSON text, in bytes. */
#define PL_MAX_VALUE_BYTES (1024 * 1024)
/** Most changes in one pl_insert_batch() or pl_import_batch() call. */
#define PL_MAX_BATCH 100000

/**
 * One change to append. Strings must be valid UTF-8 without NUL bytes and
 * within the PL_MAX_* limits; they are copied. Start from #PL_CHANGE_INIT.
 *
 * This struct is frozen: callers pass arrays of it, so its size and layout
 * never change. A change that needs more will come with new functions.
 */
typedef struct pl_change {
    const char *entity_id;      /**< Required, non-empty. */
    const char *field_name;     /**< Required, non-empty. */
    const char *new_value;      /**< Required JSON text ("null" allowed);
                                     duplicate object keys are rejected. */
    const char *old_value;      /**< JSON text, or NULL for none. */
    pl_time valid_from;         /**< Start of valid time; #PL_TIME_NOW: the
                                     record's transaction time. */
    pl_time valid_to;           /**< End of valid time (exclusive);
                                     #PL_TIME_INFINITY: open. */
    const char *source_type;    /**< Required, e.g. "import". */
    const char *change_reason;  /**< Free text, or NULL. */
    const char *metadata;       /**< JSON object text, or NULL for {}. */
    /** Optional key that makes retries land once: a change whose key is
     *  already in the ledger is not appended again, and its receipt is the
     *  original one; the same key with different content is #PL_ECONFLICT.
     *  Content is compared as stored, not as spelled: JSON texts compare
     *  as jsonb values, metadata NULL is "{}", valid_to
     *  #PL_TIME_INFINITY and an open end are the same. NULL: none. */
    const char *idempotency_key;
} pl_change;

/** Initialiser for #pl_change: valid from the transaction time, open end,
 *  everything else empty. */
#define PL_CHANGE_INIT                                                   \
    {                                                                    \
        NULL, NULL, NULL, NULL, PL_TIME_NOW, PL_TIME_INFINITY, NULL, NULL, \
            NULL, NULL                                                   \
    }

/** What pl_insert() tells about the appended record. Frozen like
 *  #pl_change: callers pass arrays of it. */
typedef struct pl_receipt {
    int64_t id;                 /**< The record's id, unique in the ledger. */
    pl_time transaction_time;   /**< Assigned by the server. */
} pl_receipt;

/**
 * Appends one change. Validates everything before any I/O; then, in one
 * transaction, orders the entity (its transaction time is strictly after
 * the entity's previous one), appends the record, and keeps the exact
 * latest-state table. With a cache, a write intent is recorded for the
 * entity in Redis before the transaction and cleared after it, so every
 * cached read is linearizable (README "The cache"). A Redis failure never
 * fails or rolls back a write.
 *
 * @param out receives the receipt; may be NULL.
 * @param l the ledger.
 * @param c the change.
 * @return #PL_OK; #PL_EINVAL naming the bad field (nothing written);
 *         #PL_ECONFLICT for a reused idempotency key; #PL_ECONNECT,
 *         #PL_ETIMEOUT, #PL_EDB; #PL_EUNKNOWN when the connection broke
 *         during commit, or the statement's deadline passed after it was
 *         sent and the server answered neither it nor its cancel (retry
 *         with an idempotency key).
 */
PL_EXTERN int pl_insert(pl_receipt *out, pl_ledger *l, const pl_change *c);

/**
 * Appends @p n changes, all or nothing, in one transaction, with the same
 * validation and per-entity ordering as pl_insert(): changes to one entity
 * get increasing transaction times in array order.
 *
 * @param out array of @p n receipts filled in array order, or NULL.
 * @param changes array of @p n changes.
 * @param n 1..#PL_MAX_BATCH (0 is a no-op returning #PL_OK).
 * @return as pl_insert(); on #PL_EINVAL the message names the index.
 */
PL_EXTERN int pl_insert_batch(pl_receipt *out, pl_ledger *l,
                              const pl_change *changes, size_t n);

/**
 * Opt-in history import: like pl_insert_batch(), but each change carries the
 * transaction time to record, for loading history kept elsewhere. Needs
 * #pl_config.allow_import. Per entity the times must strictly increase in
 * array order, be after the entity's last transaction time, and not be in
 * the server's future; each must be an instant (not #PL_TIME_NOW or
 * #PL_TIME_ANY). Latest-state structures stay exact, and cached answers of
 * the imported entities are invalidated as for pl_insert().
 *
 * @return as pl_insert_batch(); #PL_EPERM without allow_import;
 *         #PL_ECONFLICT when a time is not after the entity's last one.
 */
PL_EXTERN int pl_import_batch(pl_receipt *out, pl_ledger *l,
                              const pl_change *changes,
                              const pl_time *transaction_times, size_t n);

/**
 * Checks @p n changes exactly as pl_insert_batch() does before any I/O,
 * without a ledger and without writing anything: for validating input (a
 * file, a request) before connecting, or before a long import in several
 * batches.
 * @param changes array of @p n changes.
 * @param n 1..#PL_MAX_BATCH (0 is #PL_OK).
 * @return #PL_OK when pl_insert_batch() would accept them as input (the
 *         server may still refuse what only it can judge, such as a
 *         valid_to before a server-assigned valid_from or a reused
 *         idempotency key); #PL_EINVAL naming the first bad change by
 *         index and field (`changes[3].new_value: ...`).
 */
PL_EXTERN int pl_validate_changes(const pl_change *changes, size_t n);

/* ------------------------------------------------------------------------ */
/* Results                                                                   */
/* ------------------------------------------------------------------------ */

/** One ledger record, borrowed from its #pl_result or #pl_iter. JSON texts
 *  are in PostgreSQL's jsonb normal form (keys sorted, single spaces).
 *  Only the library allocates records: fields may be appended in later
 *  versions (a program reads the fields it knows; copying a record by
 *  value copies those). */
typedef struct pl_record {
    int64_t id;                 /**< Unique, assigned by the server. */
    const char *entity_id;
    const char *field_name;
    const char *new_value;      /**< JSON text. */
    const char *old_value;      /**< JSON text, or NULL. */
    pl_time transaction_time;
    pl_time valid_from;
    pl_time valid_to;           /**< #PL_TIME_INFINITY when open. */
    const char *source_type;
    const char *change_reason;  /**< Or NULL. */
    const char *metadata;       /**< JSON object text ("{}" when none). */
    /* appended in ABI 1.3 (the library allocates records: they may grow) */
    int erased;                 /**< Non-zero when pl_erase() erased this
                                     record's values: new_value is "null",
                                     old_value and change_reason NULL,
                                     metadata "{}"; the times, entity, field
                                     and source stay. */
} pl_record;

/** Number of records in @p r (0 for NULL). */
PL_EXTERN size_t pl_result_count(const pl_result *r);

/** Record @p i of @p r, borrowed: valid until pl_result_free(r).
 *  @return NULL when @p i is past the end or @p r is NULL. */
PL_EXTERN const pl_record *pl_result_get(const pl_result *r, size_t i);

/** Frees a result and every record in it. NULL is fine. */
PL_EXTERN void pl_result_free(pl_result *r);

/** Where an answer came from; see pl_result_origin(). */
enum pl_origin {
    PL_ORIGIN_PRIMARY = 0,  /**< Read from the primary PostgreSQL. */
    PL_ORIGIN_CACHE = 1,    /**< Served by the Redis cache (exact). */
    PL_ORIGIN_REPLICA = 2,  /**< Read from the replica (#PL_ALLOW_STALE). */
    PL_ORIGIN_VIEW = 3      /**< Read from a materialized view
                                 (#PL_ALLOW_STALE). */
};

/** Where @p r came from, one of #pl_origin (#PL_ORIGIN_PRIMARY for NULL). */
PL_EXTERN int pl_result_origin(const pl_result *r);

/** How stale @p r may be, in microseconds: 0 for exact answers (primary and
 *  cache); the measured replica replay lag or the view's age otherwise. */
PL_EXTERN int64_t pl_result_staleness_us(const pl_result *r);

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

/** Query flags. */
enum pl_query_flags {
    /** Read the primary directly: no cache lookup, no cache fill, no view,
     *  no replica. */
    PL_REALTIME = 1u << 0,
    /** The caller accepts an answer that may lag: the read may go to the
     *  replica (when configured). The staleness is reported by
     *  pl_result_staleness_us(). A replica that cannot be reached never
     *  fails the read: the primary answers it (see
     *  #pl_config.replica_conninfo). Ignored with #PL_REALTIME. */
    PL_ALLOW_STALE = 1u << 1,
    /** Pages and iterators of history and range (pl_history_page(),
     *  pl_range_page(), pl_history_open(), pl_range_open()): newest first,
     *  by (transaction_time, id) descending. Other calls refuse it
     *  (#PL_EINVAL). */
    PL_NEWEST_FIRST = 1u << 2
};

/**
 * The current value of one field: pl_as_of(out, l, e, f, PL_TIME_NOW,
 * PL_TIME_NOW, flags), answered from the exact latest-state table (or the
 * cache). A value recorded as valid from next month is not current until
 * next month; a correction of the past changes today's answer only if its
 * valid interval covers now.
 *
 * @param out receives a result of one record, or NULL when none.
 * @param entity_id, field_name required, non-empty UTF-8.
 * @param flags #PL_REALTIME, #PL_ALLOW_STALE or 0.
 * @return #PL_OK; #PL_NOT_FOUND (with *out NULL) when no record is visible;
 *         #PL_EINVAL; #PL_ECONNECT, #PL_ETIMEOUT, #PL_EDB, #PL_ESCHEMA.
 */
PL_EXTERN int pl_current(pl_result **out, pl_ledger *l, const char *entity_id,
                         const char *field_name, unsigned flags);

/**
 * The answer for one field at (@p tx_time, @p valid_time): the visible
 * record with the greatest (transaction_time, id).
 * `pl_as_of(T, PL_TIME_ANY)` is "what did we believe at T";
 * `pl_as_of(PL_TIME_NOW, V)` is "what is true at V as we know it now".
 *
 * With an instant as @p tx_time the call first waits for writes of this
 * entity that are still in flight, so that its answer never changes later.
 *
 * @param tx_time an instant, #PL_TIME_NOW or #PL_TIME_ANY.
 * @param valid_time an instant, #PL_TIME_NOW or #PL_TIME_ANY.
 * @return as pl_current().
 */
PL_EXTERN int pl_as_of(pl_result **out, pl_ledger *l, const char *entity_id,
                       const char *field_name, pl_time tx_time,
                       pl_time valid_time, unsigned flags);

/**
 * The answer at (@p tx_time, @p valid_time) for every field of an entity,
 * one record per field, ordered by field name (byte order).
 * @return #PL_OK, or #PL_NOT_FOUND (*out NULL) when no field has an answer;
 *         errors as pl_current().
 */
PL_EXTERN int pl_snapshot(pl_result **out, pl_ledger *l,
                          const char *entity_id, pl_time tx_time,
                          pl_time valid_time, unsigned flags);

/**
 * Records of an entity (or of one field) whose transaction time lies in
 * [@p from, @p to), oldest first by (transaction_time, id).
 *
 * The whole answer is one result, read in one statement on one pooled
 * connection: its memory and time grow with the number of records. For a
 * window that may hold many (more than some ten thousand), page through it
 * with pl_range_page() or stream it with pl_range_open().
 * @param field_name one field, or NULL for all.
 * @param from, to instants or #PL_TIME_NOW; #PL_TIME_ANY leaves that end
 *        open.
 * @return #PL_OK with a result that may be empty (count 0); errors as
 *         pl_current(); #PL_EINVAL when @p from > @p to.
 */
PL_EXTERN int pl_range(pl_result **out, pl_ledger *l, const char *entity_id,
                       const char *field_name, pl_time from, pl_time to,
                       unsigned flags);

/**
 * Every record of an entity (or of one field), ordered by
 * (transaction_time, id).
 *
 * The whole history is one result, read in one statement: its memory and
 * time grow with the history. For an entity that may have many records
 * (more than some ten thousand), page with pl_history_page() or stream
 * with pl_history_open().
 * @return #PL_OK with a result that may be empty; errors as pl_current().
 */
PL_EXTERN int pl_history(pl_result **out, pl_ledger *l, const char *entity_id,
                         const char *field_name, unsigned flags);

/** Most records in one page of pl_history_page() and pl_range_page(). */
#define PL_MAX_PAGE 10000

/**
 * One page of pl_history(): at most @p limit records of an entity (or of
 * one field) in (transaction_time, id) order, oldest first, or newest
 * first with #PL_NEWEST_FIRST, and a cursor for the next page.
 *
 * Keyset paging: a cursor holds the position (transaction time and id) of
 * the last record of its page, so a page costs the same at any depth, and
 * the pages of one walk never skip or repeat a record, even while records
 * are appended: within an entity, a new record always comes after every
 * record already committed, so oldest first it appears on a later page,
 * and newest first (the walk starts at the newest record the first page
 * saw) it never does.
 *
 * A cursor is bound to its query and to the ledger: it carries an
 * HMAC-SHA-256 (under a key derived from the ledger's secret, see
 * migration 3) of the position and of the call (history or range), the
 * entity, the field (or all), the order, and for a range its window. A
 * cursor given to another query, another ledger, or altered, is
 * #PL_EINVAL. It is text of at most 80 bytes ("p1:" and printable ASCII,
 * README "Paging"), valid as long as the ledger: it may be stored, or
 * passed to another process.
 *
 * Pages are read on the primary (never the cache, a view or the replica:
 * pl_result_origin() is #PL_ORIGIN_PRIMARY) with the point reads' share of
 * the pool, one statement per page. Reading them needs EXECUTE on the
 * schema's pl_cache_secret() (README "Roles and grants"), once per handle.
 *
 * @param out receives the page (possibly empty).
 * @param next_cursor receives the cursor of the next page (free with
 *        pl_free()), or NULL when this page is the last; may itself be NULL.
 * @param field_name one field, or NULL for all fields.
 * @param cursor NULL for the first page, else a @p next_cursor of the
 *        previous page of the same query (same entity, field and flags'
 *        order).
 * @param limit 1..#PL_MAX_PAGE.
 * @param flags #PL_NEWEST_FIRST, and #PL_REALTIME or #PL_ALLOW_STALE
 *        (accepted; pages always read the primary).
 * @return #PL_OK; #PL_EINVAL for a bad argument or a cursor of another
 *         query (the message says which); errors as pl_current().
 */
PL_EXTERN int pl_history_page(pl_result **out, char **next_cursor, pl_ledger *l,
                              const char *entity_id, const char *field_name,
                              const char *cursor, size_t limit, unsigned flags);

/**
 * One page of pl_range(): as pl_history_page(), over the records whose
 * transaction time lies in [@p from, @p to).
 *
 * With an instant as @p to, each page first waits for writes of this
 * entity still in flight, as pl_range() does, so that no record with a
 * time before @p to commits behind the walk. #PL_TIME_NOW stands for the
 * entity's now (see the top) when each page is read (a later page may see records a
 * former page's "now" excluded; none is skipped or repeated).
 * @param from, to instants or #PL_TIME_NOW; #PL_TIME_ANY leaves that end
 *        open. They are part of the query the cursor is bound to.
 * @return as pl_history_page(); #PL_EINVAL when @p from > @p to.
 */
PL_EXTERN int pl_range_page(pl_result **out, char **next_cursor, pl_ledger *l,
                            const char *entity_id, const char *field_name, pl_time from,
                            pl_time to, const char *cursor, size_t limit, unsigned flags);

/* ------------------------------------------------------------------------ */
/* Time                                                                      */
/* ------------------------------------------------------------------------ */

/**
 * Parses an RFC 3339 / ISO 8601 instant with an explicit offset or Z:
 * `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM)`; 'T' may be 't' or a
 * space, 'Z' may be 'z'; 1 to 9 fraction digits, those past microseconds
 * dropped (toward the earlier instant); offsets up to +-23:59; a leap
 * second (60) is rejected. "infinity" parses as #PL_TIME_INFINITY.
 * @return #PL_OK; #PL_EINVAL when unparseable, without an offset, or
 *         outside [#PL_TIME_MIN, #PL_TIME_MAX].
 */
PL_EXTERN int pl_time_parse(pl_time *out, const char *iso8601);

/**
 * Formats @p t as RFC 3339 UTC with microseconds,
 * `YYYY-MM-DDTHH:MM:SS.ffffffZ` (27 bytes plus NUL); #PL_TIME_INFINITY as
 * "infinity", #PL_TIME_NOW as "now", #PL_TIME_ANY as "any".
 * @param buf receives the text, NUL-terminated and truncated to @p len.
 * @return the length the full text needs, without the NUL (like
 *         snprintf); 0 when @p t is outside the storable range.
 */
PL_EXTERN size_t pl_time_format(char *buf, size_t len, pl_time t);

/** Room pl_time_format() needs, with the NUL. */
#define PL_TIME_BUFSIZE 28

/** This machine's clock (CLOCK_REALTIME) as a #pl_time. */
PL_EXTERN pl_time pl_time_now(void);

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

/**
 * Counters of one #pl_ledger since pl_open(), copied out by pl_stats().
 * Fields are only ever appended.
 */
typedef struct pl_stats_info {
    /* cache */
    uint64_t cache_hits;            /**< Answers served from Redis. */
    uint64_t cache_misses;          /**< Lookups that found nothing usable
                                         (absent, or past its valid-time
                                         boundary). */
    uint64_t cache_fills;           /**< Answers stored after a miss. */
    uint64_t cache_fills_refused;   /**< Fills not stored because a write
                                         completed meanwhile (they would
                                         have been stale). */
    uint64_t cache_invalidations;   /**< Entity invalidations sent. */
    uint64_t cache_bypassed;        /**< Reads that skipped the cache:
                                         #PL_REALTIME, or cache degraded. */
    uint64_t redis_errors;          /**< Redis commands that failed. */
    uint64_t cache_degraded_us;     /**< Total time the cache was unusable
                                         (circuit open or lease not held). */
    int cache_degraded;             /**< Non-zero while degraded now. */
    double cache_hit_rate;          /**< hits / (hits + misses), 0 if none. */
    /* PostgreSQL */
    uint64_t queries;               /**< Statements run on PostgreSQL. */
    uint64_t inserts;               /**< Records appended. */
    uint64_t pool_waits;            /**< Calls that waited for a connection. */
    uint64_t pool_wait_us;          /**< Total time spent waiting for one. */
    uint64_t reconnects;            /**< Broken connections replaced. */
    unsigned int pool_size;         /**< Configured pool size. */
    unsigned int pool_open;         /**< Connections open now. */
    uint64_t replica_reads;         /**< Reads served by the replica. */
    /* appended in ABI 1.1 */
    uint64_t cache_rejected;        /**< Cached entries refused and dropped:
                                         MAC or binding did not verify,
                                         malformed, older than the TTL by
                                         the server's clock, or filled
                                         before a write this handle made.
                                         Non-zero means someone else wrote
                                         into the cache's keys (README
                                         "The cache": threat model). */
    /* appended in ABI 1.2 */
    uint64_t replica_fallbacks;     /**< #PL_ALLOW_STALE reads answered by
                                         the primary because the replica
                                         could not be reached. */
    /* appended in ABI 1.4 */
    uint64_t keyed_write_retries;   /**< Attempts made again by keyed
                                         writes on their own
                                         (#pl_config.keyed_write_retries). */
} pl_stats_info;

/**
 * Copies the counters of @p l into @p out.
 * @param out the caller's struct.
 * @param size sizeof(*out) as the caller knows it; the library fills at most
 *        this many bytes, so code built against an older header keeps
 *        working.
 * @return #PL_OK, or #PL_EINVAL for NULL arguments.
 */
PL_EXTERN int pl_stats(pl_stats_info *out, pl_ledger *l, size_t size);


/* ------------------------------------------------------------------------ */
/* Tables: small aggregate answers                                           */
/* ------------------------------------------------------------------------ */

/** A rectangular answer of named text columns (aggregates, listings).
 *  Immutable; free with pl_table_free(). */
typedef struct pl_table pl_table;

/** Rows in @p t (0 for NULL). */
PL_EXTERN size_t pl_table_rows(const pl_table *t);
/** Columns in @p t (0 for NULL). */
PL_EXTERN size_t pl_table_cols(const pl_table *t);
/** Name of column @p col, or NULL past the end. Borrowed. */
PL_EXTERN const char *pl_table_colname(const pl_table *t, size_t col);
/** Index of the column named @p name, or -1. */
PL_EXTERN int pl_table_colindex(const pl_table *t, const char *name);
/** Cell text (numbers in decimal, times in RFC 3339 UTC, booleans "true" or
 *  "false"), or NULL for SQL NULL or out of range. Borrowed. */
PL_EXTERN const char *pl_table_value(const pl_table *t, size_t row, size_t col);
/** Cell as an integer (0 for NULL or non-numeric text). */
PL_EXTERN int64_t pl_table_int64(const pl_table *t, size_t row, size_t col);
/** Frees a table. NULL is fine. */
PL_EXTERN void pl_table_free(pl_table *t);
/** Where @p t came from (#pl_origin: primary or view) and how stale it may
 *  be in microseconds (0 for the primary). */
PL_EXTERN int pl_table_origin(const pl_table *t);
/** @copydoc pl_table_origin */
PL_EXTERN int64_t pl_table_staleness_us(const pl_table *t);
/** For an exact dashboard that the rollup answered, when the rollup's
 *  horizon was set (every record committed before then is in the rollup;
 *  later ones were read from the base table); #PL_TIME_ANY when the answer
 *  did not use the rollup, and for NULL. */
PL_EXTERN pl_time pl_table_horizon(const pl_table *t);

/** Frees a string the library returned through a `char **` out-parameter.
 *  NULL is fine. */
PL_EXTERN void pl_free(void *p);

/* ------------------------------------------------------------------------ */
/* Operations: partitions and materialized views                            */
/* ------------------------------------------------------------------------ */

/**
 * Creates the monthly partitions from the current month (UTC) through
 * @p months_ahead months ahead, where missing. Inserts also create missing
 * months on demand; this call keeps them ahead.
 * @param created receives how many partitions were created; may be NULL.
 * @param months_ahead 0..120.
 */
PL_EXTERN int pl_partitions_ensure(int *created, pl_ledger *l, int months_ahead);

/**
 * Lists the ledger's partitions, attached and detached, oldest first, as a
 * table with columns: name, range_from, range_to (RFC 3339), attached
 * ("true"/"false"), rows (estimate from statistics, exact for detached ones
 * is not promised), total_bytes (table + indexes).
 */
PL_EXTERN int pl_partitions_list(pl_table **out, pl_ledger *l);

/**
 * Detaches (never drops) every attached partition whose range ends at or
 * before @p older_than, keeping its data in a standalone table of the same
 * name in the ledger's schema, still protected against UPDATE, DELETE and
 * TRUNCATE (and INSERT). The current month is never detached. Queries no
 * longer see the detached rows (the latest-state table keeps answering
 * pl_current()); pl_partition_attach() brings them back. Detaching hides
 * history, so it needs the schema owner's rights (#PL_EPERM otherwise).
 * Not bound by #pl_config.statement_timeout_ms.
 * @param detached receives how many were detached; may be NULL.
 */
PL_EXTERN int pl_partitions_detach(int *detached, pl_ledger *l, pl_time older_than);

/**
 * Re-attaches a partition detached by pl_partitions_detach(), with its
 * indexes. Needs the schema owner's rights; not bound by
 * #pl_config.statement_timeout_ms.
 * @param name the partition's table name, e.g. "provenance_ledger_2025_01".
 * @return #PL_OK; #PL_NOT_FOUND when no detached partition has that name.
 */
PL_EXTERN int pl_partition_attach(pl_ledger *l, const char *name);

/**
 * Refreshes the materialized views provenance_latest and
 * provenance_daily_stats with REFRESH ... CONCURRENTLY (readers are never
 * blocked), logging start, end, success and any error of each in
 * mv_refresh_log. Views never answer calls that promise current data. Not
 * bound by #pl_config.statement_timeout_ms.
 * @return #PL_OK; #PL_EDB with the logged error when a refresh failed.
 */
PL_EXTERN int pl_refresh_views(pl_ledger *l);

/**
 * Schedules pl_refresh_views() inside PostgreSQL with pg_cron.
 * @param cron_schedule a cron expression such as "0 * * * *"; NULL removes
 *        the schedule.
 * @return #PL_OK; #PL_EUNSUPPORTED when pg_cron is not installed in the
 *         database (call pl_refresh_views() from your own scheduler).
 */
PL_EXTERN int pl_refresh_schedule(pl_ledger *l, const char *cron_schedule);

/**
 * How fresh each view is, as a table with columns view_name,
 * last_refresh_start, last_refresh_end, last_success, last_error,
 * staleness_seconds (since the last successful refresh ended; NULL when
 * never refreshed).
 */
PL_EXTERN int pl_view_freshness(pl_table **out, pl_ledger *l);

/* ------------------------------------------------------------------------ */
/* Analytics, audit reports and metadata search                             */
/* ------------------------------------------------------------------------ */

/**
 * Dashboard: changes per UTC day and source type with transaction time in
 * [@p from, @p to), as a table with columns day (RFC 3339 midnight),
 * source_type, changes, entities (distinct entity ids), ordered by day then
 * source type. Exact: every committed record is counted. It reads the
 * rollup that pl_rollup_advance() keeps plus, in the same snapshot, the
 * records committed since its last step (and the base table for an edge
 * day of a window that cuts a day), or the base table while the rollup
 * cannot answer (never advanced, or a partition attached since its last
 * step); pl_table_horizon() says when the rollup's horizon was set. With
 * #PL_ALLOW_STALE, provenance_daily_stats answers instead when it covers
 * the window, and pl_table_origin() / pl_table_staleness_us() say so.
 * @param from, to instants; #PL_TIME_ANY leaves that end open,
 *        #PL_TIME_NOW is the server's now.
 * @param source_type only this source, or NULL for all.
 */
PL_EXTERN int pl_dashboard_changes(pl_table **out, pl_ledger *l, pl_time from, pl_time to,
                                   const char *source_type, unsigned flags);

/**
 * Dashboard: corrections (records whose valid_from is before their
 * transaction time, i.e. retroactive changes) with transaction time in
 * [@p from, @p to), by entity type and field, as a table with columns
 * entity_type, field_name, corrections, ordered by corrections descending.
 * The entity type is the metadata key "entity_type" when present, else the
 * entity id up to its first '_' or ':' (the whole id when neither occurs).
 * Exact, from the rollup and the records since its last step as for
 * pl_dashboard_changes().
 */
PL_EXTERN int pl_dashboard_corrections(pl_table **out, pl_ledger *l, pl_time from, pl_time to,
                                       unsigned flags);

/**
 * The dashboards' background step: adds to their rollup every record of
 * the transactions that ended since the last step (and every record of a
 * partition attached since), in one transaction that neither readers nor
 * writers wait for; one step runs at a time (another call waits). Run it
 * every few seconds (`provledger rollup --follow`, or pg_cron as README
 * "Dashboards" shows): how often decides only how many recent records each
 * dashboard reads from the base table, never whether it is exact. Not
 * bound by #pl_config.statement_timeout_ms.
 * @param records receives how many records the step added; may be NULL.
 * @return #PL_OK; the usual connection and database errors.
 */
PL_EXTERN int pl_rollup_advance(int64_t *records, pl_ledger *l);

/** A streaming iterator over records. */
typedef struct pl_iter pl_iter;

/**
 * Audit report: every record with transaction time in [@p from, @p to)
 * (#PL_TIME_ANY for an open end), optionally of one source type, ordered by
 * (transaction_time, id), streamed from a server-side cursor in chunks so
 * that a report of millions of rows never sits in memory at once (the
 * server reads the next chunk while the caller works through the current
 * one: at most two in memory). The
 * iterator holds one pooled connection until pl_iter_free(), taken from the
 * pool's heavy share (see pl_config.pool_size): when that share is in use,
 * the call waits up to pool_wait_timeout_ms (then #PL_ETIMEOUT).
 */
PL_EXTERN int pl_audit_open(pl_iter **out, pl_ledger *l, const char *source_type,
                            pl_time from, pl_time to);

/**
 * pl_history() as an iterator: every record of an entity (or of one
 * field), oldest first by (transaction_time, id), or newest first with
 * #PL_NEWEST_FIRST, streamed from a server-side cursor in chunks as for
 * pl_audit_open(): memory stays bounded whatever the history's length.
 * The records are those of one snapshot, taken when the call returns. The
 * iterator holds one connection of the pool's heavy share until
 * pl_iter_free() (or until it returns #PL_ITEROVER), as for
 * pl_audit_open().
 * @param field_name one field, or NULL for all fields.
 * @param flags #PL_NEWEST_FIRST, and #PL_REALTIME or #PL_ALLOW_STALE
 *        (accepted; iterators always read the primary).
 * @return #PL_OK; #PL_EINVAL; #PL_ETIMEOUT when the heavy share stays in
 *         use; errors as pl_current().
 */
PL_EXTERN int pl_history_open(pl_iter **out, pl_ledger *l, const char *entity_id,
                              const char *field_name, unsigned flags);

/**
 * pl_range() as an iterator: the records of an entity (or of one field)
 * with transaction time in [@p from, @p to), in the order @p flags asks,
 * streamed as by pl_history_open(). With an instant as @p to, the call
 * first waits for writes of this entity still in flight, as pl_range()
 * does.
 * @param from, to instants or #PL_TIME_NOW; #PL_TIME_ANY leaves that end
 *        open.
 * @return as pl_history_open(); #PL_EINVAL when @p from > @p to.
 */
PL_EXTERN int pl_range_open(pl_iter **out, pl_ledger *l, const char *entity_id,
                            const char *field_name, pl_time from, pl_time to, unsigned flags);

/**
 * The next record of an iterator.
 * @param rec receives a record borrowed until the next call or
 *        pl_iter_free() (pl_close() of the ledger does not end it).
 * @return #PL_OK; #PL_ITEROVER when done; an error (the iterator is then
 *         finished).
 */
PL_EXTERN int pl_iter_next(const pl_record **rec, pl_iter *it);

/** Frees an iterator and returns its connection (first collecting the one
 *  chunk that may be on its way, so the connection goes back clean). NULL
 *  is fine; so is an iterator of a ledger already closed with pl_close(). */
PL_EXTERN void pl_iter_free(pl_iter *it);

/**
 * Metadata search by JSON containment (`metadata @> query`) through the GIN
 * index, newest first by (transaction_time, id), one page at a time.
 * @param out receives up to @p limit records.
 * @param next_cursor receives an opaque cursor for the next page (free with
 *        pl_free()), or NULL when this page is the last.
 * @param query a JSON object, e.g. {"import_batch_id": "batch_123"}.
 * @param cursor NULL for the first page, else a cursor from the previous
 *        call with the same @p query (another query's cursor is
 *        #PL_EINVAL).
 * @param limit 1..10000.
 */
PL_EXTERN int pl_search_metadata(pl_result **out, char **next_cursor, pl_ledger *l,
                                 const char *query, const char *cursor, size_t limit);

/* ------------------------------------------------------------------------ */
/* Monitoring                                                                */
/* ------------------------------------------------------------------------ */

/**
 * The health of the ledger as a JSON object (free with pl_free()): view
 * staleness and last refresh result, the dashboards' rollup ("rollup":
 * advanced_at, records, tail_records, oldest_unrolled and lag_seconds, the
 * age of the oldest record not in it), partitions and sizes, index usage and
 * sizes, slow statements from pg_stat_statements when that extension is
 * installed, this handle's counters (pl_stats, plus per-query-type counts
 * and latency histograms), and an "alerts" array evaluating the design
 * record's alerts: a refresh failed or is older than two hours, the rollup
 * was never advanced or lags more than a minute, the cache
 * hit rate fell below 0.8 after at least 1000 lookups, a statement averaged
 * over 100 ms.
 */
PL_EXTERN int pl_health(char **json_out, pl_ledger *l);

/* ------------------------------------------------------------------------ */
/* Tamper evidence: a transparency log of the ledger                         */
/* ------------------------------------------------------------------------ */
/*
 * Every record is a leaf of an RFC 9162 Merkle tree (README "Tamper
 * evidence" documents the leaf byte for byte). A sealer (pl_seal) appends
 * committed records to the tree in batches and signs a checkpoint in the
 * C2SP tlog-checkpoint / signed-note formats with an Ed25519 key the
 * database never sees. Anyone holding a checkpoint and the public key can
 * check a record's inclusion, that a later log extends the checkpoint, and
 * (pl_verify) that no sealed record was altered, removed or back-dated.
 */

/** Bytes in a SHA-256 hash: every hash of the log. */
#define PL_HASH_SIZE 32

/** An Ed25519 key, private (signs) or public (verifies). Free with
 *  pl_key_free(). */
typedef struct pl_key pl_key;

/**
 * Loads an Ed25519 key from a PEM file: a private key as
 * `openssl genpkey -algorithm ed25519` writes it, or a public key as
 * `openssl pkey -pubout` writes it.
 * @return #PL_OK; #PL_EINVAL when @p pem_path is NULL, unreadable, or not an
 *         Ed25519 key in PEM (the message names the file); #PL_ENOMEM.
 */
PL_EXTERN int pl_key_load(pl_key **out, const char *pem_path);

/** As pl_key_load(), from PEM text in memory (@p len bytes). */
PL_EXTERN int pl_key_parse(pl_key **out, const char *pem, size_t len);

/** Non-zero when @p k can sign (it holds the private key). */
PL_EXTERN int pl_key_has_private(const pl_key *k);

/**
 * The C2SP signed-note verifier key of @p k for the key name @p name:
 * `<name>+<key hash, 8 lower-case hex digits>+<base64 of 0x01 || public key>`,
 * as note verifiers and witnesses take it. Free with pl_free().
 * @param name the key name, which is the log's origin: printable ASCII
 *        without spaces or '+'.
 */
PL_EXTERN int pl_key_verifier_string(char **out, const pl_key *k, const char *name);

/** Frees a key (its private part is wiped). NULL is fine. */
PL_EXTERN void pl_key_free(pl_key *k);

/**
 * A checkpoint: the log's origin, size and root hash, as a signed note.
 * Allocated by the library (it may grow); free with pl_checkpoint_free().
 */
typedef struct pl_checkpoint {
    const char *origin;                       /**< The log's name (first line). */
    int64_t tree_size;                        /**< Leaves the tree covers. */
    unsigned char root_hash[PL_HASH_SIZE];    /**< RFC 9162 tree head. */
    const char *note;                         /**< The whole signed note, text:
                                                   save it to check later. */
    size_t note_len;                          /**< Bytes in @c note. */
    pl_time sealed_at;                        /**< When it was sealed, by the
                                                   server's clock; #PL_TIME_ANY
                                                   when parsed from a note. */
} pl_checkpoint;

/**
 * The latest checkpoint stored in the ledger.
 * @return #PL_OK; #PL_NOT_FOUND when nothing was ever sealed; an error.
 */
PL_EXTERN int pl_checkpoint_latest(pl_checkpoint **out, pl_ledger *l);

/**
 * Parses a checkpoint note (as pl_checkpoint.note holds it, or as a file
 * saved from `provledger checkpoint`). The signature is not checked: see
 * pl_checkpoint_verify().
 * @return #PL_OK; #PL_EINVAL naming what is malformed.
 */
PL_EXTERN int pl_checkpoint_parse(pl_checkpoint **out, const char *note, size_t len);

/**
 * Checks that @p cp carries a valid Ed25519 signature by @p pub under the
 * key name of its origin.
 * @return #PL_OK; #PL_EVERIFY when no such signature verifies; #PL_EINVAL.
 */
PL_EXTERN int pl_checkpoint_verify(const pl_checkpoint *cp, const pl_key *pub);

/** Frees a checkpoint. NULL is fine. */
PL_EXTERN void pl_checkpoint_free(pl_checkpoint *cp);

/** What one pl_seal() call did. Fields are only ever appended. */
typedef struct pl_seal_info {
    int64_t sealed;     /**< Records (and erasures) appended to the tree. */
    int64_t backdated;  /**< Records refused: their transaction time is not
                             after the last sealed record of their entity,
                             which no committed write can produce (they stay
                             unsealed; pl_verify() reports them BACKDATED). */
    int64_t tree_size;  /**< Leaves after the call. */
} pl_seal_info;

/**
 * Seals what is committed: appends to the tree every record (and erasure)
 * whose transaction has ended and that is not sealed yet, in an order no
 * later commit can change, and stores a new checkpoint signed with @p key.
 * Writers never wait for it; one sealer runs at a time (another call waits).
 * When nothing is new, the latest checkpoint is returned as it is (signed
 * again only if @p key did not sign it).
 * @param out receives the checkpoint (NULL to not receive it).
 * @param info receives counts (NULL to not receive them).
 * @param info_size sizeof(*info) as the caller knows it.
 * @param key a private Ed25519 key.
 * @param origin the log's name for checkpoints, or NULL for the one the
 *        ledger's first seal recorded (default "provledger/<schema>"). It
 *        cannot change once recorded (#PL_EINVAL naming "origin").
 * @return #PL_OK; #PL_EINVAL; #PL_EVERIFY when the stored log does not
 *         match its latest checkpoint (sealing stops; run pl_verify()); the
 *         usual connection and database errors.
 */
PL_EXTERN int pl_seal(pl_checkpoint **out, pl_seal_info *info, size_t info_size, pl_ledger *l,
                      const pl_key *key, const char *origin);

/** A Merkle proof. Allocated by the library; free with pl_proof_free(). */
typedef struct pl_proof {
    int64_t record_id;                          /**< Inclusion: the record;
                                                     0 for consistency. */
    int64_t leaf_index;                         /**< Inclusion: its leaf;
                                                     -1 for consistency. */
    int64_t from_size;                          /**< Consistency: the older
                                                     size; 0 for inclusion. */
    int64_t tree_size;                          /**< The tree proved against. */
    unsigned char leaf_hash[PL_HASH_SIZE];      /**< Inclusion: the leaf. */
    unsigned char from_root[PL_HASH_SIZE];      /**< Consistency: root at
                                                     @c from_size. */
    unsigned char root_hash[PL_HASH_SIZE];      /**< Root at @c tree_size. */
    size_t count;                               /**< Hashes in @c hashes. */
    const unsigned char *hashes;                /**< The RFC 9162 proof: @c count
                                                     hashes of #PL_HASH_SIZE
                                                     bytes, one after another
                                                     (NULL when none). */
} pl_proof;

/**
 * An RFC 9162 inclusion proof of a sealed record.
 * @param cp the tree to prove against (its size and root), or NULL for the
 *        latest checkpoint.
 * @return #PL_OK; #PL_NOT_FOUND when the record does not exist or is not in
 *         that tree; #PL_EVERIFY when the stored tree does not have @p cp's
 *         root at its size; an error.
 */
PL_EXTERN int pl_prove_inclusion(pl_proof **out, pl_ledger *l, int64_t record_id,
                                 const pl_checkpoint *cp);

/**
 * An RFC 9162 consistency proof from the tree of @p from_size leaves to @p cp's
 * tree (or the latest checkpoint's when NULL).
 * @return #PL_OK; #PL_EINVAL when @p from_size is not 1..tree size;
 *         #PL_NOT_FOUND when nothing is sealed; #PL_EVERIFY as for
 *         pl_prove_inclusion(); an error.
 */
PL_EXTERN int pl_prove_consistency(pl_proof **out, pl_ledger *l, int64_t from_size,
                                   const pl_checkpoint *cp);

/** Frees a proof. NULL is fine. */
PL_EXTERN void pl_proof_free(pl_proof *p);

/**
 * Verifies an RFC 9162 inclusion proof: that the leaf of hash @p leaf_hash is
 * leaf @p leaf_index of the tree of @p tree_size leaves with root @p root_hash.
 * Needs no ledger.
 * @param proof @p count hashes of #PL_HASH_SIZE bytes, one after another
 *        (as pl_proof.hashes holds them); NULL when @p count is 0.
 * @return #PL_OK; #PL_EVERIFY when it does not verify (including an index
 *         not below the size, or a proof of the wrong length); #PL_EINVAL for
 *         NULL hashes.
 */
PL_EXTERN int pl_verify_inclusion(const unsigned char leaf_hash[PL_HASH_SIZE], int64_t leaf_index,
                                  int64_t tree_size, const unsigned char *proof, size_t count,
                                  const unsigned char root_hash[PL_HASH_SIZE]);

/**
 * Verifies an RFC 9162 consistency proof: that the tree of @p to_size leaves
 * with root @p to_root extends the tree of @p from_size leaves with root
 * @p from_root. Equal sizes need an empty proof and equal roots. Needs no
 * ledger.
 * @return #PL_OK; #PL_EVERIFY; #PL_EINVAL for NULL hashes.
 */
PL_EXTERN int pl_verify_consistency(int64_t from_size, int64_t to_size,
                                    const unsigned char from_root[PL_HASH_SIZE],
                                    const unsigned char to_root[PL_HASH_SIZE],
                                    const unsigned char *proof, size_t count);

/**
 * The RFC 9162 leaf hash SHA-256(0x00 || leaf) of @p len bytes (a leaf as
 * README "Tamper evidence" encodes it).
 * @return #PL_OK; #PL_EINVAL when @p out is NULL, or @p leaf is NULL with
 *         @p len > 0.
 */
PL_EXTERN int pl_leaf_hash(unsigned char out[PL_HASH_SIZE], const void *leaf, size_t len);

/** Kinds of pl_verify() findings. Values are never renumbered. */
enum pl_finding_kind {
    PL_FINDING_ALTERED = 1,      /**< A sealed record's content differs
                                      from its leaf. */
    PL_FINDING_MISSING = 2,      /**< A sealed record is gone. */
    PL_FINDING_BACKDATED = 3,    /**< A record not in the log whose
                                      transaction time is not after the last
                                      sealed record of its entity. */
    PL_FINDING_LOG_MISMATCH = 4, /**< The stored tree or checkpoints were
                                      rewritten or truncated. */
    PL_FINDING_INCONSISTENT = 5, /**< The checkpoint the auditor kept is not
                                      a prefix of the log. */
    PL_FINDING_BAD_SIGNATURE = 6, /**< A checkpoint is not signed by the
                                       pinned key. */
    PL_FINDING_ERASED = 7        /**< Informational: the record's values
                                      were erased by pl_erase(); its leaf
                                      still verifies. */
};

/** The finding's name as the CLI prints it ("ALTERED", ...), or "UNKNOWN". */
PL_EXTERN const char *pl_finding_name(int kind);

/** One finding, borrowed for the duration of the callback. */
typedef struct pl_finding {
    int kind;                /**< One of #pl_finding_kind. */
    int64_t id;              /**< The record, or 0 when not about one. */
    int64_t leaf_index;      /**< Its leaf, or -1. */
    const char *entity_id;   /**< The record's entity when known, or NULL. */
    const char *detail;      /**< What differs, in English. */
} pl_finding;

/** Receives findings; return 0 to go on, non-zero to stop pl_verify(). */
typedef int (*pl_finding_fn)(void *ctx, const pl_finding *f);

/** What pl_verify() checked. Fields are only ever appended. */
typedef struct pl_verify_summary {
    int64_t records;        /**< Ledger rows read. */
    int64_t tree_size;      /**< Leaves in the stored log. */
    int64_t checkpoints;    /**< Stored checkpoints checked. */
    int64_t unsealed;       /**< Rows not sealed yet (not findings). */
    int64_t findings;       /**< Findings reported, ERASED included. */
    int64_t by_kind[8];     /**< Findings by #pl_finding_kind. */
} pl_verify_summary;

/**
 * Verifies the ledger from outside: recomputes every leaf from the rows
 * (client side), rebuilds the tree, compares the stored leaves, interior
 * hashes and checkpoints, checks every checkpoint's signature with the
 * pinned key @p pub, and checks that the log extends @p trusted. Reports
 * each finding to @p fn.
 * @param summary receives counts (NULL to not receive them).
 * @param summary_size sizeof(*summary) as the caller knows it.
 * @param l the ledger, or NULL when @p export_dir is given.
 * @param export_dir a directory written by pl_export() to verify instead of
 *        the database (no database needed), or NULL.
 * @param pub the pinned public (or private) key.
 * @param trusted a checkpoint the auditor kept, or NULL.
 * @return #PL_OK when every finding (if any) is #PL_FINDING_ERASED;
 *         #PL_EVERIFY when another finding was reported; an error when the
 *         check could not run (then findings may be incomplete).
 */
PL_EXTERN int pl_verify(pl_verify_summary *summary, size_t summary_size, pl_ledger *l,
                        const char *export_dir, const pl_key *pub, const pl_checkpoint *trusted,
                        pl_finding_fn fn, void *ctx);

/**
 * Legal erasure of one entity: removes every value of its records (new and
 * old value, metadata, change reason) from the ledger, its latest state, the
 * views and the cache, and the key of its value commitments; the records,
 * their times and the log stay, reads return them with pl_record.erased set,
 * and every earlier checkpoint and proof still verifies. The erasure itself
 * is appended to the log at the next pl_seal(). Needs EXECUTE on the
 * schema's pl_erase_entity function (README "Roles and grants").
 * @param erased receives the number of records erased (NULL to not).
 * @param reason why (kept, not erased), or NULL.
 * @return #PL_OK; #PL_NOT_FOUND when the entity has no records; #PL_EPERM
 *         without the grant; an error.
 */
PL_EXTERN int pl_erase(int64_t *erased, pl_ledger *l, const char *entity_id, const char *reason);

/**
 * Writes an export of the ledger to directory @p dir (created if missing;
 * files in it are replaced): the records, the log's leaves, the checkpoints
 * and the value-commitment keys, in the format README "Export format"
 * documents, so that pl_verify() can check it with no database.
 * @param records receives the number of records written (NULL to not).
 */
PL_EXTERN int pl_export(int64_t *records, pl_ledger *l, const char *dir);

#ifdef __cplusplus
}
#endif

#endif /* PROVLEDGER_H */
