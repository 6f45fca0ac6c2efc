/* The Redis result cache against an attacker who can write to Redis: every
 * cached answer is authenticated (a MAC bound to the ledger, the cache
 * epoch, the entity and the question), so bytes rewritten in place, an
 * answer moved to another entity, an answer replayed after a write or into
 * a later epoch, and a truncated answer are all refused. A refused hit is
 * answered from PostgreSQL (origin primary, the exact value), the entry is
 * dropped, pl_stats() counts it in cache_rejected and pl_health() raises a
 * "cache_rejected" alert; the next reads are served normally again.
 * PL_REALTIME reads never look at Redis at all.
 *
 * The tests play the attacker on the real Redis of tests/servers.sh. They
 * find an entity's hash by its id (SCAN MATCH *<entity>*; ids are chosen
 * so that none is part of another) and the current answer of field F by its
 * hash field "c"+F; the rest of the key and the entry's format are the
 * library's business and are never rebuilt here, only copied or damaged.
 *
 * Public API only: Redis is reached through the small RESP client below,
 * not hiredis (which only the internal library brings along). One test
 * restarts Redis: the suite runs serially.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Reads until the epoch moved by a Redis restart is in use again. */
#define REBIND_WAIT_MS 20000.0

/* ------------------------------------------------------------------------ */
/* A minimal RESP2 client: binary-safe arguments and replies               */
/* ------------------------------------------------------------------------ */

enum { RV_STATUS, RV_ERROR, RV_INT, RV_STR, RV_NIL, RV_ARRAY };

typedef struct rv {
    int type;
    long long integer;
    char *str; /* RV_STATUS, RV_ERROR, RV_STR: len bytes plus a NUL */
    size_t len;
    struct rv **elem; /* RV_ARRAY */
    size_t n;
} rv;

typedef struct rconn {
    int fd;
    FILE *in;
} rconn;

static void rv_free(rv *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        rv_free(v->elem[i]);
    free(v->elem);
    free(v->str);
    free(v);
}

/* A fresh connection per operation: one test restarts Redis under us. */
static rconn rd_open(void)
{
    const char *port = getenv("PL_TEST_REDIS_PORT");
    ck_assert_msg(port && *port, "PL_TEST_REDIS_PORT is not set");
    rconn c;
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(c.fd >= 0, "socket failed");
    struct timeval tv = {5, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(c.fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to Redis on %s failed",
                  port);
    int fd2 = dup(c.fd);
    c.in = fd2 >= 0 ? fdopen(fd2, "r") : NULL;
    ck_assert_msg(c.in != NULL, "fdopen failed");
    return c;
}

static void rd_close(rconn *c)
{
    fclose(c->in);
    close(c->fd);
}

static rv *rd_read(rconn *c)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, c->in);
    ck_assert_msg(n >= 3 && line[n - 2] == '\r' && line[n - 1] == '\n',
                  "Redis: broken or missing reply");
    line[n - 2] = '\0';
    rv *v = calloc(1, sizeof *v);
    ck_assert_msg(v != NULL, "out of memory");
    long long num = strtoll(line + 1, NULL, 10);
    switch (line[0]) {
    case '+':
    case '-':
        v->type = line[0] == '+' ? RV_STATUS : RV_ERROR;
        v->len = (size_t)(n - 3);
        v->str = strdup(line + 1);
        break;
    case ':':
        v->type = RV_INT;
        v->integer = num;
        break;
    case '$':
        if (num < 0) {
            v->type = RV_NIL;
            break;
        }
        v->type = RV_STR;
        v->len = (size_t)num;
        v->str = malloc(v->len + 2);
        ck_assert_msg(v->str != NULL, "out of memory");
        ck_assert_msg(fread(v->str, 1, v->len + 2, c->in) == v->len + 2, "Redis: short bulk reply");
        v->str[v->len] = '\0';
        break;
    case '*':
        if (num < 0) {
            v->type = RV_NIL;
            break;
        }
        v->type = RV_ARRAY;
        v->n = (size_t)num;
        v->elem = calloc(v->n ? v->n : 1, sizeof *v->elem);
        ck_assert_msg(v->elem != NULL, "out of memory");
        for (size_t i = 0; i < v->n; i++)
            v->elem[i] = rd_read(c);
        break;
    default:
        ck_abort_msg("Redis: unexpected reply type '%c'", line[0]);
    }
    free(line);
    return v;
}

