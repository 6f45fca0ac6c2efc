/* Keyset paging of history and ranges: pl_history_page and pl_range_page,
 * their cursors, and the query description the iterators share (page.h).
 *
 * A page is one statement (lib/sql/statements/pl_page_*.sql): the records
 * strictly after the position of the previous page's last record in
 * (transaction_time, id) order, or strictly before it newest first, read
 * by a range condition on an index that has that order (idx_prov_tt for
 * one field, idx_prov_entity_tt of migration 6 for all fields), so a page
 * costs the same at any depth. Within an entity transaction times strictly
 * increase in commit order, so a record committed during a walk is after
 * every record a page has shown: oldest first it comes on a later page,
 * newest first it is above the walk's start and never comes; no record is
 * skipped or repeated.
 *
 * A cursor is "p1:<transaction time, us>:<id>:<mac>", mac the first 16
 * bytes (hex) of HMAC-SHA-256 under a key derived from the ledger's secret
 * (cache_secret, migration 3) over the position and the whole query (call,
 * order, entity, field, window): another query's cursor, another ledger's,
 * or an altered one is refused. */
#include "page.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ledger.h"
#include "result.h"
#include "validate.h"
#include "wire.h"

#define MAC_BYTES 16
#define CURSOR_MAX 80

/* ------------------------------------------------------------------------ */
/* The query                                                                 */
/* ------------------------------------------------------------------------ */

int pl_page_query_init(pl_page_query *q, int range, const char *entity, const char *field,
                       pl_time from, pl_time to, unsigned flags)
{
    memset(q, 0, sizeof *q);
    int rc = pl_check_text("entity_id", entity, PL_MAX_KEY_BYTES, 1);
    if (!rc && field)
        rc = pl_check_text("field_name", field, PL_MAX_KEY_BYTES, 1);
    if (!rc && range && !(rc = pl_check_query_time("from", from)))
        rc = pl_check_query_time("to", to);
    if (rc)
        return rc;
    unsigned known = PL_REALTIME | PL_ALLOW_STALE | PL_NEWEST_FIRST;
    if (flags & ~known)
        return pl_fail(PL_EINVAL, "flags: unknown bits 0x%x", flags & ~known);
    if (range && from != PL_TIME_NOW && from != PL_TIME_ANY && to != PL_TIME_NOW && to != PL_TIME_ANY &&
        from > to)
        return pl_fail(PL_EINVAL, "from: must not be after to");
    q->range = range;
    q->entity = entity;
    q->field = field;
    q->from = range ? from : PL_TIME_ANY;
    q->to = range ? to : PL_TIME_ANY;
    q->newest_first = (flags & PL_NEWEST_FIRST) != 0;
    if (field)
        q->stmt = q->newest_first ? PL_SQL_PAGE_FIELD_DESC : PL_SQL_PAGE_FIELD_ASC;
    else
        q->stmt = q->newest_first ? PL_SQL_PAGE_ALL_DESC : PL_SQL_PAGE_ALL_ASC;
    /* As pl_read_range: an end that is an instant settles first. */
    q->settle = q->to != PL_TIME_ANY && q->to != PL_TIME_NOW;
    return PL_OK;
}

/* A window end as a text parameter: NULL is the server's now(). */
static const char *end_param(char buf[PL_TIME_BUFSIZE], pl_time t, const char *open)
{
    if (t == PL_TIME_NOW)
        return NULL;
    if (t == PL_TIME_ANY)
        return open;
    pl_time_format(buf, PL_TIME_BUFSIZE, t);
    return buf;
}

void pl_page_params_fill(pl_page_params *p, const pl_page_query *q, int has_pos, pl_time tt,
                         int64_t id, size_t limit)
{
    int n = 0;
    p->values[n++] = q->entity;
    if (q->field)
        p->values[n++] = q->field;
    p->values[n++] = end_param(p->from, q->from, "-infinity");
    p->values[n++] = end_param(p->to, q->to, "infinity");
    if (has_pos) {
        pl_time_format(p->at, sizeof p->at, tt);
        p->values[n++] = p->at;
    } else {
        /* Before the first record in either order. */
        p->values[n++] = q->newest_first ? "infinity" : "-infinity";
    }
    snprintf(p->id, sizeof p->id, "%" PRId64, has_pos ? id : 0);
    p->values[n++] = p->id;
    if (limit) {
        snprintf(p->limit, sizeof p->limit, "%zu", limit);
        p->values[n++] = p->limit;
    } else {
        p->values[n++] = NULL; /* LIMIT NULL: every row */
    }
}

