/* PostgreSQL binary wire formats: parameters we send and columns we read.
 * Binary avoids any text escaping of user data and keeps timestamps exact. */
#ifndef PL_WIRE_H
#define PL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "provledger.h"

/* Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01. */
#define PL_PG_EPOCH_US INT64_C(946684800000000)

/* Type OIDs we send or receive. */
#define PL_OID_BYTEA 17
#define PL_OID_INT8 20
#define PL_OID_INT2 21
#define PL_OID_TEXT 25
#define PL_OID_JSONB 3802
#define PL_OID_TIMESTAMPTZ 1184

/* A growable byte buffer; on allocation failure `failed` sticks and every
 * later append is a no-op, so callers check once at the end. */
typedef struct pl_buf {
    char *data;
    size_t len, cap;
    int failed;
} pl_buf;

void pl_buf_free(pl_buf *b);
void pl_buf_put(pl_buf *b, const void *p, size_t n);
void pl_buf_put_u32(pl_buf *b, uint32_t v);
void pl_buf_put_i64(pl_buf *b, int64_t v);

uint32_t pl_get_u32(const char *p);
int64_t pl_get_i64(const char *p);

/* pl_time <-> binary timestamptz (8 bytes, big endian, us since 2000);
 * PL_TIME_INFINITY and -infinity map to PostgreSQL's infinities. */
void pl_wire_put_time(char out[8], pl_time t);
pl_time pl_wire_get_time(const char *p);

/* One-dimensional binary arrays, built element by element. */
typedef struct pl_array {
    pl_buf buf;
    size_t count_at; /* offset of the dimension length, patched at the end */
    uint32_t count;
} pl_array;

void pl_array_begin(pl_array *a, uint32_t elem_oid);
void pl_array_text(pl_array *a, const char *s);  /* NULL -> SQL NULL */
void pl_array_jsonb(pl_array *a, const char *s); /* NULL -> SQL NULL */
void pl_array_time(pl_array *a, pl_time t);      /* PL_TIME_NOW -> NULL */
void pl_array_int8(pl_array *a, int64_t v);
void pl_array_int2(pl_array *a, int16_t v);
void pl_array_bytea(pl_array *a, const void *p, size_t n); /* NULL -> SQL NULL */
/* Finishes the array; returns 0, or -1 when memory ran out. */
int pl_array_end(pl_array *a);

/* A time as a text parameter: NULL for PL_TIME_ANY, "now" for
 * PL_TIME_NOW, else RFC 3339 in buf. */
const char *pl_time_param(char buf[PL_TIME_BUFSIZE], pl_time t);

#endif