static rv *rd_cmdv(rconn *c, int argc, const char *const *argv, const size_t *argl)
{
    size_t total = 32;
    for (int i = 0; i < argc; i++)
        total += argl[i] + 32;
    char *buf = malloc(total);
    ck_assert_msg(buf != NULL, "out of memory");
    size_t len = (size_t)snprintf(buf, total, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        len += (size_t)snprintf(buf + len, total - len, "$%zu\r\n", argl[i]);
        memcpy(buf + len, argv[i], argl[i]);
        len += argl[i];
        memcpy(buf + len, "\r\n", 2);
        len += 2;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(c->fd, buf + off, len - off);
        ck_assert_msg(w > 0, "Redis %s: write failed", argv[0]);
        off += (size_t)w;
    }
    free(buf);
    return rd_read(c);
}

/* A command of NUL-terminated text arguments, ending with NULL. */
static rv *rd_cmd(rconn *c, const char *cmd, ...)
{
    const char *argv[16];
    size_t argl[16];
    int argc = 0;
    va_list ap;
    va_start(ap, cmd);
    for (const char *a = cmd; a && argc < 16; a = va_arg(ap, const char *)) {
        argv[argc] = a;
        argl[argc++] = strlen(a);
    }
    va_end(ap);
    return rd_cmdv(c, argc, argv, argl);
}

/* ------------------------------------------------------------------------ */
/* An entity's hash, and the answer of one field in it                      */
/* ------------------------------------------------------------------------ */

typedef struct blob {
    char *p;
    size_t n;
} blob;

