/* The ledger handle's insides, shared by the API files. */
#ifndef PL_LEDGER_H
#define PL_LEDGER_H

#include <pthread.h>
#include <stdatomic.h>

#include "clock.h"
#include "exec.h"
#include "provledger.h"

typedef struct pl_cache pl_cache;

struct pl_ledger {
    pl_config cfg;              /* strings below are owned copies */
    pl_db *db;                  /* PostgreSQL: pools, statements, metrics */
    pl_cache *cache;            /* NULL without redis_url */
    atomic_uint_fast64_t inserts;
    atomic_uint_fast64_t replica_reads;
    atomic_uint_fast64_t replica_fallbacks;
    atomic_uint_fast64_t write_retries; /* cfg.keyed_write_retries: attempts made again */
    atomic_uint_fast64_t replica_retry_at_us; /* monotonic: replica down until */
    pthread_mutex_t lag_mu;
    int64_t replica_lag_us;     /* last measured replay lag */
    uint64_t replica_lag_at_us; /* monotonic time of that measurement */
    /* Paging cursors' MAC key (page.c), derived from the ledger's secret
     * when a page call first needs it. */
    pthread_mutex_t page_mu;
    int page_key_ok;
    unsigned char page_key[32];
    /* Lifetime: the handle is one reference and every open iterator one
     * more; `active` counts public calls running now, which pl_close()
     * waits for after setting `closing`. */
    atomic_int refs;
    atomic_int active;
    atomic_int closing;
    pthread_mutex_t life_mu;
    pthread_cond_t life_cv;
};

/* A reference that keeps the pool alive past pl_close() (iterators). */
void pl_ledger_ref(pl_ledger *l);
void pl_ledger_unref(pl_ledger *l);

/* Brackets a public call: PL_EINVAL when pl_close() runs (nothing was
 * touched); pl_ledger_leave() must follow a successful enter. NULL passes. */
int pl_ledger_enter(pl_ledger *l);
void pl_ledger_leave(pl_ledger *l);

/* A public call body bracketed by pl_ledger_enter/leave. */
#define PL_GUARD(l, call)                  \
    do {                                   \
        int guard_rc_ = pl_ledger_enter(l); \
        if (guard_rc_)                     \
            return guard_rc_;              \
        guard_rc_ = (call);                \
        pl_ledger_leave(l);                \
        return guard_rc_;                  \
    } while (0)


#endif
