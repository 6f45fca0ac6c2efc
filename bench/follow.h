/* A maintenance step run in the background on a ledger handle of its own
 * every interval_ms, as `provledger seal --follow` and `provledger rollup
 * --follow` run theirs, while a write run measures what it costs. */
#ifndef PL_BENCH_FOLLOW_H
#define PL_BENCH_FOLLOW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bench.h"

/* One step on l; adds what it did (records sealed, rolled up) to *done. */
typedef int (*follow_step_fn)(void *arg, pl_ledger *l, int64_t *done);

typedef struct follower {
    pl_ledger *l;
    follow_step_fn step;
    void *arg;
    int interval_ms;
    atomic_int stop;
    bench_hist hist; /* duration of each step */
    int64_t done;
    uint64_t steps, errors;
    char first_error[256];
    pthread_t th;
} follower;

/* Opens the follower's handle, runs step until it does nothing (the run
 * measures following, not a backlog), then starts the thread. Returns 0,
 * or -1 with a note in the report. */
int follower_start(follower *f, const bench_opts *o, const char *what, follow_step_fn step, void *arg,
                   int interval_ms);
/* Stops the thread and closes the handle; notes any failed steps. */
void follower_stop(follower *f, const char *what);

/* Write runs alternated without and with the follower, `rounds` times;
 * reports, in `phase`, the median records/s of each as VALUE_KEY_records_per_s_no_WHAT
 * and VALUE_KEY_records_per_s_WHAT, their loss (1 - with / without) as
 * VALUE_KEY_loss, and what the follower did as VALUE_KEY_done_while_following. */
void follow_ab_writes(const bench_opts *o, const bench_dataset *ds, const char *phase, const char *what,
                      follow_step_fn step, void *arg, int interval_ms, const char *run_name,
                      const char *value_key, int clients, int batch, int rounds);

#endif
