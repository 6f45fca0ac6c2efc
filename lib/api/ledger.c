/* The handle: configuration (versions, checks), open and close, its
 * lifetime (references, calls racing with pl_close), migrations,
 * statistics. */
#include "ledger.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "error.h"
#include "redis.h"
#include "validate.h"

const char *pl_version(void)
{
    return PL_VERSION_STRING;
}

int pl_version_number(void)
{
    return PL_VERSION_NUMBER;
}

/* How many bytes of pl_config each version has: the library reads and
 * writes no more of a caller's struct than the version it was built with.
 * A version appending fields gets a new entry here. */
#define CONFIG_V1_SIZE (offsetof(pl_config, allow_import) + sizeof(int))
#define CONFIG_V2_SIZE (offsetof(pl_config, keyed_write_retry_ms) + sizeof(unsigned int))
static const size_t config_sizes[] = {0, CONFIG_V1_SIZE, CONFIG_V2_SIZE};
#define CONFIG_VERSIONS (sizeof config_sizes / sizeof config_sizes[0] - 1)
_Static_assert(CONFIG_VERSIONS == PL_CONFIG_VERSION, "config_sizes lists every pl_config version");

static void config_defaults(pl_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->version = PL_CONFIG_VERSION;
    cfg->pool_size = 8;
    cfg->pool_wait_timeout_ms = 10000;
    cfg->statement_timeout_ms = 30000;
    cfg->connect_timeout_ms = 5000;
    cfg->tcp_keepalives_idle_s = 30;
    cfg->schema = "provledger";
    cfg->prepare = PL_PREPARE_AUTO;
    cfg->cache_ttl_ms = 300000;
    cfg->cache_key_prefix = "pl:";
    cfg->redis_connect_timeout_ms = 200;
    cfg->redis_command_timeout_ms = 200;
    cfg->redis_pool_size = 8;
    cfg->cache_lease_ms = 1000;
    cfg->redis_retry_ms = 1000;
    cfg->keyed_write_retry_ms = 30000;
}

void pl_config_init_version(pl_config *cfg, unsigned int version, size_t size)
{
    if (!cfg || size < sizeof cfg->version)
        return;
    pl_config d;
    config_defaults(&d);
    size_t known = version >= 1 && version <= CONFIG_VERSIONS ? config_sizes[version] : sizeof d;
    memset(cfg, 0, size);
    memcpy(cfg, &d, size < known ? size : known);
    /* A version newer than this library stays as given: pl_open() refuses
     * it rather than ignoring fields the caller believes it set. */
    cfg->version = version;
}

/* The 0.1.0 entry point (the header's macro of the same name calls
 * pl_config_init_version): the struct it fills is version 1. */
void(pl_config_init)(pl_config *cfg)
{
    pl_config_init_version(cfg, 1, CONFIG_V1_SIZE);
}

/* PostgreSQL refuses to create schemas named pg_* (and pg_catalog,
 * pg_toast and pg_temp hold its own objects); information_schema is the
 * standard's. A ledger there would fail or misbehave later, not at open. */
static int schema_name_reserved(const char *name)
{
    return strncmp(name, "pg_", 3) == 0 || strcmp(name, "information_schema") == 0;
}

/* The caller's config as this library's struct: the fields of the caller's
 * version copied, the rest at their defaults. */
static int config_from_caller(pl_config *out, const pl_config *cfg)
{
    if (!cfg)
        return pl_fail(PL_EINVAL, "cfg: NULL");
    if (cfg->version < 1 || cfg->version > CONFIG_VERSIONS)
        return pl_fail(PL_EINVAL,
                       "cfg.version: %u is not one this library knows (1..%d; call pl_config_init)",
                       cfg->version, PL_CONFIG_VERSION);
    config_defaults(out);
    memcpy(out, cfg, config_sizes[cfg->version]);
    out->version = PL_CONFIG_VERSION;
    return PL_OK;
}

/* A conninfo libpq cannot parse is a bad argument, found before any I/O
 * (connecting would report it as a connection failure). */
static int check_conninfo(const char *what, const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (opts) {
        PQconninfoFree(opts);
        return PL_OK;
    }
    if (!err)
        return pl_fail(PL_ENOMEM, "out of memory");
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
    int rc = pl_fail(PL_EINVAL, "%s: %s", what, err);
    PQfreemem(err);
    return rc;
}

