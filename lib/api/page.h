/* Keyset queries over an entity's history and ranges (page.c): what the
 * pages (pl_history_page, pl_range_page) and the iterators
 * (pl_history_open, pl_range_open, in iter.c) share. */
#ifndef PL_PAGE_H
#define PL_PAGE_H

#include <stdint.h>

#include "provledger.h"

/* One history or range question, checked. */
typedef struct pl_page_query {
    int range;          /* 1: a range call (its window is part of the query) */
    const char *entity; /* borrowed from the caller */
    const char *field;  /* NULL: every field */
    pl_time from, to;   /* as given; PL_TIME_ANY both for history */
    int newest_first;
    int stmt;           /* PL_SQL_PAGE_{FIELD,ALL}_{ASC,DESC} */
    int settle;         /* an explicit end: wait for writers in flight first */
} pl_page_query;

/* Checks the arguments (entity, field, window, flags) and fills q;
 * PL_EINVAL naming the bad one. */
int pl_page_query_init(pl_page_query *q, int range, const char *entity, const char *field,
                       pl_time from, pl_time to, unsigned flags);

/* The text parameters of q's statement. */
typedef struct pl_page_params {
    const char *values[7];
    char from[PL_TIME_BUFSIZE], to[PL_TIME_BUFSIZE], at[PL_TIME_BUFSIZE];
    char id[24], limit[24];
} pl_page_params;

/* Fills p for the rows after position (tt, id) in q's order (before the
 * first row when !has_pos), at most `limit` of them (0: all). p must stay
 * in place while its values are used. */
void pl_page_params_fill(pl_page_params *p, const pl_page_query *q, int has_pos, pl_time tt,
                         int64_t id, size_t limit);

/* When q.settle: waits for the writers of q's entity still in flight
 * (PL_SQL_SETTLE), so that what runs next sees them. */
int pl_page_settle(pl_ledger *l, const pl_page_query *q);

#endif