static void blob_free(blob *b)
{
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

static blob blob_copy(const void *p, size_t n)
{
    blob b = {malloc(n ? n : 1), n};
    ck_assert_msg(b.p != NULL, "out of memory");
    memcpy(b.p, p, n);
    return b;
}

/* Printable form of a binary key, for messages (static buffer). */
static const char *show(const blob *k)
{
    static char out[512];
    size_t o = 0;
    for (size_t i = 0; i < k->n && o + 5 < sizeof out; i++) {
        unsigned char ch = (unsigned char)k->p[i];
        if (ch >= 0x20 && ch < 0x7f)
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", ch);
    }
    out[o] = '\0';
    return out;
}

/* The hash field of the current answer of `field`: 'c' and the name. */
static blob answer_field(const char *field)
{
    size_t n = strlen(field);
    blob f = {malloc(n + 1), n + 1};
    ck_assert_msg(f.p != NULL, "out of memory");
    f.p[0] = 'c';
    memcpy(f.p + 1, field, n);
    return f;
}

/* The value of hash field `f` of `key`; .p NULL when absent. */
static blob hget(const blob *key, const blob *f)
{
    rconn c = rd_open();
    const char *argv[3] = {"HGET", key->p, f->p};
    size_t argl[3] = {4, key->n, f->n};
    rv *v = rd_cmdv(&c, 3, argv, argl);
    ck_assert_msg(v->type == RV_STR || v->type == RV_NIL, "HGET %s: %s", show(key),
                  v->type == RV_ERROR ? v->str : "unexpected reply");
    blob out = {NULL, 0};
    if (v->type == RV_STR)
        out = blob_copy(v->str, v->len);
    rv_free(v);
    rd_close(&c);
    return out;
}

static void hset(const blob *key, const blob *f, const blob *value)
{
    rconn c = rd_open();
    const char *argv[4] = {"HSET", key->p, f->p, value->p};
    size_t argl[4] = {4, key->n, f->n, value->n};
    rv *v = rd_cmdv(&c, 4, argv, argl);
    ck_assert_msg(v->type == RV_INT, "HSET %s: %s", show(key),
                  v->type == RV_ERROR ? v->str : "unexpected reply");
    rv_free(v);
    rd_close(&c);
}

/* The hash holding the cached answers of `entity` under this test's
 * prefix: every key SCAN MATCH *<entity>* finds that contains the prefix;
 * when several do (an old epoch's leftovers), the one holding an answer of
 * `field`. Returns .p NULL when there is none. */
static blob find_hash(const char *prefix, const char *entity, const char *field)
{
    char pattern[256];
    snprintf(pattern, sizeof pattern, "*%s*", entity);
    blob keys[16];
    size_t nkeys = 0;
    rconn c = rd_open();
    char cursor[32] = "0";
    do {
        rv *v = rd_cmd(&c, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000", (const char *)NULL);
        ck_assert_msg(v->type == RV_ARRAY && v->n == 2 && v->elem[0]->type == RV_STR &&
                          v->elem[1]->type == RV_ARRAY,
                      "SCAN: %s", v->type == RV_ERROR ? v->str : "unexpected reply");
        snprintf(cursor, sizeof cursor, "%s", v->elem[0]->str);
        for (size_t i = 0; i < v->elem[1]->n; i++) {
            rv *k = v->elem[1]->elem[i];
            if (k->type != RV_STR || !memmem(k->str, k->len, prefix, strlen(prefix)))
                continue;
            ck_assert_msg(nkeys < sizeof keys / sizeof keys[0], "too many hashes of %s", entity);
            keys[nkeys++] = blob_copy(k->str, k->len);
        }
        rv_free(v);
    } while (strcmp(cursor, "0") != 0);
    rd_close(&c);

    blob found = {NULL, 0};
    blob f = answer_field(field);
    for (size_t i = 0; i < nkeys; i++) {
        if (!found.p) {
            blob v = hget(&keys[i], &f);
            if (v.p || nkeys == 1) {
                found = keys[i];
                keys[i].p = NULL;
            }
            blob_free(&v);
        }
        blob_free(&keys[i]);
    }
    blob_free(&f);
    return found;
}

/* An entity's hash and the bytes of one field's cached answer in it, as
 * the attacker sees them; fails the test when there is no such answer. */
typedef struct entry {
    blob key;
    blob field; /* "c" + field name */
    blob value;
} entry;

static entry capture(const char *prefix, const char *entity, const char *field)
{
    entry e;
    e.key = find_hash(prefix, entity, field);
    ck_assert_msg(e.key.p != NULL, "no Redis hash of entity %s under prefix %s", entity, prefix);
    e.field = answer_field(field);
    e.value = hget(&e.key, &e.field);
    ck_assert_msg(e.value.p != NULL && e.value.n > 0, "hash %s holds no answer of field %s",
                  show(&e.key), field);
    return e;
}

static void entry_free(entry *e)
{
    blob_free(&e->key);
    blob_free(&e->field);
    blob_free(&e->value);
}

/* ------------------------------------------------------------------------ */
/* The ledger                                                                */
/* ------------------------------------------------------------------------ */

/* tu_config with the cache on (this test's own schema and key prefix), a
 * short lease and breaker retry so that a restarted Redis is used again
 * soon, and Redis timeouts long enough that a loaded machine does not trip
 * the breaker where a test expects a hit. */
static void auth_config(pl_config *cfg)
{
    tu_config(cfg, 1);
    cfg->redis_connect_timeout_ms = 2000;
    cfg->redis_command_timeout_ms = 2000;
    cfg->cache_lease_ms = 400;
    cfg->redis_retry_ms = 200;
}

static pl_ledger *auth_open(const char **prefix)
{
    pl_config cfg;
    auth_config(&cfg);
    *prefix = cfg.cache_key_prefix;
    return tu_open_cfg(&cfg);
}

static pl_stats_info stats(pl_ledger *l)
{
    pl_stats_info s;
    memset(&s, 0, sizeof s);
    tu_ok(pl_stats(&s, l, sizeof s));
    return s;
}

static void put(pl_ledger *l, const char *entity, const char *field, const char *value)
{
    pl_change c = tu_change(entity, field, value);
    tu_ok(pl_insert(NULL, l, &c));
}

/* One pl_current answer, with what the record says about itself. */
typedef struct answer {
    int origin;
    char *entity, *field, *value;
} answer;

static answer read_answer(pl_ledger *l, const char *entity, const char *field, unsigned flags)
{
    pl_result *r = NULL;
    int rc = pl_current(&r, l, entity, field, flags);
    ck_assert_msg(rc == PL_OK, "pl_current(%s, %s) -> %d (%s): %s", entity, field, rc,
                  pl_strerror(rc), pl_errmsg());
    ck_assert_msg(pl_result_count(r) == 1, "pl_current(%s, %s): %zu records", entity, field,
                  pl_result_count(r));
    const pl_record *rec = pl_result_get(r, 0);
    answer a = {pl_result_origin(r), strdup(rec->entity_id), strdup(rec->field_name),
                strdup(rec->new_value)};
    pl_result_free(r);
    return a;
}

static void answer_free(answer *a)
{
    free(a->entity);
    free(a->field);
    free(a->value);
}

static int answer_is(const answer *a, const char *entity, const char *field, const char *value)
{
    return strcmp(a->entity, entity) == 0 && strcmp(a->field, field) == 0 &&
           strcmp(a->value, value) == 0;
}

static const char *origin_name(int origin)
{
    switch (origin) {
    case PL_ORIGIN_PRIMARY:
        return "primary";
    case PL_ORIGIN_CACHE:
        return "cache";
    case PL_ORIGIN_REPLICA:
        return "replica";
    case PL_ORIGIN_VIEW:
        return "view";
    default:
        return "?";
    }
}

/* Reads entity.field twice: both exact, the second served by the cache,
 * which proves there is an answer in Redis to attack. */
static void cache_answer(pl_ledger *l, const char *entity, const char *field, const char *want)
{
    for (int i = 0; i < 2; i++) {
        answer a = read_answer(l, entity, field, 0);
        ck_assert_msg(answer_is(&a, entity, field, want), "read %d of %s.%s: %s.%s = %s, want %s",
                      i + 1, entity, field, a.entity, a.field, a.value, want);
        if (i == 1)
            ck_assert_msg(a.origin == PL_ORIGIN_CACHE,
                          "second read of %s.%s came from the %s, not the cache", entity, field,
                          origin_name(a.origin));
        answer_free(&a);
    }
}

/* The read after the tampering: the exact answer from PostgreSQL, one
 * rejection or more counted, and the attacker's bytes no longer in the
 * hash (dropped, or replaced by a genuine refill). All of it is checked in
 * one assertion so that a failure shows the whole picture. */
static void expect_refused(pl_ledger *l, const char *entity, const char *field, const char *want,
                           const entry *planted, const char *what)
{
    pl_stats_info s0 = stats(l);
    answer a = read_answer(l, entity, field, 0);
    pl_stats_info s1 = stats(l);
    int exact = answer_is(&a, entity, field, want);
    int primary = a.origin == PL_ORIGIN_PRIMARY;
    int counted = s1.cache_rejected >= s0.cache_rejected + 1;
    ck_assert_msg(exact && primary && counted,
                  "%s: read of %s.%s after tampering gave %s.%s = %s from the %s (want %s from "
                  "the primary); cache_rejected %" PRIu64 " -> %" PRIu64 " (want +1 or more)",
                  what, entity, field, a.entity, a.field, a.value, origin_name(a.origin), want,
                  s0.cache_rejected, s1.cache_rejected);
    answer_free(&a);
    blob now = hget(&planted->key, &planted->field);
    ck_assert_msg(!now.p || now.n != planted->value.n ||
                      memcmp(now.p, planted->value.p, now.n) != 0,
                  "%s: the refused entry is still in hash %s", what, show(&planted->key));
    blob_free(&now);
}

/* After a refusal the cache works again: the next reads are exact, one of
 * them (after the refill) is a hit, and nothing more is refused. */
static void expect_recovered(pl_ledger *l, const char *entity, const char *field, const char *want,
                             const char *what)
{
    pl_stats_info s0 = stats(l);
    int hit = 0;
    for (int i = 0; i < 3 && !hit; i++) {
        answer a = read_answer(l, entity, field, 0);
        ck_assert_msg(answer_is(&a, entity, field, want), "%s: read %d after the refusal: %s.%s = %s, want %s",
                      what, i + 1, a.entity, a.field, a.value, want);
        hit = a.origin == PL_ORIGIN_CACHE;
        answer_free(&a);
    }
    pl_stats_info s1 = stats(l);
    ck_assert_msg(hit, "%s: no cache hit in the 3 reads after the refusal", what);
    ck_assert_msg(s1.cache_rejected == s0.cache_rejected,
                  "%s: genuine refills were refused too (cache_rejected %" PRIu64 " -> %" PRIu64 ")",
                  what, s0.cache_rejected, s1.cache_rejected);
}

/* Replaces every occurrence of `from` in b by `to` (same length); returns
 * how many there were. */
static int replace_bytes(blob *b, const char *from, const char *to)
{
    size_t n = strlen(from);
    ck_assert_uint_eq(n, strlen(to));
    int count = 0;
    char *p = b->p, *end = b->p + b->n;
    while ((p = memmem(p, (size_t)(end - p), from, n)) != NULL) {
        memcpy(p, to, n);
        p += n;
        count++;
    }
    return count;
}

/* Whether pl_health's "alerts" array holds an alert named `name`. Scans
 * the JSON text (the suite does not link jansson): the counters section
 * may well hold a key of the same name, so only the array counts. */
static int health_has_alert(pl_ledger *l, const char *name)
{
    char *json = NULL;
    tu_ok(pl_health(&json, l));
    char *p = strstr(json, "\"alerts\"");
    ck_assert_msg(p != NULL, "pl_health has no alerts: %s", json);
    p += strlen("\"alerts\"");
    while (*p == ' ' || *p == ':')
        p++;
    ck_assert_msg(*p == '[', "pl_health's alerts are not an array: %s", json);
    char *start = p;
    int depth = 0, in_str = 0;
    for (; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = 0;
        } else if (*p == '"') {
            in_str = 1;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if ((*p == ']' || *p == '}') && --depth == 0) {
            break;
        }
    }
    ck_assert_msg(*p == ']', "pl_health's alerts array does not end: %s", json);
    char want[128];
    snprintf(want, sizeof want, "\"%s\"", name);
    int found = 0;
    for (char *q = start; q < p && !found; q++) {
        if (strncmp(q, "\"name\"", 6) != 0)
            continue;
        char *v = q + 6;
        while (*v == ' ' || *v == ':')
            v++;
        found = strncmp(v, want, strlen(want)) == 0;
    }
    if (!found)
        fprintf(stderr, "pl_health without a %s alert: %.*s\n", name, (int)(p - start + 1), start);
    pl_free(json);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Tampering                                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(test_rewrite_bytes)
{
    const char *prefix;
    pl_ledger *l = auth_open(&prefix);
    const char *e = "auth-rewrite-doc", *f = "owner";
    put(l, e, f, "\"alice\"");
    cache_answer(l, e, f, "\"alice\"");
    /* The same length keeps every length field of the entry right: only a
     * MAC can tell. */
    entry en = capture(prefix, e, f);
    ck_assert_msg(replace_bytes(&en.value, "alice", "mallo") >= 1, "cached answer without \"alice\"");
    hset(&en.key, &en.field, &en.value);
    expect_refused(l, e, f, "\"alice\"", &en, "rewrite_bytes");
    ck_assert_msg(health_has_alert(l, "cache_rejected"),
                  "pl_health raised no cache_rejected alert after a rejection");
    expect_recovered(l, e, f, "\"alice\"", "rewrite_bytes");
    entry_free(&en);
    pl_close(l);
}
END_TEST

START_TEST(test_move_to_other_entity)
{
    const char *prefix;
    pl_ledger *l = auth_open(&prefix);
    const char *a = "auth-move-ann", *b = "auth-move-bob", *f = "label";
    put(l, a, f, "\"ann-private\"");
    put(l, b, f, "\"bob-public\"");
    cache_answer(l, a, f, "\"ann-private\"");
    cache_answer(l, b, f, "\"bob-public\"");
    /* A genuine entry, MAC and all, planted where another entity's answer
     * of the same field belongs: only its binding to the entity can tell. */
    entry ea = capture(prefix, a, f);
    entry eb = capture(prefix, b, f);
    ck_assert_msg(ea.key.n != eb.key.n || memcmp(ea.key.p, eb.key.p, ea.key.n) != 0,
                  "two entities share hash %s", show(&ea.key));
    blob_free(&eb.value);
    eb.value = blob_copy(ea.value.p, ea.value.n);
    hset(&eb.key, &eb.field, &eb.value);
    expect_refused(l, b, f, "\"bob-public\"", &eb, "move_to_other_entity");
    expect_recovered(l, b, f, "\"bob-public\"", "move_to_other_entity");
    /* The copied-from entry was never touched. */
    answer x = read_answer(l, a, f, 0);
    ck_assert_msg(answer_is(&x, a, f, "\"ann-private\"") && x.origin == PL_ORIGIN_CACHE,
                  "%s.%s = %s from the %s", a, f, x.value, origin_name(x.origin));
    answer_free(&x);
    entry_free(&ea);
    entry_free(&eb);
    pl_close(l);
}
END_TEST

START_TEST(test_replay_after_write)
{
    const char *prefix;
    pl_ledger *l = auth_open(&prefix);
    const char *e = "auth-replay-write", *f = "status";
    put(l, e, f, "\"v1-approved\"");
    cache_answer(l, e, f, "\"v1-approved\"");
    entry old = capture(prefix, e, f);
    /* A fill is refused as older than our own write only beyond the margin
     * of the lease's clock estimate (its round trip plus 1 ms, cache.c
     * entry_open): write well after it, as a replay of a captured entry
     * always comes. */
    usleep(200 * 1000);
    put(l, e, f, "\"v2-revoked\"");
    answer a = read_answer(l, e, f, 0);
    ck_assert_msg(answer_is(&a, e, f, "\"v2-revoked\""), "after the write: %s", a.value);
    answer_free(&a);
    /* A genuine but outdated entry, put back where the current answer
     * lives now: the write cleared the entity's hash, the replay comes after. */
    entry now;
    memset(&now, 0, sizeof now);
    now.key = find_hash(prefix, e, f);
    if (!now.key.p) /* not refilled: the hash is recreated under the old name */
        now.key = blob_copy(old.key.p, old.key.n);
    now.field = answer_field(f);
    now.value = blob_copy(old.value.p, old.value.n);
    hset(&now.key, &now.field, &now.value);
    expect_refused(l, e, f, "\"v2-revoked\"", &now, "replay_after_write");
    expect_recovered(l, e, f, "\"v2-revoked\"", "replay_after_write");
    entry_free(&old);
    entry_free(&now);
    pl_close(l);
}
END_TEST

/* Redis back as the harness made it, whatever the test did. */
static void redis_up(void)
{
    const char *ctl = getenv("PL_TEST_CTL");
    if (ctl && *ctl && tu_ctl("redis-start") != 0)
        fprintf(stderr, "cache_auth: could not start Redis\n");
}

START_TEST(test_replay_other_epoch)
{
    const char *prefix;
    pl_ledger *l = auth_open(&prefix);
    const char *e = "auth-replay-epoch", *f = "status";
    put(l, e, f, "\"v1-approved\"");
    cache_answer(l, e, f, "\"v1-approved\"");
    entry old = capture(prefix, e, f);
    /* A later value, so that a served replay would show: the replayed
     * bytes would otherwise equal the genuine answer. */
    put(l, e, f, "\"v2-revoked\"");
    cache_answer(l, e, f, "\"v2-revoked\"");

    /* A restarted Redis has a new run_id: the library moves the epoch and
     * keys its answers anew. Read until a hit shows the new epoch in use. */
    ck_assert_int_eq(tu_ctl("redis-restart"), 0);
    double t0 = tu_now_ms();
    int hit = 0;
    while (!hit && tu_now_ms() - t0 < REBIND_WAIT_MS) {
        answer a = read_answer(l, e, f, 0);
        ck_assert_msg(answer_is(&a, e, f, "\"v2-revoked\""), "after the restart: %s", a.value);
        hit = a.origin == PL_ORIGIN_CACHE;
        answer_free(&a);
        if (!hit)
            tu_sleep_ms(100);
    }
    ck_assert_msg(hit, "no cache hit within %.0f s of the Redis restart", REBIND_WAIT_MS / 1000);
    fprintf(stderr, "replay_other_epoch: cache back %.0f ms after the restart\n", tu_now_ms() - t0);

    entry now = capture(prefix, e, f);
    ck_assert_msg(now.key.n != old.key.n || memcmp(now.key.p, old.key.p, now.key.n) != 0,
                  "the restart did not move the epoch: the hash is still %s", show(&now.key));
    /* The old epoch's genuine entry, planted in the new epoch's hash. */
    blob_free(&now.value);
    now.value = blob_copy(old.value.p, old.value.n);
    hset(&now.key, &now.field, &now.value);
    expect_refused(l, e, f, "\"v2-revoked\"", &now, "replay_other_epoch");
    expect_recovered(l, e, f, "\"v2-revoked\"", "replay_other_epoch");
    entry_free(&old);
    entry_free(&now);
    pl_close(l);
}
END_TEST

START_TEST(test_truncate)
{
    const char *prefix;
    pl_ledger *l = auth_open(&prefix);
    const char *e = "auth-truncate", *f = "note";
    const char *v = "{\"text\": \"a note long enough to be cut in half somewhere in its middle\"}";
    put(l, e, f, v);
    cache_answer(l, e, f, v);
    entry en = capture(prefix, e, f);
    en.value.n /= 2;
    hset(&en.key, &en.field, &en.value);
    expect_refused(l, e, f, v, &en, "truncate");
    expect_recovered(l, e, f, v, "truncate");
    entry_free(&en);
    pl_close(l);
}
END_TEST

START_TEST(test_realtime_ignores_redis)
{
    const char *prefix;
    pl_ledger *l = auth_open(&prefix);
    const char *e = "auth-realtime", *f = "owner";
    put(l, e, f, "\"alice\"");
    cache_answer(l, e, f, "\"alice\"");
    entry en = capture(prefix, e, f);
    ck_assert_msg(replace_bytes(&en.value, "alice", "mallo") >= 1, "cached answer without \"alice\"");
    hset(&en.key, &en.field, &en.value);
    pl_stats_info s0 = stats(l);
    for (int i = 0; i < 3; i++) {
        answer a = read_answer(l, e, f, PL_REALTIME);
        ck_assert_msg(answer_is(&a, e, f, "\"alice\"") && a.origin == PL_ORIGIN_PRIMARY,
                      "realtime read %d: %s.%s = %s from the %s", i + 1, a.entity, a.field, a.value,
                      origin_name(a.origin));
        answer_free(&a);
    }
    pl_stats_info s1 = stats(l);
    ck_assert_msg(s1.cache_rejected == s0.cache_rejected,
                  "realtime reads judged the cache (cache_rejected %" PRIu64 " -> %" PRIu64 ")",
                  s0.cache_rejected, s1.cache_rejected);
    ck_assert_uint_eq(s1.cache_hits, s0.cache_hits);
    ck_assert_uint_eq(s1.cache_misses, s0.cache_misses);
    ck_assert_uint_eq(s1.cache_fills, s0.cache_fills);
    ck_assert_uint_eq(s1.cache_bypassed, s0.cache_bypassed + 3);
    /* Not even read: the planted bytes are still there, as planted. */
    blob still = hget(&en.key, &en.field);
    ck_assert_msg(still.p && still.n == en.value.n && memcmp(still.p, en.value.p, still.n) == 0,
                  "a realtime read changed hash %s", show(&en.key));
    blob_free(&still);
    entry_free(&en);
    pl_close(l);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("cache_auth");
    TCase *tc = tu_tcase("tampering", 60);
    tcase_add_test(tc, test_rewrite_bytes);
    tcase_add_test(tc, test_move_to_other_entity);
    tcase_add_test(tc, test_replay_after_write);
    tcase_add_test(tc, test_truncate);
    tcase_add_test(tc, test_realtime_ignores_redis);
    suite_add_tcase(s, tc);
    tc = tu_tcase("epochs", 120);
    tcase_add_unchecked_fixture(tc, NULL, redis_up);
    tcase_add_test(tc, test_replay_other_epoch);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