static int check_config(const pl_config *cfg)
{
    if (!cfg->pg_conninfo)
        return pl_fail(PL_EINVAL, "cfg.pg_conninfo: required");
    int rc = pl_check_text("cfg.pg_conninfo", cfg->pg_conninfo, 8192, 0);
    if (rc || (rc = check_conninfo("cfg.pg_conninfo", cfg->pg_conninfo)))
        return rc;
    if (cfg->pool_size < 1 || cfg->pool_size > 1000)
        return pl_fail(PL_EINVAL, "cfg.pool_size: %u is outside 1..1000", cfg->pool_size);
    if (!pl_schema_name_valid(cfg->schema))
        return pl_fail(PL_EINVAL, "cfg.schema: must be 1..63 bytes of [a-z0-9_], not starting with a digit");
    if (schema_name_reserved(cfg->schema))
        return pl_fail(PL_EINVAL, "cfg.schema: \"%s\" is reserved by PostgreSQL (information_schema and "
                       "names starting with pg_)", cfg->schema);
    if (cfg->prepare < PL_PREPARE_AUTO || cfg->prepare > PL_PREPARE_UNNAMED)
        return pl_fail(PL_EINVAL, "cfg.prepare: %d is not a pl_prepare_mode", cfg->prepare);
    if (cfg->redis_url) {
        if ((rc = pl_check_text("cfg.redis_url", cfg->redis_url, 4096, 1)))
            return rc;
        if ((rc = pl_redis_check_url(cfg->redis_url)))
            return rc;
        if ((rc = pl_check_text("cfg.cache_key_prefix", cfg->cache_key_prefix, 64, 0)))
            return rc;
        if (cfg->redis_pool_size < 1 || cfg->redis_pool_size > 1000)
            return pl_fail(PL_EINVAL, "cfg.redis_pool_size: %u is outside 1..1000", cfg->redis_pool_size);
        if (cfg->cache_lease_ms < 50 || cfg->cache_lease_ms > 60000)
            return pl_fail(PL_EINVAL, "cfg.cache_lease_ms: %u is outside 50..60000", cfg->cache_lease_ms);
        if (cfg->cache_ttl_ms < 1)
            return pl_fail(PL_EINVAL, "cfg.cache_ttl_ms: must be positive");
        if (cfg->redis_command_timeout_ms < 1 || cfg->redis_connect_timeout_ms < 1)
            return pl_fail(PL_EINVAL, "cfg.redis_*_timeout_ms: must be positive");
    }
    if (cfg->keyed_write_retries > 1000)
        return pl_fail(PL_EINVAL, "cfg.keyed_write_retries: %u is more than 1000", cfg->keyed_write_retries);
    if (cfg->keyed_write_retry_ms < 1 || cfg->keyed_write_retry_ms > 3600000)
        return pl_fail(PL_EINVAL, "cfg.keyed_write_retry_ms: %u is outside 1..3600000", cfg->keyed_write_retry_ms);
    if (cfg->replica_conninfo &&
        ((rc = pl_check_text("cfg.replica_conninfo", cfg->replica_conninfo, 8192, 1)) ||
         (rc = check_conninfo("cfg.replica_conninfo", cfg->replica_conninfo))))
        return rc;
    return PL_OK;
}

static char *dup_or_null(const char *s, int *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = 1;
    return d;
}

/* What only the handle uses: the cache (and its threads), the replica. */
static void release_front(pl_ledger *l)
{
    pl_cache_destroy(l->cache);
    l->cache = NULL;
    if (l->db)
        pl_db_drop_replica(l->db);
}

/* The rest, once nothing refers to the handle any more. */
static void destroy(pl_ledger *l)
{
    release_front(l);
    pl_db_close(l->db);
    free((char *)l->cfg.pg_conninfo);
    free((char *)l->cfg.schema);
    free((char *)l->cfg.redis_url);
    free((char *)l->cfg.cache_key_prefix);
    free((char *)l->cfg.replica_conninfo);
    pthread_mutex_destroy(&l->lag_mu);
    pthread_mutex_destroy(&l->page_mu);
    pthread_mutex_destroy(&l->life_mu);
    pthread_cond_destroy(&l->life_cv);
    free(l);
}

void pl_ledger_ref(pl_ledger *l)
{
    atomic_fetch_add(&l->refs, 1);
}

void pl_ledger_unref(pl_ledger *l)
{
    if (l && atomic_fetch_sub(&l->refs, 1) == 1)
        destroy(l);
}

int pl_ledger_enter(pl_ledger *l)
{
    if (!l)
        return PL_OK; /* the call itself reports the NULL ledger */
    atomic_fetch_add(&l->active, 1);
    if (atomic_load(&l->closing)) {
        pl_ledger_leave(l);
        return pl_fail(PL_EINVAL, "ledger: pl_close() is closing it (a call raced with pl_close)");
    }
    return PL_OK;
}

void pl_ledger_leave(pl_ledger *l)
{
    if (l && atomic_fetch_sub(&l->active, 1) == 1 && atomic_load(&l->closing)) {
        pthread_mutex_lock(&l->life_mu);
        pthread_cond_broadcast(&l->life_cv);
        pthread_mutex_unlock(&l->life_mu);
    }
}

