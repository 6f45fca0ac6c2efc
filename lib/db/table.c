/* Tables: immutable text answers built from PostgreSQL rows (see table.h). */
#include "table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The table text of one cell; writes it to out (when not NULL) and returns
 * its length, or (size_t)-1 for SQL NULL. Times are converted here. */
static size_t cell_text(char kind, const char *v, int is_null, char *out)
{
    if (is_null)
        return (size_t)-1;
    char buf[64];
    const char *s = v;
    if (kind == PL_COL_BOOL) {
        s = (v[0] == 't') ? "true" : "false";
    } else if (kind == PL_COL_TIME) {
        char *end;
        long long us = strtoll(v, &end, 10);
        if (end == v || *end != '\0' || pl_time_format(buf, sizeof buf, (pl_time)us) == 0)
            return (size_t)-1;
        s = buf;
    }
    size_t n = strlen(s);
    if (out)
        memcpy(out, s, n + 1);
    return n;
}

pl_table *pl_table_from_pg(const PGresult *res, const char *kinds, int skip_null_first)
{
    size_t cols = strlen(kinds);
    if ((int)cols > PQnfields(res) || cols == 0)
        return NULL;
    int nres = PQntuples(res);
    size_t rows = 0, bytes = cols + 1;
    for (size_t c = 0; c < cols; c++)
        bytes += strlen(PQfname(res, (int)c)) + 1;
    for (int r = 0; r < nres; r++) {
        if (skip_null_first && PQgetisnull(res, r, 0))
            continue;
        rows++;
        for (size_t c = 0; c < cols; c++) {
            size_t n = cell_text(kinds[c], PQgetvalue(res, r, (int)c), PQgetisnull(res, r, (int)c), NULL);
            if (n != (size_t)-1)
                bytes += n + 1;
        }
    }
    if (rows && cols > (SIZE_MAX / sizeof(char *) - 1) / rows)
        return NULL;
    size_t head = (sizeof(pl_table) + 15) & ~(size_t)15;
    size_t ptrs = (cols + rows * cols) * sizeof(char *);
    pl_table *t = calloc(1, head + ptrs + bytes);
    if (!t)
        return NULL;
    t->rows = rows;
    t->cols = cols;
    t->horizon = PL_TIME_ANY;
    t->names = (char **)((char *)t + head);
    t->cells = t->names + cols;
    char *str = (char *)t + head + ptrs;
    memcpy(str, kinds, cols + 1);
    t->kinds = str;
    str += cols + 1;
    for (size_t c = 0; c < cols; c++) {
        const char *name = PQfname(res, (int)c);
        size_t n = strlen(name);
        memcpy(str, name, n + 1);
        t->names[c] = str;
        str += n + 1;
    }
    size_t row = 0;
    for (int r = 0; r < nres; r++) {
        if (skip_null_first && PQgetisnull(res, r, 0))
            continue;
        for (size_t c = 0; c < cols; c++) {
            size_t n = cell_text(kinds[c], PQgetvalue(res, r, (int)c), PQgetisnull(res, r, (int)c), str);
            if (n == (size_t)-1)
                continue;
            t->cells[row * cols + c] = str;
            str += n + 1;
        }
        row++;
    }
    return t;
}

json_t *pl_table_json(const pl_table *t)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (size_t r = 0; r < t->rows; r++) {
        json_t *o = json_object();
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
        for (size_t c = 0; c < t->cols; c++) {
            const char *v = t->cells[r * t->cols + c];
            json_t *j;
            if (!v)
                j = json_null();
            else if (t->kinds[c] == PL_COL_INT)
                j = json_integer((json_int_t)strtoll(v, NULL, 10));
            else if (t->kinds[c] == PL_COL_REAL)
                j = json_real(strtod(v, NULL));
            else if (t->kinds[c] == PL_COL_BOOL)
                j = json_boolean(v[0] == 't');
            else
                j = json_string(v);
            if (!j || json_object_set_new(o, t->names[c], j) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
    }
    return arr;
}

int pl_db_table(pl_table **out, pl_db *db, int stmt, const char *const *values, const char *kinds)
{
    *out = NULL;
    PGresult *res;
    int rc = pl_db_run(db, stmt, values, NULL, 0, &res);
    if (rc)
        return rc;
    *out = pl_table_from_pg(res, kinds, 0);
    PQclear(res);
    return *out ? PL_OK : pl_fail(PL_ENOMEM, "out of memory reading the answer");
}

/* ------------------------------------------------------------------------ */
/* Public accessors                                                          */
/* ------------------------------------------------------------------------ */

size_t pl_table_rows(const pl_table *t)
{
    return t ? t->rows : 0;
}

size_t pl_table_cols(const pl_table *t)
{
    return t ? t->cols : 0;
}

const char *pl_table_colname(const pl_table *t, size_t col)
{
    return (t && col < t->cols) ? t->names[col] : NULL;
}

int pl_table_colindex(const pl_table *t, const char *name)
{
    if (!t || !name)
        return -1;
    for (size_t c = 0; c < t->cols; c++)
        if (strcmp(t->names[c], name) == 0)
            return (int)c;
    return -1;
}

const char *pl_table_value(const pl_table *t, size_t row, size_t col)
{
    if (!t || row >= t->rows || col >= t->cols)
        return NULL;
    return t->cells[row * t->cols + col];
}

int64_t pl_table_int64(const pl_table *t, size_t row, size_t col)
{
    const char *v = pl_table_value(t, row, col);
    if (!v)
        return 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end == v)
        return 0;
    if (*end == '.') { /* a decimal: its integer part */
        const char *p = end + 1;
        while (*p >= '0' && *p <= '9')
            p++;
        end = (char *)p;
    }
    return *end == '\0' ? (int64_t)n : 0;
}

void pl_table_free(pl_table *t)
{
    free(t);
}

int pl_table_origin(const pl_table *t)
{
    return t ? t->origin : PL_ORIGIN_PRIMARY;
}

int64_t pl_table_staleness_us(const pl_table *t)
{
    return t ? t->staleness_us : 0;
}

pl_time pl_table_horizon(const pl_table *t)
{
    return t ? t->horizon : PL_TIME_ANY;
}

void pl_free(void *p)
{
    free(p);
}
