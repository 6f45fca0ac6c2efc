/* Helpers shared by the white-box cache suites (check_cache.c and
 * check_cache_faults.c): short-timeout configs, one-line writes and reads,
 * field-by-field result comparison, and direct Redis access through hiredis
 * (the suites link the internal library, which brings hiredis along).
 *
 * Everything is static inline so that a suite using part of it still builds
 * with -Werror. */
#ifndef PL_CACHETEST_H
#define PL_CACHETEST_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

/* Like ck_assert_msg, but silent on success: in fork mode Check reports
 * every passing assertion to the parent, which is slow in loops. */
#define REQUIRE(expr, ...)             \
    do {                               \
        if (!(expr))                   \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

#define US INT64_C(1000000)

/* A schema and Redis key prefix of the running test's own: under
 * CK_FORK=no (valgrind) the tests of a suite share one process, and so one
 * tu_schema(). Every test case runs ct_fresh() as a checked fixture. */
static char ct_schema_name[64];
static char ct_prefix_name[128];
static unsigned ct_seq;

static inline void ct_fresh(void)
{
    snprintf(ct_schema_name, sizeof ct_schema_name, "%s_%u", tu_schema(), ct_seq++);
    snprintf(ct_prefix_name, sizeof ct_prefix_name, "test:%s:", ct_schema_name);
}

static inline const char *ct_schema(void)
{
    if (!ct_schema_name[0])
        ct_fresh();
    return ct_schema_name;
}

/* The key prefix ct_config() gives every ledger of the test. */
static inline const char *ct_prefix(void)
{
    ct_schema();
    return ct_prefix_name;
}

/* tu_config with the cache on, this test's schema and prefix, a short
 * lease and breaker retry, and Redis timeouts long enough that a loaded
 * machine (suites run in parallel) does not trip the breaker where a test
 * expects a hit. Fault tests shorten the timeouts. */
static inline void ct_config(pl_config *cfg)
{
    tu_config(cfg, 1);
    cfg->schema = ct_schema();
    cfg->cache_key_prefix = ct_prefix();
    cfg->redis_connect_timeout_ms = 2000;
    cfg->redis_command_timeout_ms = 2000;
    cfg->cache_lease_ms = 400;
    cfg->redis_retry_ms = 200;
}

static inline pl_ledger *ct_open(void)
{
    pl_config cfg;
    ct_config(&cfg);
    return tu_open_cfg(&cfg);
}

/* Appends one change; fails the test on error. */
static inline pl_receipt ct_put_full(pl_ledger *l, const char *entity, const char *field,
                                     const char *value, pl_time from, pl_time to)
{
    pl_change c = tu_change(entity, field, value);
    c.valid_from = from;
    c.valid_to = to;
    pl_receipt r;
    memset(&r, 0, sizeof r);
    int rc = pl_insert(&r, l, &c);
    REQUIRE(rc == PL_OK, "pl_insert(%s, %s, %s) -> %d: %s", entity, field, value, rc, pl_errmsg());
    return r;
}

static inline pl_receipt ct_put(pl_ledger *l, const char *entity, const char *field,
                                const char *value)
{
    return ct_put_full(l, entity, field, value, PL_TIME_NOW, PL_TIME_INFINITY);
}

static inline pl_stats_info ct_stats(pl_ledger *l)
{
    pl_stats_info s;
    memset(&s, 0, sizeof s);
    tu_ok(pl_stats(&s, l, sizeof s));
    return s;
}

static inline int ct_streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Two answers are the same, record by record and field by field. */
static inline void ct_same(const pl_result *a, const pl_result *b, const char *what)
{
    REQUIRE(pl_result_count(a) == pl_result_count(b), "%s: %zu records vs %zu", what,
            pl_result_count(a), pl_result_count(b));
    for (size_t i = 0; i < pl_result_count(a); i++) {
        const pl_record *x = pl_result_get(a, i), *y = pl_result_get(b, i);
        REQUIRE(x && y, "%s: record %zu missing", what, i);
        REQUIRE(x->id == y->id, "%s[%zu]: id %lld vs %lld", what, i, (long long)x->id,
                (long long)y->id);
        REQUIRE(ct_streq(x->entity_id, y->entity_id), "%s[%zu]: entity_id differs", what, i);
        REQUIRE(ct_streq(x->field_name, y->field_name), "%s[%zu]: field_name differs", what, i);
        REQUIRE(ct_streq(x->new_value, y->new_value), "%s[%zu]: new_value %s vs %s", what, i,
                x->new_value, y->new_value);
        REQUIRE(ct_streq(x->old_value, y->old_value), "%s[%zu]: old_value %s vs %s", what, i,
                x->old_value ? x->old_value : "(null)", y->old_value ? y->old_value : "(null)");
        REQUIRE(x->transaction_time == y->transaction_time, "%s[%zu]: transaction_time differs",
                what, i);
        REQUIRE(x->valid_from == y->valid_from, "%s[%zu]: valid_from differs", what, i);
        REQUIRE(x->valid_to == y->valid_to, "%s[%zu]: valid_to differs", what, i);
        REQUIRE(ct_streq(x->source_type, y->source_type), "%s[%zu]: source_type differs", what, i);
        REQUIRE(ct_streq(x->change_reason, y->change_reason), "%s[%zu]: change_reason differs",
                what, i);
        REQUIRE(ct_streq(x->metadata, y->metadata), "%s[%zu]: metadata %s vs %s", what, i,
                x->metadata, y->metadata);
    }
}

/* The current value's JSON text (malloc'd), or NULL for PL_NOT_FOUND; the
 * answer's origin in *origin (-1 for not found). Fails on an error. */
static inline char *ct_value(pl_ledger *l, const char *entity, const char *field, unsigned flags,
                             int *origin)
{
    pl_result *r = NULL;
    int rc = pl_current(&r, l, entity, field, flags);
    REQUIRE(rc == PL_OK || rc == PL_NOT_FOUND, "pl_current(%s, %s) -> %d (%s): %s", entity, field,
            rc, pl_strerror(rc), pl_errmsg());
    if (origin)
        *origin = rc == PL_OK ? pl_result_origin(r) : -1;
    if (rc == PL_NOT_FOUND) {
        REQUIRE(r == NULL, "pl_current(%s, %s): PL_NOT_FOUND with a result", entity, field);
        return NULL;
    }
    REQUIRE(pl_result_count(r) == 1, "pl_current(%s, %s): %zu records", entity, field,
            pl_result_count(r));
    const pl_record *rec = pl_result_get(r, 0);
    REQUIRE(strcmp(rec->entity_id, entity) == 0, "pl_current(%s, %s): answer of entity %s", entity,
            field, rec->entity_id);
    REQUIRE(strcmp(rec->field_name, field) == 0, "pl_current(%s, %s): answer of field %s", entity,
            field, rec->field_name);
    char *v = strdup(rec->new_value);
    pl_result_free(r);
    return v;
}

/* The current value must be `want` (NULL: not found). Returns the origin. */
static inline int ct_expect(pl_ledger *l, const char *entity, const char *field, const char *want,
                            const char *what)
{
    int origin;
    char *v = ct_value(l, entity, field, 0, &origin);
    REQUIRE(ct_streq(v, want), "%s: current(%s, %s) = %s, want %s", what, entity, field,
            v ? v : "(not found)", want ? want : "(not found)");
    free(v);
    return origin;
}

/* ------------------------------------------------------------------------ */
/* Redis, directly                                                           */
/* ------------------------------------------------------------------------ */

static inline redisContext *ct_redis(void)
{
    const char *port = getenv("PL_TEST_REDIS_PORT");
    ck_assert_msg(port && *port, "PL_TEST_REDIS_PORT is not set");
    struct timeval tv = {5, 0};
    redisContext *r = redisConnectWithTimeout("127.0.0.1", atoi(port), tv);
    ck_assert_msg(r && !r->err, "connect to Redis: %s", r ? r->errstr : "out of memory");
    return r;
}

/* One command with binary-safe arguments; fails the test on a connection
 * error (an error reply is returned to the caller). */
static inline redisReply *ct_rcmdv(redisContext *r, int argc, const char **argv, const size_t *argl)
{
    redisReply *rep = redisCommandArgv(r, argc, argv, argl);
    ck_assert_msg(rep != NULL, "Redis %s: %s", argv[0], r->errstr);
    return rep;
}

/* A printf-style command (no binary arguments). */
static inline redisReply *ct_rcmd(redisContext *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    ck_assert_msg(rep != NULL, "Redis %s: %s", fmt, r->errstr);
    return rep;
}

/* Runs a command that must not fail, on a fresh connection. */
static inline void ct_redis_do(const char *fmt, ...)
{
    redisContext *r = ct_redis();
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    ck_assert_msg(rep != NULL, "Redis %s: %s", fmt, r->errstr);
    ck_assert_msg(rep->type != REDIS_REPLY_ERROR, "Redis %s: %s", fmt, rep->str);
    freeReplyObject(rep);
    redisFree(r);
}

/* The cache epoch of a schema, read from its cache_state row. */
static inline long long ct_epoch(const char *schema)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT epoch FROM \"%s\".cache_state WHERE id = 1", schema);
    return tu_sql_ll(sql);
}