void pl_close(pl_ledger *l)
{
    if (!l)
        return;
    /* Calls still running on other threads are the caller's bug, but a
     * cheap one to survive: new calls are refused, running ones finish. */
    atomic_store(&l->closing, 1);
    pthread_mutex_lock(&l->life_mu);
    while (atomic_load(&l->active) > 0)
        pthread_cond_wait(&l->life_cv, &l->life_mu);
    pthread_mutex_unlock(&l->life_mu);
    release_front(l);
    /* Open iterators hold references: the pool (and their connections)
     * lives until the last of them is freed. */
    pl_ledger_unref(l);
}

int pl_open(pl_ledger **out, const pl_config *caller_cfg)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    pl_config given;
    int rc = config_from_caller(&given, caller_cfg);
    if (rc)
        return rc;
    const pl_config *cfg = &given;
    if ((rc = check_config(cfg)))
        return rc;
    pl_ledger *l = calloc(1, sizeof *l);
    if (!l)
        return pl_fail(PL_ENOMEM, "out of memory");
    pthread_mutex_init(&l->lag_mu, NULL);
    pthread_mutex_init(&l->page_mu, NULL);
    pthread_mutex_init(&l->life_mu, NULL);
    pthread_cond_init(&l->life_cv, NULL);
    atomic_init(&l->refs, 1);
    atomic_init(&l->active, 0);
    atomic_init(&l->closing, 0);
    l->cfg = *cfg;
    int failed = 0;
    l->cfg.pg_conninfo = dup_or_null(cfg->pg_conninfo, &failed);
    l->cfg.schema = dup_or_null(cfg->schema, &failed);
    l->cfg.redis_url = dup_or_null(cfg->redis_url, &failed);
    l->cfg.cache_key_prefix = dup_or_null(cfg->cache_key_prefix ? cfg->cache_key_prefix : "", &failed);
    l->cfg.replica_conninfo = dup_or_null(cfg->replica_conninfo, &failed);
    if (failed) {
        destroy(l);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    pl_db_config dc = {
        .conninfo = l->cfg.pg_conninfo,
        .replica_conninfo = l->cfg.replica_conninfo,
        .schema = l->cfg.schema,
        .pool_size = cfg->pool_size,
        .wait_timeout_ms = cfg->pool_wait_timeout_ms,
        .statement_timeout_ms = cfg->statement_timeout_ms,
        .connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000,
        .keepalives_idle_s = cfg->tcp_keepalives_idle_s,
        .prepare = cfg->prepare,
    };
    if ((rc = pl_db_open(&l->db, &dc))) {
        destroy(l);
        return rc;
    }
    pl_cache_config cc = {
        .redis = {
            .url = l->cfg.redis_url,
            .connect_timeout_ms = l->cfg.redis_connect_timeout_ms,
            .command_timeout_ms = l->cfg.redis_command_timeout_ms,
            .pool_size = l->cfg.redis_pool_size,
            .retry_ms = l->cfg.redis_retry_ms ? l->cfg.redis_retry_ms : 1000,
        },
        .key_prefix = l->cfg.cache_key_prefix,
        .ttl_ms = l->cfg.cache_ttl_ms,
        .lease_ms = l->cfg.cache_lease_ms,
        .listen_external_writes = l->cfg.listen_external_writes,
        .pg_connect_timeout_ms = l->cfg.connect_timeout_ms,
    };
    if (l->cfg.redis_url && (rc = pl_cache_create(&l->cache, &cc, l->db))) {
        destroy(l);
        return rc;
    }
    *out = l;
    return PL_OK;
}

/* ------------------------------------------------------------------------ */
/* Migrations                                                                */
/* ------------------------------------------------------------------------ */

/* The scalar answer of a statement without parameters (text results), in
 * session s, or on its own when s is NULL. */
