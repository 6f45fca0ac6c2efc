/* Monitoring: the ledger's health as one JSON document, with the design
 * record's alerts evaluated. SQL in lib/sql/statements/ (the registry, schema.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ledger.h"
#include "table.h"
#include "wire.h"

/* Alert thresholds of the design record. */
#define STALE_VIEW_SECONDS 7200.0
#define MIN_HIT_RATE 0.8
#define MIN_LOOKUPS 1000
#define SLOW_MEAN_MS 100.0
#define SLOW_STATEMENTS 10
/* The dashboards stay exact at any lag; past this their tail is long. */
#define ROLLUP_LAG_SECONDS 60.0

static int add_alert(json_t *alerts, const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int add_alert(json_t *alerts, const char *name, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_array_append_new(alerts, json_pack("{s:s,s:s}", "name", name, "message", msg));
}

/* A section: the table of a query as a JSON array (owned by the caller). */
static int section(json_t **out, pl_ledger *l, int stmt, const char *const *values, const char *kinds,
                   pl_table **keep)
{
    pl_table *t;
    int rc = pl_db_table(&t, l->db, stmt, values, kinds);
    if (rc)
        return rc;
    *out = pl_table_json(t);
    if (keep && *out) {
        *keep = t;
        return PL_OK;
    }
    pl_table_free(t);
    return *out ? PL_OK : pl_fail(PL_ENOMEM, "out of memory");
}

static void view_alerts(json_t *alerts, const pl_table *views)
{
    int name = pl_table_colindex(views, "view_name"), ok = pl_table_colindex(views, "last_success"),
        err = pl_table_colindex(views, "last_error"), stale = pl_table_colindex(views, "staleness_seconds");
    for (size_t r = 0; r < pl_table_rows(views); r++) {
        const char *view = pl_table_value(views, r, (size_t)name);
        const char *success = pl_table_value(views, r, (size_t)ok);
        const char *age = pl_table_value(views, r, (size_t)stale);
        if (success && strcmp(success, "false") == 0) {
            const char *e = pl_table_value(views, r, (size_t)err);
            add_alert(alerts, "refresh_failed", "the last refresh of %s failed: %s", view, e ? e : "unknown error");
        }
        if (!age)
            add_alert(alerts, "refresh_stale", "%s has never been refreshed successfully", view);
        else if (strtod(age, NULL) > STALE_VIEW_SECONDS)
            add_alert(alerts, "refresh_stale", "%s was last refreshed %.0f s ago (more than 2 hours)", view,
                      strtod(age, NULL));
    }
}

/* The rollup's state as one object (its statement returns one row). */
static int rollup_section(json_t *root, json_t *alerts, pl_ledger *l)
{
    pl_table *t = NULL;
    int rc = pl_db_table(&t, l->db, PL_SQL_ROLLUP_LAG, NULL, "tiitr");
    if (rc)
        return rc;
    json_t *rows = pl_table_json(t);
    const char *lag = pl_table_rows(t) == 1 ? pl_table_value(t, 0, 4) : NULL;
    if (!lag)
        add_alert(alerts, "rollup_never_advanced",
                  "the dashboards' rollup was never advanced: they read the base table "
                  "(run provledger rollup --follow)");
    else if (strtod(lag, NULL) > ROLLUP_LAG_SECONDS)
        add_alert(alerts, "rollup_lag",
                  "the oldest record not in the dashboards' rollup is %.0f s old "
                  "(exact still, but each dashboard reads them all)", strtod(lag, NULL));
    pl_table_free(t);
    json_t *one = rows ? json_incref(json_array_get(rows, 0)) : NULL;
    json_decref(rows);
    if (!one || json_object_set_new(root, "rollup", one) != 0)
        return pl_fail(PL_ENOMEM, "out of memory");
    return PL_OK;
}

static void statement_alerts(json_t *alerts, const pl_table *slow)
{
    int q = pl_table_colindex(slow, "query"), mean = pl_table_colindex(slow, "mean_ms"),
        calls = pl_table_colindex(slow, "calls");
    for (size_t r = 0; r < pl_table_rows(slow); r++) {
        const char *m = pl_table_value(slow, r, (size_t)mean);
        const char *text = pl_table_value(slow, r, (size_t)q);
        if (m && strtod(m, NULL) > SLOW_MEAN_MS)
            add_alert(alerts, "slow_statement", "%.1f ms mean over %lld calls: %.200s", strtod(m, NULL),
                      (long long)pl_table_int64(slow, r, (size_t)calls), text ? text : "");
    }
}

static json_t *client_json(pl_ledger *l, json_t *alerts)
{
    pl_stats_info s;
    pl_stats(&s, l, sizeof s);
    json_t *c = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "cache_hits",
        (json_int_t)s.cache_hits, "cache_misses", (json_int_t)s.cache_misses, "cache_fills",
        (json_int_t)s.cache_fills, "cache_fills_refused", (json_int_t)s.cache_fills_refused,
        "cache_invalidations", (json_int_t)s.cache_invalidations, "cache_bypassed",
        (json_int_t)s.cache_bypassed, "redis_errors", (json_int_t)s.redis_errors, "cache_degraded_us",
        (json_int_t)s.cache_degraded_us, "cache_degraded", s.cache_degraded, "cache_hit_rate",
        s.cache_hit_rate, "queries", (json_int_t)s.queries, "inserts", (json_int_t)s.inserts, "pool_waits",
        (json_int_t)s.pool_waits, "pool_wait_us", (json_int_t)s.pool_wait_us, "reconnects",
        (json_int_t)s.reconnects, "pool_size", (json_int_t)s.pool_size, "pool_open",
        (json_int_t)s.pool_open, "replica_reads", (json_int_t)s.replica_reads);
    if (!c || json_object_set_new(c, "cache_rejected", json_integer((json_int_t)s.cache_rejected)) != 0 ||
        json_object_set_new(c, "replica_fallbacks", json_integer((json_int_t)s.replica_fallbacks)) != 0) {
        json_decref(c);
        return NULL;
    }
    json_t *metrics = pl_metrics_json(pl_db_metrics(l->db));
    if (!metrics || json_object_set_new(c, "metrics", metrics) != 0) {
        json_decref(c);
        return NULL;
    }
    uint64_t lookups = s.cache_hits + s.cache_misses;
    if (lookups >= MIN_LOOKUPS && s.cache_hit_rate < MIN_HIT_RATE)
        add_alert(alerts, "cache_hit_rate_low", "cache hit rate %.3f after %llu lookups (below %.1f)",
                  s.cache_hit_rate, (unsigned long long)lookups, MIN_HIT_RATE);
    /* Only someone writing into the cache's keys makes entries fail their
     * check (cache.c: authentication). */
    if (s.cache_rejected > 0)
        add_alert(alerts, "cache_rejected",
                  "%llu cached entries failed authentication or were replays and were refused; "
                  "something other than this library writes to the cache's Redis keys",
                  (unsigned long long)s.cache_rejected);
    /* Client-side latency of each operation, as measured here. */
    const char *op;
    json_t *m;
    json_object_foreach(metrics, op, m) {
        double mean = json_real_value(json_object_get(m, "mean_ms"));
        if (mean > SLOW_MEAN_MS)
            add_alert(alerts, "slow_statement", "%s: %.1f ms mean over %lld calls (client side)", op, mean,
                      (long long)json_integer_value(json_object_get(m, "count")));
    }
    return c;
}