/* How many hash fields (token excluded) under keys starting with `prefix`
 * hold `needle` in their value; also counts the keys seen in *nkeys. */
static inline int ct_redis_values_with(const char *prefix, const char *needle, int *nkeys)
{
    redisContext *r = ct_redis();
    redisReply *keys = ct_rcmd(r, "KEYS %s*", prefix);
    ck_assert_msg(keys->type == REDIS_REPLY_ARRAY, "KEYS: unexpected reply");
    int found = 0;
    if (nkeys)
        *nkeys = (int)keys->elements;
    for (size_t i = 0; i < keys->elements; i++) {
        const char *argv[2] = {"HGETALL", keys->element[i]->str};
        size_t argl[2] = {7, keys->element[i]->len};
        redisReply *h = ct_rcmdv(r, 2, argv, argl);
        if (h->type == REDIS_REPLY_ARRAY) {
            for (size_t j = 0; j + 1 < h->elements; j += 2) {
                redisReply *f = h->element[j], *v = h->element[j + 1];
                if (f->len == 1 && f->str[0] == 't')
                    continue;
                if (v->type == REDIS_REPLY_STRING && memmem(v->str, v->len, needle, strlen(needle)))
                    found++;
            }
        }
        freeReplyObject(h);
    }
    freeReplyObject(keys);
    redisFree(r);
    return found;
}

/* The value of `field:` in INFO's text, or -1. */
static inline long long ct_redis_info(const char *section, const char *field)
{
    redisContext *r = ct_redis();
    redisReply *rep = ct_rcmd(r, "INFO %s", section);
    long long v = -1;
    if (rep->type == REDIS_REPLY_STRING) {
        char pat[128];
        snprintf(pat, sizeof pat, "\n%s:", field);
        const char *p = strstr(rep->str, pat);
        if (p)
            v = atoll(p + strlen(pat));
    }
    freeReplyObject(rep);
    redisFree(r);
    return v;
}

#endif