int pl_page_settle(pl_ledger *l, const pl_page_query *q)
{
    if (!q->settle)
        return PL_OK;
    const char *values[1] = {q->entity};
    PGresult *res = NULL;
    int rc = pl_db_run(l->db, PL_SQL_SETTLE, values, NULL, 0, &res);
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Cursors                                                                   */
/* ------------------------------------------------------------------------ */

/* The cursor key: HMAC-SHA-256(ledger secret, a label of its own), so that
 * no cursor MAC is ever a cache MAC. Read once per handle. */
static int page_key(pl_ledger *l, unsigned char key[32])
{
    pthread_mutex_lock(&l->page_mu);
    int ok = l->page_key_ok;
    if (ok)
        memcpy(key, l->page_key, 32);
    pthread_mutex_unlock(&l->page_mu);
    if (ok)
        return PL_OK;
    PGresult *res = NULL;
    int rc = pl_db_run(l->db, PL_SQL_CACHE_SECRET, NULL, NULL, 0, &res);
    if (rc == PL_OK && (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) || PQgetlength(res, 0, 0) < 16))
        rc = pl_fail(PL_EDB, "the ledger's secret (pl_cache_secret()) is missing or too short");
    if (rc) {
        PQclear(res);
        return pl_fail(rc, "paging cursors are keyed with the ledger's secret, which pl_cache_secret() "
                           "gives (README \"Roles and grants\"): %s", pl_errmsg());
    }
    static const char label[] = "provledger page cursor key v1";
    unsigned int len = 0;
    unsigned char derived[EVP_MAX_MD_SIZE];
    int made = HMAC(EVP_sha256(), PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0),
                    (const unsigned char *)label, sizeof label - 1, derived, &len) != NULL;
    PQclear(res);
    if (!made || len != 32)
        return pl_fail(PL_ENOMEM, "HMAC-SHA-256 failed (OpenSSL)");
    pthread_mutex_lock(&l->page_mu);
    memcpy(l->page_key, derived, 32);
    l->page_key_ok = 1;
    pthread_mutex_unlock(&l->page_mu);
    memcpy(key, derived, 32);
    OPENSSL_cleanse(derived, sizeof derived);
    return PL_OK;
}

static void put_str(pl_buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    pl_buf_put_u32(b, s ? (uint32_t)n : UINT32_MAX); /* NULL differs from "" */
    if (n)
        pl_buf_put(b, s, n);
}

/* MAC over the position and every part of the query. */
static int cursor_mac(pl_ledger *l, const pl_page_query *q, pl_time tt, int64_t id,
                      unsigned char out[MAC_BYTES])
{
    unsigned char key[32];
    int rc = page_key(l, key);
    if (rc)
        return rc;
    pl_buf b;
    memset(&b, 0, sizeof b);
    char head[4] = {'p', 'l', 'p', '1'};
    pl_buf_put(&b, head, sizeof head);
    char shape[2] = {q->range ? 'r' : 'h', q->newest_first ? 'd' : 'a'};
    pl_buf_put(&b, shape, sizeof shape);
    put_str(&b, q->entity);
    put_str(&b, q->field);
    pl_buf_put_i64(&b, q->from);
    pl_buf_put_i64(&b, q->to);
    pl_buf_put_i64(&b, tt);
    pl_buf_put_i64(&b, id);
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int made = !b.failed && HMAC(EVP_sha256(), key, 32, (const unsigned char *)b.data, b.len, full, &len) &&
               len >= MAC_BYTES;
    pl_buf_free(&b);
    OPENSSL_cleanse(key, sizeof key);
    if (!made)
        return pl_fail(PL_ENOMEM, "out of memory");
    memcpy(out, full, MAC_BYTES);
    return PL_OK;
}

static int cursor_make(char **out, pl_ledger *l, const pl_page_query *q, pl_time tt, int64_t id)
{
    unsigned char mac[MAC_BYTES];
    int rc = cursor_mac(l, q, tt, id, mac);
    if (rc)
        return rc;
    char *c = malloc(CURSOR_MAX + 1);
    if (!c)
        return pl_fail(PL_ENOMEM, "out of memory");
    int n = snprintf(c, CURSOR_MAX + 1, "p1:%" PRId64 ":%" PRId64 ":", (int64_t)tt, id);
    for (int i = 0; i < MAC_BYTES; i++)
        n += snprintf(c + n, (size_t)(CURSOR_MAX + 1 - n), "%02x", mac[i]);
    *out = c;
    return PL_OK;
}

