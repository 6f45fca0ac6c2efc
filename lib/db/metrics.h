/* Client-side latency histograms per kind of operation, for pl_health. */
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "schema.h"

/* Operations measured: every registry statement (enum pl_sql_id), plus
 * these. */
enum {
    PL_OP_CACHE_HIT = PL_SQL_COUNT, /* an answer served by Redis */
    PL_OP_MIGRATION,                /* one migration script */
    PL_OP_COUNT
};

/* Bucket i counts latencies below 2^(i+4) us (16 us .. ~67 s). */
#define PL_METRIC_BUCKETS 22

typedef struct pl_metrics {
    pthread_mutex_t mu;
    uint64_t count[PL_OP_COUNT];
    uint64_t errors[PL_OP_COUNT];
    uint64_t total_us[PL_OP_COUNT];
    uint64_t max_us[PL_OP_COUNT];
    uint64_t buckets[PL_OP_COUNT][PL_METRIC_BUCKETS];
} pl_metrics;

void pl_metrics_init(pl_metrics *m);
void pl_metrics_destroy(pl_metrics *m);
void pl_metrics_record(pl_metrics *m, int op, uint64_t us, int failed);
/* {"<op name>": {"count", "errors", "mean_ms", "max_ms", "p50_ms", "p95_ms",
 *  "p99_ms", "histogram": [{"le_us", "count"}...]}, ...}; NULL on ENOMEM. */
json_t *pl_metrics_json(pl_metrics *m);

#endif