static int scalar(pl_db *db, pl_db_session *s, int stmt, char *buf, size_t len)
{
    PGresult *r = NULL;
    int rc = s ? pl_db_session_run(s, stmt, NULL, NULL, &r) : pl_db_run(db, stmt, NULL, NULL, 0, &r);
    buf[0] = '\0';
    if (rc == PL_OK && PQntuples(r) == 1 && PQnfields(r) == 1)
        snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

static int run(pl_db_session *s, int stmt)
{
    char ignored[8];
    return scalar(s->db, s, stmt, ignored, sizeof ignored);
}

/* The database's schema version, 0 when the schema does not exist yet. */
static int db_version(pl_db *db, pl_db_session *s, int *out)
{
    char v[32];
    *out = 0;
    int rc = scalar(db, s, PL_SQL_SCHEMA_VERSION_EXISTS, v, sizeof v);
    if (rc || v[0] != 't')
        return rc;
    if ((rc = scalar(db, s, PL_SQL_SCHEMA_VERSION_MAX, v, sizeof v)) == PL_OK)
        *out = atoi(v); /* NOLINT(cert-err34-c): the server's int4 text */
    return rc;
}

static int schema_version_call(int *out_db, pl_ledger *l)
{
    if (!out_db || !l)
        return pl_fail(PL_EINVAL, "pl_schema_version: NULL argument");
    return db_version(l->db, NULL, out_db);
}

int pl_schema_version(int *out_db, pl_ledger *l)
{
    PL_GUARD(l, schema_version_call(out_db, l));
}

static int migrate_on(pl_ledger *l, pl_db_session *s)
{
    int rc;
    int have = 0;
    /* One migrator at a time per schema, across every process. */
    if ((rc = run(s, PL_SQL_MIGRATE_LOCK)) || (rc = run(s, PL_SQL_MIGRATE_NO_BODY_CHECK)) ||
        (rc = run(s, PL_SQL_MIGRATE_SCHEMA)) || (rc = run(s, PL_SQL_MIGRATE_VERSION_TABLE)) ||
        (rc = db_version(s->db, s, &have)))
        goto fail;
    if (have > (int)pl_migration_count) {
        rc = pl_fail(PL_ESCHEMA, "schema %s is at version %d, newer than this library's %d",
                     l->cfg.schema, have, (int)pl_migration_count);
        goto fail;
    }
    for (size_t i = (size_t)have; i < pl_migration_count; i++) {
        char *script = pl_sql_expand(pl_migrations[i].text, l->cfg.schema);
        if (!script) {
            rc = pl_fail(PL_ENOMEM, "out of memory");
            goto fail;
        }
        PGresult *r = NULL;
        rc = pl_db_session_text(s, PL_OP_MIGRATION, script, 0, NULL, &r);
        PQclear(r);
        free(script);
        if (rc)
            goto fail;
        char version[24];
        snprintf(version, sizeof version, "%zu", i + 1);
        const char *vals[2] = {version, pl_migrations[i].description};
        r = NULL;
        rc = pl_db_session_run(s, PL_SQL_SCHEMA_VERSION_RECORD, vals, NULL, &r);
        PQclear(r);
        if (rc)
            goto fail;
    }
    if ((rc = run(s, PL_SQL_MIGRATE_PARTITIONS)))
        goto fail;
    return run(s, PL_SQL_TX_COMMIT);
fail:;
    pl_errsave saved;
    pl_error_save(&saved);
    if (pl_db_session_in_transaction(s))
        run(s, PL_SQL_TX_ROLLBACK);
    pl_error_restore(&saved);
    return pl_fail(rc, "pl_migrate: %s", pl_errmsg());
}

static int migrate_call(pl_ledger *l)
{
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    /* DDL on a big ledger may take long: a maintenance session has an
     * hour, not the statement deadline. */
    pl_db_session s;
    int rc = pl_db_session_begin(&s, l->db, PL_CLASS_MAINTENANCE, PL_SQL_TX_BEGIN);
    if (rc)
        return rc;
    rc = migrate_on(l, &s);
    pl_db_session_close(&s);
    return rc;
}

int pl_migrate(pl_ledger *l)
{
    PL_GUARD(l, migrate_call(l));
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

static int stats_call(pl_stats_info *out, pl_ledger *l, size_t size)
{
    if (!out || !l)
        return pl_fail(PL_EINVAL, "pl_stats: NULL argument");
    pl_stats_info s;
    memset(&s, 0, sizeof s);
    if (l->cache)
        pl_cache_stats(l->cache, &s);
    pl_pool_counters pc, rc;
    pl_db_counters(l->db, &pc, &rc);
    s.queries = pc.queries + rc.queries;
    s.pool_waits = pc.waits;
    s.pool_wait_us = pc.wait_us;
    s.reconnects = pc.reconnects + rc.reconnects;
    s.pool_open = pc.open;
    s.pool_size = l->cfg.pool_size;
    s.inserts = atomic_load(&l->inserts);
    s.replica_reads = atomic_load(&l->replica_reads);
    s.replica_fallbacks = atomic_load(&l->replica_fallbacks);
    s.keyed_write_retries = atomic_load(&l->write_retries);
    uint64_t lookups = s.cache_hits + s.cache_misses;
    s.cache_hit_rate = lookups ? (double)s.cache_hits / (double)lookups : 0.0;
    memcpy(out, &s, size < sizeof s ? size : sizeof s);
    return PL_OK;
}

int pl_stats(pl_stats_info *out, pl_ledger *l, size_t size)
{
    PL_GUARD(l, stats_call(out, l, size));
}
