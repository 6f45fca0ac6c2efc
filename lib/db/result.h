/* Immutable query results: built from PostgreSQL rows or cached bytes,
 * each in one allocation so a result frees with one call. */
#ifndef PL_RESULT_H
#define PL_RESULT_H

#include <libpq-fe.h>

#include "provledger.h"
#include "wire.h"

/* Columns every record query returns first, in this order. */
#define PL_RECORD_COLUMNS                                                    \
    "id, entity_id, field_name, new_value, old_value, transaction_time, "   \
    "valid_time_start, valid_time_end, source_type, change_reason, metadata, erased_at"
#define PL_RECORD_NCOLS 12

struct pl_result {
    size_t count;
    int origin;            /* enum pl_origin */
    int64_t staleness_us;
    pl_record *records;    /* points into the same allocation */
};

/* Builds a result from binary-format rows [first_row, PQntuples) whose
 * first PL_RECORD_NCOLS columns are PL_RECORD_COLUMNS; rows whose id is NULL
 * are skipped (outer-join placeholders). Returns NULL when out of memory
 * or when the rows are malformed (the caller reports which). */
pl_result *pl_result_from_pg(const PGresult *res, int first_row);

/* An empty result. */
pl_result *pl_result_empty(void);

/* Cache encoding: a result plus the instant until which it holds
 * (PL_TIME_INFINITY when no time boundary applies). */
int pl_result_encode(pl_buf *out, const pl_result *r, pl_time valid_until);
/* Decodes bytes from pl_result_encode; returns NULL for malformed input or
 * out of memory. */
pl_result *pl_result_decode(const char *p, size_t n, pl_time *valid_until);

#endif
