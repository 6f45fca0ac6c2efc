/* Latency histograms (see metrics.h). */
#include "metrics.h"

#include <string.h>

static const char *op_name(int op)
{
    if (op == PL_OP_CACHE_HIT)
        return "cache_hit";
    if (op == PL_OP_MIGRATION)
        return "migration";
    return pl_sql_registry[op].name;
}

void pl_metrics_init(pl_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void pl_metrics_destroy(pl_metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

static int bucket_of(uint64_t us)
{
    int b = 0;
    while (b < PL_METRIC_BUCKETS - 1 && us >= ((uint64_t)16 << b))
        b++;
    return b;
}

void pl_metrics_record(pl_metrics *m, int op, uint64_t us, int failed)
{
    if (op < 0 || op >= PL_OP_COUNT)
        return;
    pthread_mutex_lock(&m->mu);
    m->count[op]++;
    m->errors[op] += failed != 0;
    m->total_us[op] += us;
    if (us > m->max_us[op])
        m->max_us[op] = us;
    m->buckets[op][bucket_of(us)]++;
    pthread_mutex_unlock(&m->mu);
}

/* Upper bound of the bucket holding quantile q, in ms. */
static double quantile_ms(const uint64_t *buckets, uint64_t count, double q)
{
    uint64_t want = (uint64_t)((double)count * q + 0.5), seen = 0;
    for (int b = 0; b < PL_METRIC_BUCKETS; b++) {
        seen += buckets[b];
        if (seen >= want && seen > 0)
            return (double)((uint64_t)16 << b) / 1000.0;
    }
    return 0.0;
}

json_t *pl_metrics_json(pl_metrics *m)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    pthread_mutex_lock(&m->mu);
    for (int op = 0; op < PL_OP_COUNT; op++) {
        if (!m->count[op])
            continue;
        json_t *hist = json_array();
        for (int b = 0; b < PL_METRIC_BUCKETS; b++)
            if (m->buckets[op][b])
                json_array_append_new(hist, json_pack("{s:I,s:I}", "le_us", (json_int_t)16 << b,
                                                      "count", (json_int_t)m->buckets[op][b]));
        json_t *o = json_pack("{s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:o}", "count", (json_int_t)m->count[op],
                              "errors", (json_int_t)m->errors[op], "mean_ms",
                              (double)m->total_us[op] / (double)m->count[op] / 1000.0, "max_ms",
                              (double)m->max_us[op] / 1000.0, "p50_ms",
                              quantile_ms(m->buckets[op], m->count[op], 0.50), "p95_ms",
                              quantile_ms(m->buckets[op], m->count[op], 0.95), "p99_ms",
                              quantile_ms(m->buckets[op], m->count[op], 0.99), "histogram", hist);
        if (o)
            json_object_set_new(root, op_name(op), o);
    }
    pthread_mutex_unlock(&m->mu);
    return root;
}