/* A decimal int64 followed by ':'; advances *p past the ':'. */
static int parse_i64(const char **p, int64_t *out)
{
    const char *s = *p;
    if (*s == '-')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    long long v = strtoll(*p, &end, 10);
    if (*end != ':' || end - *p > 20)
        return -1;
    *out = (int64_t)v;
    *p = end + 1;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int cursor_parse(pl_ledger *l, const pl_page_query *q, const char *cursor, pl_time *tt, int64_t *id)
{
    int rc = pl_check_text("cursor", cursor, CURSOR_MAX, 1);
    if (rc)
        return rc;
    const char *p = cursor;
    unsigned char got[MAC_BYTES];
    int64_t t = 0;
    int ok = strncmp(p, "p1:", 3) == 0;
    if (ok) {
        p += 3;
        ok = parse_i64(&p, &t) == 0 && parse_i64(&p, id) == 0 && strlen(p) == 2 * MAC_BYTES;
    }
    for (int i = 0; ok && i < MAC_BYTES; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        got[i] = ok ? (unsigned char)(hi << 4 | lo) : 0;
    }
    if (!ok || t < PL_TIME_MIN || t > PL_TIME_MAX)
        return pl_fail(PL_EINVAL, "cursor: not a history or range cursor");
    unsigned char want[MAC_BYTES];
    if ((rc = cursor_mac(l, q, t, *id, want)))
        return rc;
    if (CRYPTO_memcmp(got, want, MAC_BYTES) != 0)
        return pl_fail(PL_EINVAL, "cursor: not a cursor of this query (another entity, field, window "
                                  "or order, another ledger, or altered)");
    *tt = t;
    return PL_OK;
}

/* ------------------------------------------------------------------------ */
/* Pages                                                                     */
/* ------------------------------------------------------------------------ */

static int page_call(pl_result **out, char **next_cursor, pl_ledger *l, int range, const char *entity_id,
                     const char *field_name, pl_time from, pl_time to, const char *cursor, size_t limit,
                     unsigned flags)
{
    if (next_cursor)
        *next_cursor = NULL;
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    pl_page_query q;
    int rc = pl_page_query_init(&q, range, entity_id, field_name, from, to, flags);
    if (rc)
        return rc;
    if (limit < 1 || limit > PL_MAX_PAGE)
        return pl_fail(PL_EINVAL, "limit: %zu is outside 1..%d", limit, PL_MAX_PAGE);
    pl_time at = 0;
    int64_t id = 0;
    if (cursor && (rc = cursor_parse(l, &q, cursor, &at, &id)))
        return rc;
    if ((rc = pl_page_settle(l, &q)))
        return rc;
    /* One more than the page: whether another page follows. */
    pl_page_params p;
    pl_page_params_fill(&p, &q, cursor != NULL, at, id, limit + 1);
    PGresult *res = NULL;
    if ((rc = pl_db_run(l->db, q.stmt, p.values, NULL, 0, &res)))
        return rc;
    pl_result *r = pl_result_from_pg(res, 0);
    PQclear(res);
    if (!r)
        return pl_fail(PL_EDB, "PostgreSQL returned rows this library cannot read");
    if (r->count > limit) {
        r->count = limit; /* the extra record stays in the one allocation */
        const pl_record *last = &r->records[limit - 1];
        if (next_cursor && (rc = cursor_make(next_cursor, l, &q, last->transaction_time, last->id))) {
            pl_result_free(r);
            return rc;
        }
    }
    *out = r;
    return PL_OK;
}

int pl_history_page(pl_result **out, char **next_cursor, pl_ledger *l, const char *entity_id,
                    const char *field_name, const char *cursor, size_t limit, unsigned flags)
{
    PL_GUARD(l, page_call(out, next_cursor, l, 0, entity_id, field_name, PL_TIME_ANY, PL_TIME_ANY, cursor,
                          limit, flags));
}

int pl_range_page(pl_result **out, char **next_cursor, pl_ledger *l, const char *entity_id,
                  const char *field_name, pl_time from, pl_time to, const char *cursor, size_t limit,
                  unsigned flags)
{
    PL_GUARD(l, page_call(out, next_cursor, l, 1, entity_id, field_name, from, to, cursor, limit, flags));
}
