/* The benchmark's phases, run in this order by main.c. Each prints its own
 * table and adds its rows and values to the report. */
#ifndef PL_BENCH_PHASES_H
#define PL_BENCH_PHASES_H

#include "bench.h"

/* Table and index sizes of the loaded dataset (reads.c). */
void phase_sizes(const bench_opts *o);
/* Pool-size sweep at the largest client count (reads.c, on request). */
void pool_phase(const bench_opts *o, const bench_dataset *ds);
/* The design record's mix, cache off and on, beside pgbench running the
 * same mix (reads.c). */
void mix_phase(const bench_opts *o, const bench_dataset *ds);
/* Each query type alone, uncached, beside pgbench running the library's
 * statement, and the primary-key baseline (reads.c). */
void point_phase(const bench_opts *o, const bench_dataset *ds);
/* The design record's own current-state queries on the ledger (reads.c). */
void baseline_phase(const bench_opts *o, const bench_dataset *ds);
/* Cache hits vs redis-benchmark, miss path vs PL_REALTIME (cachebench.c). */
void cache_phase(const bench_opts *o, const bench_dataset *ds);
/* Single and batch inserts, cache off and on (writes.c). */
void writes_phase(const bench_opts *o, const bench_dataset *ds);
/* One change to a hot entity, as the write runs make them (writes.c);
 * the strings live in *b. */
typedef struct change_buf {
    char eid[40];
    char val[48];
} change_buf;
void make_change(pl_change *c, change_buf *b, const bench_dataset *ds, uint64_t *rng);
/* One timed write run of writes.c (pl_insert when batch is 0, else
 * pl_insert_batch of `batch` changes; `fresh`: new entities instead of hot
 * ones); adds a row to `phase` and returns records/s (-1 on failure). */
double write_run(const bench_opts *o, const bench_dataset *ds, const char *phase,
                 const char *name, int clients, int cache, int batch, int fresh,
                 bench_hist *lat_out);
/* Batches and single inserts beside raw COPY and pgbench's INSERT into the
 * design record's table (ingest.c, issue 13). */
void ingest_phase(const bench_opts *o, const bench_dataset *ds);
/* Tamper evidence: the first seal, a full verification, proofs, and the
 * write runs again with a sealer following (tlog.c). */
void tlog_phase(const bench_opts *o, const bench_dataset *ds);
/* Every target of issues 3 and 4 and the design record (targets.c). */
void collect_targets(const bench_opts *o, const bench_dataset *ds);

#endif
