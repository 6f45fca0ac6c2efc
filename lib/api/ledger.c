/* Configuration, open and close, the handle's lifetime, the read path
 * (pl_read), migrations, statistics. */
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
static const size_t config_sizes[] = {0, CONFIG_V1_SIZE};
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
    pl_pool_destroy(l->replica);
    l->replica = NULL;
}

/* The rest, once nothing refers to the handle any more. */
static void destroy(pl_ledger *l)
{
    release_front(l);
    pl_pool_destroy(l->pool);
    for (int i = 0; i < PL_STMT_COUNT; i++)
        free(l->sql[i]);
    free((char *)l->cfg.pg_conninfo);
    free((char *)l->cfg.schema);
    free((char *)l->cfg.redis_url);
    free((char *)l->cfg.cache_key_prefix);
    free((char *)l->cfg.replica_conninfo);
    pthread_mutex_destroy(&l->lag_mu);
    pthread_mutex_destroy(&l->life_mu);
    pthread_cond_destroy(&l->life_cv);
    pl_metrics_destroy(&l->metrics);
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
    pthread_mutex_init(&l->life_mu, NULL);
    pthread_cond_init(&l->life_cv, NULL);
    atomic_init(&l->refs, 1);
    atomic_init(&l->active, 0);
    atomic_init(&l->closing, 0);
    pl_metrics_init(&l->metrics);
    l->cfg = *cfg;
    int failed = 0;
    l->cfg.pg_conninfo = dup_or_null(cfg->pg_conninfo, &failed);
    l->cfg.schema = dup_or_null(cfg->schema, &failed);
    l->cfg.redis_url = dup_or_null(cfg->redis_url, &failed);
    l->cfg.cache_key_prefix = dup_or_null(cfg->cache_key_prefix ? cfg->cache_key_prefix : "", &failed);
    l->cfg.replica_conninfo = dup_or_null(cfg->replica_conninfo, &failed);
    for (int i = 0; i < PL_STMT_COUNT; i++)
        if (!(l->sql[i] = pl_sql_expand(pl_stmt_defs[i].sql, l->cfg.schema)))
            failed = 1;
    if (failed) {
        destroy(l);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    pl_pool_config pc = {
        .conninfo = l->cfg.pg_conninfo,
        .size = cfg->pool_size,
        .wait_timeout_ms = cfg->pool_wait_timeout_ms,
        .statement_timeout_ms = cfg->statement_timeout_ms,
        .connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000,
        .keepalives_idle_s = cfg->tcp_keepalives_idle_s,
        .prepare = cfg->prepare,
        .sql = l->sql,
    };
    if ((rc = pl_pool_create(&l->pool, &pc))) {
        destroy(l);
        return rc;
    }
    if (l->cfg.replica_conninfo) {
        /* A replica that is down must not keep the ledger from opening. */
        pc.conninfo = l->cfg.replica_conninfo;
        pc.lazy = 1;
        if ((rc = pl_pool_create(&l->replica, &pc))) {
            destroy(l);
            return rc;
        }
    }
    if (l->cfg.redis_url && (rc = pl_cache_create(&l->cache, l))) {
        destroy(l);
        return rc;
    }
    *out = l;
    return PL_OK;
}

int pl_read(pl_ledger *l, int replica, int stmt, const char *const *values, const int *lengths,
            PGresult **out)
{
    pl_pool *pool = replica ? l->replica : l->pool;
    int rc = PL_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        pl_conn *c;
        if ((rc = pl_pool_acquire(pool, &c)))
            return rc;
        int phase;
        uint64_t start = pl_mono_us();
        rc = pl_exec(pool, c, stmt, values, lengths, out, &phase);
        pl_metrics_record(&l->metrics, stmt, pl_mono_us() - start, rc != PL_OK);
        pl_pool_release(pool, c);
        if (rc != PL_ECONNECT)
            return rc;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Migrations                                                                */
/* ------------------------------------------------------------------------ */

static int simple(pl_ledger *l, pl_conn *c, const char *sql_template, PGresult **res)
{
    char *sql = pl_sql_expand(sql_template, l->cfg.schema);
    if (!sql)
        return pl_fail(PL_ENOMEM, "out of memory");
    int phase;
    PGresult *r = NULL;
    int rc = pl_exec_simple(l->pool, c, sql, &r, &phase);
    free(sql);
    if (res)
        *res = r;
    else
        PQclear(r);
    return rc;
}

/* The database's schema version, 0 when the schema does not exist yet. */
static int db_version(pl_ledger *l, pl_conn *c, int *out)
{
    /* Two statements: PostgreSQL resolves every table a statement names
     * before running it, even in a CASE branch that never runs. */
    PGresult *r = NULL;
    int rc = simple(l, c, "SELECT to_regclass('@S@.schema_version') IS NOT NULL", &r);
    int exists = rc == PL_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    *out = 0;
    if (rc || !exists)
        return rc;
    rc = simple(l, c, "SELECT coalesce(max(version), 0) FROM @S@.schema_version", &r);
    if (rc == PL_OK)
        *out = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

static int schema_version_call(int *out_db, pl_ledger *l)
{
    if (!out_db || !l)
        return pl_fail(PL_EINVAL, "pl_schema_version: NULL argument");
    pl_conn *c;
    int rc = pl_pool_acquire(l->pool, &c);
    if (rc)
        return rc;
    rc = db_version(l, c, out_db);
    pl_pool_release(l->pool, c);
    return rc;
}

int pl_schema_version(int *out_db, pl_ledger *l)
{
    PL_GUARD(l, schema_version_call(out_db, l));
}

static char *join_parts(const char *const *parts)
{
    size_t n = 0;
    for (size_t i = 0; parts[i]; i++)
        n += strlen(parts[i]);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0, at = 0; parts[i]; i++) {
        size_t k = strlen(parts[i]);
        memcpy(out + at, parts[i], k + 1);
        at += k;
    }
    return out;
}

static int migrate_on(pl_ledger *l, pl_conn *c)
{
    int rc = simple(l, c, "BEGIN", NULL);
    if (rc)
        return rc;
    /* One migrator at a time per schema, across every process. */
    if ((rc = simple(l, c, "SELECT pg_advisory_xact_lock(hashtextextended('@s@.provledger.migrate', 0))",
                     NULL)) ||
        /* Function bodies may name tables a later statement creates. */
        (rc = simple(l, c, "SET LOCAL check_function_bodies = off", NULL)) ||
        (rc = simple(l, c, "CREATE SCHEMA IF NOT EXISTS @S@", NULL)) ||
        (rc = simple(l, c,
                     "CREATE TABLE IF NOT EXISTS @S@.schema_version (version integer PRIMARY KEY, "
                     "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                     NULL)))
        goto fail;
    int have = 0;
    if ((rc = db_version(l, c, &have)))
        goto fail;
    if (have > (int)pl_migration_count) {
        rc = pl_fail(PL_ESCHEMA, "schema %s is at version %d, newer than this library's %d",
                     l->cfg.schema, have, (int)pl_migration_count);
        goto fail;
    }
    for (size_t i = (size_t)have; i < pl_migration_count; i++) {
        char *script = join_parts(pl_migrations[i].sql);
        if (!script) {
            rc = pl_fail(PL_ENOMEM, "out of memory");
            goto fail;
        }
        rc = simple(l, c, script, NULL);
        free(script);
        if (rc)
            goto fail;
        char version[24];
        snprintf(version, sizeof version, "%zu", i + 1);
        const char *vals[2] = {version, pl_migrations[i].description};
        char *sql = pl_sql_expand("INSERT INTO @S@.schema_version (version, description) VALUES ($1, $2)",
                                  l->cfg.schema);
        if (!sql) {
            rc = pl_fail(PL_ENOMEM, "out of memory");
            goto fail;
        }
        PGresult *r;
        int phase;
        rc = pl_exec_text(l->pool, c, sql, 2, vals, &r, &phase);
        free(sql);
        PQclear(r);
        if (rc)
            goto fail;
    }
    if ((rc = simple(l, c, "SELECT @S@.pl_ensure_partitions(clock_timestamp(), 4)", NULL)))
        goto fail;
    return simple(l, c, "COMMIT", NULL);
fail:;
    pl_errsave saved;
    pl_error_save(&saved);
    PGresult *r;
    int phase;
    if (PQstatus(pl_conn_pg(c)) == CONNECTION_OK && pl_exec_simple(l->pool, c, "ROLLBACK", &r, &phase) == PL_OK)
        PQclear(r);
    pl_error_restore(&saved);
    return pl_fail(rc, "pl_migrate: %s", pl_errmsg());
}

static int migrate_call(pl_ledger *l)
{
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    pl_conn *c;
    int rc = pl_pool_acquire(l->pool, &c);
    if (rc)
        return rc;
    /* DDL on a big ledger may take long: migrations get an hour. */
    pl_conn_set_timeout(c, 3600 * 1000);
    rc = migrate_on(l, c);
    pl_conn_set_timeout(c, 0);
    pl_pool_release(l->pool, c);
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
    pl_pool_counters pc;
    pl_pool_counters_get(l->pool, &pc);
    s.queries = pc.queries;
    s.pool_waits = pc.waits;
    s.pool_wait_us = pc.wait_us;
    s.reconnects = pc.reconnects;
    s.pool_open = pc.open;
    s.pool_size = l->cfg.pool_size;
    s.inserts = atomic_load(&l->inserts);
    s.replica_reads = atomic_load(&l->replica_reads);
    s.replica_fallbacks = atomic_load(&l->replica_fallbacks);
    if (l->replica) {
        pl_pool_counters_get(l->replica, &pc);
        s.queries += pc.queries;
        s.reconnects += pc.reconnects;
    }
    uint64_t lookups = s.cache_hits + s.cache_misses;
    s.cache_hit_rate = lookups ? (double)s.cache_hits / (double)lookups : 0.0;
    memcpy(out, &s, size < sizeof s ? size : sizeof s);
    return PL_OK;
}

int pl_stats(pl_stats_info *out, pl_ledger *l, size_t size)
{
    PL_GUARD(l, stats_call(out, l, size));
}
