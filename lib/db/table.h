/* Tables: the small text answers of operations, analytics and monitoring
 * (pl_table of the public header), built from PostgreSQL rows. */
#ifndef PL_TABLE_H
#define PL_TABLE_H

#include <jansson.h>
#include <libpq-fe.h>

#include "exec.h"
#include "provledger.h"

/* Column kinds, one letter per column: how a text cell from PostgreSQL
 * becomes table text and JSON. */
enum {
    PL_COL_TEXT = 's', /* text as is */
    PL_COL_INT = 'i',  /* decimal integer */
    PL_COL_REAL = 'r', /* decimal number */
    PL_COL_BOOL = 'b', /* "t"/"f" -> "true"/"false" */
    PL_COL_TIME = 't'  /* int8 microseconds since 1970 -> RFC 3339 UTC */
};

struct pl_table {
    size_t rows, cols;
    int origin;           /* enum pl_origin */
    int64_t staleness_us;
    pl_time horizon;      /* pl_table_horizon() */
    const char *kinds;    /* cols letters, in the same allocation */
    char **names;         /* cols */
    char **cells;         /* rows * cols, NULL for SQL NULL */
};

/* Builds a table from a text-format result: one column per letter of
 * kinds (further result columns are ignored), named as in the result.
 * With skip_null_first, rows whose first column is NULL are left out.
 * Returns NULL when out of memory or when kinds names more columns than
 * the result has. */
pl_table *pl_table_from_pg(const PGresult *res, const char *kinds, int skip_null_first);

/* The table as a JSON array of objects keyed by column name, typed by
 * kind; NULL when out of memory. */
json_t *pl_table_json(const pl_table *t);

/* Runs registry statement stmt (text parameters, text results) and builds
 * its answer as a table of those kinds. */
int pl_db_table(pl_table **out, pl_db *db, int stmt, const char *const *values, const char *kinds);

#endif