static int build(json_t *root, pl_ledger *l)
{
    json_t *alerts = json_array(), *j = NULL;
    if (!alerts || json_object_set_new(root, "alerts", alerts) != 0)
        return pl_fail(PL_ENOMEM, "out of memory");
    pl_table *views = NULL, *slow = NULL;
    int rc = section(&j, l, PL_SQL_FRESHNESS, NULL, "sttbsr", &views);
    if (rc)
        return rc;
    json_object_set_new(root, "views", j);
    view_alerts(alerts, views);
    pl_table_free(views);
    if ((rc = section(&j, l, PL_SQL_PARTITIONS_LIST, NULL, "sttbii", NULL)))
        return rc;
    json_object_set_new(root, "partitions", j);
    const char *schema[1] = {l->cfg.schema};
    if ((rc = section(&j, l, PL_SQL_INDEXES, schema, "ssii", NULL)))
        return rc;
    json_object_set_new(root, "indexes", j);
    if ((rc = rollup_section(root, alerts, l)))
        return rc;

    PGresult *res;
    if ((rc = pl_db_run(l->db, PL_SQL_PGSS_PRESENT, NULL, NULL, 0, &res)))
        return rc;
    int pgss = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (pgss) {
        char limit[16];
        snprintf(limit, sizeof limit, "%d", SLOW_STATEMENTS);
        const char *values[1] = {limit};
        if ((rc = section(&j, l, PL_SQL_SLOW_STATEMENTS, values, "sirrr", &slow)))
            return rc;
        json_object_set_new(root, "slow_statements", j);
        statement_alerts(alerts, slow);
        pl_table_free(slow);
    } else {
        json_object_set_new(root, "slow_statements", json_null());
        json_object_set_new(root, "slow_statements_note",
                            json_string("pg_stat_statements is not installed in this database"));
    }
    json_t *client = client_json(l, alerts);
    if (!client)
        return pl_fail(PL_ENOMEM, "out of memory");
    json_object_set_new(root, "client", client);
    return PL_OK;
}

static int health_call(char **json_out, pl_ledger *l)
{
    if (!json_out)
        return pl_fail(PL_EINVAL, "json_out: NULL");
    *json_out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    json_t *root = json_pack("{s:s,s:s}", "schema", l->cfg.schema, "library", pl_version());
    if (!root)
        return pl_fail(PL_ENOMEM, "out of memory");
    char now[PL_TIME_BUFSIZE];
    pl_time_format(now, sizeof now, pl_time_now());
    json_object_set_new(root, "generated_at", json_string(now));
    int rc = build(root, l);
    if (rc) {
        json_decref(root);
        return rc;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return pl_fail(PL_ENOMEM, "out of memory");
    /* Ours to free with pl_free(), whatever allocator jansson was given. */
    *json_out = strdup(text);
    json_free_t jfree;
    json_get_alloc_funcs(NULL, &jfree);
    jfree(text);
    return *json_out ? PL_OK : pl_fail(PL_ENOMEM, "out of memory");
}

int pl_health(char **json_out, pl_ledger *l)
{
    PL_GUARD(l, health_call(json_out, l));
}
