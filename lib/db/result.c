/* Result objects: public accessors, construction and cache encoding. */
#include "result.h"

#include <stdlib.h>
#include <string.h>

enum { STR_ENTITY, STR_FIELD, STR_NEW, STR_OLD, STR_SOURCE, STR_REASON, STR_META, STR_COUNT };

/* The string members of a record, in encoding order. */
static const char **record_string(pl_record *r, int which)
{
    switch (which) {
    case STR_ENTITY: return &r->entity_id;
    case STR_FIELD: return &r->field_name;
    case STR_NEW: return &r->new_value;
    case STR_OLD: return &r->old_value;
    case STR_SOURCE: return &r->source_type;
    case STR_REASON: return &r->change_reason;
    default: return &r->metadata;
    }
}

size_t pl_result_count(const pl_result *r)
{
    return r ? r->count : 0;
}

const pl_record *pl_result_get(const pl_result *r, size_t i)
{
    if (!r || i >= r->count)
        return NULL;
    return &r->records[i];
}

void pl_result_free(pl_result *r)
{
    free(r);
}

int pl_result_origin(const pl_result *r)
{
    return r ? r->origin : PL_ORIGIN_PRIMARY;
}

int64_t pl_result_staleness_us(const pl_result *r)
{
    return r ? r->staleness_us : 0;
}

/* One allocation: header, record array, then string bytes. */
static pl_result *result_alloc(size_t count, size_t string_bytes, char **strings)
{
    size_t head = sizeof(pl_result);
    head = (head + 15) & ~(size_t)15;
    if (count > (SIZE_MAX - head - string_bytes) / sizeof(pl_record))
        return NULL;
    pl_result *r = calloc(1, head + count * sizeof(pl_record) + string_bytes);
    if (!r)
        return NULL;
    r->count = count;
    r->records = (pl_record *)((char *)r + head);
    *strings = (char *)(r->records + count);
    return r;
}

pl_result *pl_result_empty(void)
{
    char *unused;
    return result_alloc(0, 0, &unused);
}

/* Column number of each string in PL_RECORD_COLUMNS, and whether jsonb. */
static const int string_column[STR_COUNT] = {1, 2, 3, 4, 8, 9, 10};
static const int string_is_jsonb[STR_COUNT] = {0, 0, 1, 1, 0, 0, 1};

/* Text bytes of a binary column: jsonb carries a leading version byte. */
static int column_text(const PGresult *res, int row, int col, int jsonb,
                       const char **p, size_t *n)
{
    if (PQgetisnull(res, row, col)) {
        *p = NULL;
        *n = 0;
        return 0;
    }
    const char *v = PQgetvalue(res, row, col);
    size_t len = (size_t)PQgetlength(res, row, col);
    if (jsonb) {
        if (len < 1 || v[0] != 1)
            return -1;
        v++;
        len--;
    }
    *p = v;
    *n = len;
    return 0;
}

pl_result *pl_result_from_pg(const PGresult *res, int first_row)
{
    int rows = PQntuples(res);
    if (PQnfields(res) < PL_RECORD_NCOLS)
        return NULL;
    size_t count = 0, bytes = 0;
    for (int i = first_row; i < rows; i++) {
        if (PQgetisnull(res, i, 0))
            continue;
        count++;
        for (int s = 0; s < STR_COUNT; s++) {
            const char *p;
            size_t n;
            if (column_text(res, i, string_column[s], string_is_jsonb[s], &p, &n) < 0)
                return NULL;
            if (p)
                bytes += n + 1;
        }
    }
    char *str;
    pl_result *r = result_alloc(count, bytes, &str);
    if (!r)
        return NULL;
    size_t k = 0;
    for (int i = first_row; i < rows; i++) {
        if (PQgetisnull(res, i, 0))
            continue;
        pl_record *rec = &r->records[k++];
        if (PQgetlength(res, i, 0) != 8 || PQgetlength(res, i, 5) != 8 ||
            PQgetlength(res, i, 6) != 8 || PQgetlength(res, i, 7) != 8) {
            free(r);
            return NULL;
        }
        rec->id = pl_get_i64(PQgetvalue(res, i, 0));
        rec->transaction_time = pl_wire_get_time(PQgetvalue(res, i, 5));
        rec->valid_from = pl_wire_get_time(PQgetvalue(res, i, 6));
        rec->valid_to = pl_wire_get_time(PQgetvalue(res, i, 7));
        rec->erased = !PQgetisnull(res, i, 11);
        for (int s = 0; s < STR_COUNT; s++) {
            const char *p = NULL;
            size_t n = 0;
            column_text(res, i, string_column[s], string_is_jsonb[s], &p, &n);
            if (!p)
                continue;
            memcpy(str, p, n);
            str[n] = '\0';
            *record_string(rec, s) = str;
            str += n + 1;
        }
    }
    return r;
}

