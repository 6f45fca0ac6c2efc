/* Latency recording: log-linear buckets in nanoseconds, HDR-style. Values
 * below 64 ns have their own buckets; above, every power of two is split in
 * 64 sub-buckets, so a reported quantile is within ~1.6% of the truth. */
#include <string.h>

#include "bench.h"

void hist_reset(bench_hist *h)
{
    memset(h, 0, sizeof *h);
}

static int bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (int)v;
    int e = 63 - __builtin_clzll(v); /* >= 6 */
    if (e >= HIST_MAXEXP)
        return HIST_BUCKETS - 1;
    return (e - 5) * HIST_SUB + (int)(v >> (e - 6)) - HIST_SUB;
}

/* Midpoint of a bucket's range. */
static double bucket_mid(int i)
{
    if (i < HIST_SUB)
        return i;
    int e = i / HIST_SUB + 5;
    uint64_t m = (uint64_t)(i % HIST_SUB + HIST_SUB);
    double lo = (double)(m << (e - 6));
    double width = (double)(UINT64_C(1) << (e - 6));
    return lo + width / 2;
}

void hist_record(bench_hist *h, uint64_t ns)
{
    h->counts[bucket_of(ns)]++;
    h->n++;
    h->sum_ns += (double)ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void hist_merge(bench_hist *into, const bench_hist *from)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->n += from->n;
    into->sum_ns += from->sum_ns;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
}

double hist_ms(const bench_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) {
            double v = bucket_mid(i);
            if (v > (double)h->max_ns)
                v = (double)h->max_ns;
            return v / 1e6;
        }
    }
    return (double)h->max_ns / 1e6;
}

double hist_mean_ms(const bench_hist *h)
{
    return h->n ? h->sum_ns / (double)h->n / 1e6 : 0;
}
