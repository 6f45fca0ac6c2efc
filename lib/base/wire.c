/* Binary encodings of parameters and columns (see wire.h). */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

void pl_buf_free(pl_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void pl_buf_put(pl_buf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

void pl_buf_put_u32(pl_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    pl_buf_put(b, x, 4);
}

void pl_buf_put_i64(pl_buf *b, int64_t v)
{
    char x[8];
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        x[i] = (char)(u & 0xff);
    pl_buf_put(b, x, 8);
}

uint32_t pl_get_u32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

int64_t pl_get_i64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u[i];
    return (int64_t)v;
}

void pl_wire_put_time(char out[8], pl_time t)
{
    int64_t v;
    if (t == PL_TIME_INFINITY)
        v = INT64_MAX;
    else if (t == PL_TIME_ANY)
        v = INT64_MIN; /* -infinity: callers use it for an open lower end */
    else
        v = t - PL_PG_EPOCH_US;
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        out[i] = (char)(u & 0xff);
}

pl_time pl_wire_get_time(const char *p)
{
    int64_t v = pl_get_i64(p);
    if (v == INT64_MAX)
        return PL_TIME_INFINITY;
    if (v == INT64_MIN)
        return PL_TIME_ANY;
    return v + PL_PG_EPOCH_US;
}

void pl_array_begin(pl_array *a, uint32_t elem_oid)
{
    memset(a, 0, sizeof *a);
    pl_buf_put_u32(&a->buf, 1);        /* dimensions */
    pl_buf_put_u32(&a->buf, 1);        /* has nulls: always allowed */
    pl_buf_put_u32(&a->buf, elem_oid); /* element type */
    a->count_at = a->buf.len;
    pl_buf_put_u32(&a->buf, 0); /* length, patched by pl_array_end */
    pl_buf_put_u32(&a->buf, 1); /* lower bound */
}

static void array_null(pl_array *a)
{
    pl_buf_put_u32(&a->buf, UINT32_MAX); /* -1: NULL element */
    a->count++;
}

void pl_array_text(pl_array *a, const char *s)
{
    if (!s) {
        array_null(a);
        return;
    }
    size_t n = strlen(s);
    pl_buf_put_u32(&a->buf, (uint32_t)n);
    pl_buf_put(&a->buf, s, n);
    a->count++;
}

void pl_array_jsonb(pl_array *a, const char *s)
{
    if (!s) {
        array_null(a);
        return;
    }
    size_t n = strlen(s);
    static const char version = 1; /* jsonb binary format version */
    pl_buf_put_u32(&a->buf, (uint32_t)(n + 1));
    pl_buf_put(&a->buf, &version, 1);
    pl_buf_put(&a->buf, s, n);
    a->count++;
}

void pl_array_time(pl_array *a, pl_time t)
{
    if (t == PL_TIME_NOW) {
        array_null(a);
        return;
    }
    char x[8];
    pl_wire_put_time(x, t);
    pl_buf_put_u32(&a->buf, 8);
    pl_buf_put(&a->buf, x, 8);
    a->count++;
}

void pl_array_int8(pl_array *a, int64_t v)
{
    pl_buf_put_u32(&a->buf, 8);
    pl_buf_put_i64(&a->buf, v);
    a->count++;
}

void pl_array_int2(pl_array *a, int16_t v)
{
    unsigned char x[2] = {(unsigned char)((uint16_t)v >> 8), (unsigned char)v};
    pl_buf_put_u32(&a->buf, 2);
    pl_buf_put(&a->buf, x, 2);
    a->count++;
}

void pl_array_bytea(pl_array *a, const void *p, size_t n)
{
    if (!p) {
        array_null(a);
        return;
    }
    pl_buf_put_u32(&a->buf, (uint32_t)n);
    pl_buf_put(&a->buf, p, n);
    a->count++;
}

int pl_array_end(pl_array *a)
{
    if (a->buf.failed)
        return -1;
    char *p = a->buf.data + a->count_at;
    uint32_t v = a->count;
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
    return 0;
}

const char *pl_time_param(char buf[PL_TIME_BUFSIZE], pl_time t)
{
    if (t == PL_TIME_ANY)
        return NULL;
    pl_time_format(buf, PL_TIME_BUFSIZE, t);
    return buf;
}
