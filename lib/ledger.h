/* The ledger handle's insides, shared by the API files. */
#ifndef PL_LEDGER_H
#define PL_LEDGER_H

#include <pthread.h>
#include <stdatomic.h>

#include "metrics.h"
#include "pool.h"
#include "provledger.h"
#include "schema.h"

typedef struct pl_cache pl_cache;

struct pl_ledger {
    pl_config cfg;              /* strings below are owned copies */
    char *sql[PL_STMT_COUNT];   /* statement texts for this schema */
    pl_pool *pool;
    pl_pool *replica;           /* NULL without replica_conninfo */
    pl_cache *cache;            /* NULL without redis_url */
    atomic_uint_fast64_t inserts;
    atomic_uint_fast64_t replica_reads;
    pl_metrics metrics;         /* latency per statement, for pl_health */
    pthread_mutex_t lag_mu;
    int64_t replica_lag_us;     /* last measured replay lag */
    uint64_t replica_lag_at_us; /* monotonic time of that measurement */
};

/* Monotonic microseconds. */
uint64_t pl_mono_us(void);

/* Runs a read statement on the primary (or the replica when `replica`),
 * retrying once on a fresh connection when the pooled one turned out to be
 * dead: reads are idempotent. */
int pl_read(pl_ledger *l, int replica, int stmt, const char *const *values, const int *lengths,
            PGresult **out);

#endif