/* Version 2 added a flags byte per record (bit 0: erased); version 1
 * entries, written by older builds, still decode. */
static const char cache_magic[4] = {'P', 'L', 'R', 2};
static const char cache_magic_v1[4] = {'P', 'L', 'R', 1};

int pl_result_encode(pl_buf *out, const pl_result *r, pl_time valid_until)
{
    pl_buf_put(out, cache_magic, sizeof cache_magic);
    pl_buf_put_i64(out, valid_until);
    pl_buf_put_u32(out, (uint32_t)r->count);
    for (size_t i = 0; i < r->count; i++) {
        pl_record *rec = &r->records[i];
        pl_buf_put_i64(out, rec->id);
        pl_buf_put_i64(out, rec->transaction_time);
        pl_buf_put_i64(out, rec->valid_from);
        pl_buf_put_i64(out, rec->valid_to);
        unsigned char flags = rec->erased ? 1 : 0;
        pl_buf_put(out, &flags, 1);
        for (int s = 0; s < STR_COUNT; s++) {
            const char *p = *record_string(rec, s);
            if (!p) {
                pl_buf_put_u32(out, UINT32_MAX);
                continue;
            }
            size_t n = strlen(p);
            pl_buf_put_u32(out, (uint32_t)n);
            pl_buf_put(out, p, n);
        }
    }
    return out->failed ? -1 : 0;
}

/* Walks encoded bytes; with r == NULL only measures (count and bytes). */
static int decode_walk(const char *p, size_t n, pl_result *r, char *str,
                       size_t *count, size_t *bytes, pl_time *valid_until)
{
    size_t at = 0;
#define NEED(k)                  \
    do {                         \
        if (n - at < (size_t)(k)) \
            return -1;           \
    } while (0)
    NEED(sizeof cache_magic + 12);
    int v2 = memcmp(p, cache_magic, sizeof cache_magic) == 0;
    if (!v2 && memcmp(p, cache_magic_v1, sizeof cache_magic_v1) != 0)
        return -1;
    at += sizeof cache_magic;
    *valid_until = pl_get_i64(p + at);
    at += 8;
    uint32_t c = pl_get_u32(p + at);
    at += 4;
    size_t total = 0;
    for (uint32_t i = 0; i < c; i++) {
        NEED(32);
        pl_record *rec = r ? &r->records[i] : NULL;
        if (rec) {
            rec->id = pl_get_i64(p + at);
            rec->transaction_time = pl_get_i64(p + at + 8);
            rec->valid_from = pl_get_i64(p + at + 16);
            rec->valid_to = pl_get_i64(p + at + 24);
        }
        at += 32;
        if (v2) {
            NEED(1);
            if ((unsigned char)p[at] > 1)
                return -1;
            if (rec)
                rec->erased = (unsigned char)p[at];
            at += 1;
        }
        for (int s = 0; s < STR_COUNT; s++) {
            NEED(4);
            uint32_t len = pl_get_u32(p + at);
            at += 4;
            if (len == UINT32_MAX)
                continue;
            NEED(len);
            if (memchr(p + at, '\0', len))
                return -1;
            if (rec) {
                memcpy(str, p + at, len);
                str[len] = '\0';
                *record_string(rec, s) = str;
                str += len + 1;
            }
            total += (size_t)len + 1;
            at += len;
        }
        if (rec && (!rec->entity_id || !rec->field_name || !rec->new_value ||
                    !rec->source_type || !rec->metadata))
            return -1;
    }
#undef NEED
    if (at != n)
        return -1;
    *count = c;
    *bytes = total;
    return 0;
}

pl_result *pl_result_decode(const char *p, size_t n, pl_time *valid_until)
{
    size_t count, bytes;
    if (decode_walk(p, n, NULL, NULL, &count, &bytes, valid_until) < 0)
        return NULL;
    char *str;
    pl_result *r = result_alloc(count, bytes, &str);
    if (!r)
        return NULL;
    if (decode_walk(p, n, r, str, &count, &bytes, valid_until) < 0) {
        free(r);
        return NULL;
    }
    return r;
}
