/* Writes: pl_insert, pl_insert_batch, pl_import_batch. Validate everything,
 * append in one server-side call (one transaction), then invalidate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "clock.h"
#include "error.h"
#include "ledger.h"
#include "validate.h"
#include "wire.h"

enum { COL_ENTITY, COL_FIELD, COL_NEW, COL_OLD, COL_VFROM, COL_VTO, COL_SOURCE, COL_REASON,
       COL_META, COL_KEY, COL_TT, NCOLS };

static int key_cmp(const void *a, const void *b)
{
    const pl_change *x = *(const pl_change *const *)a, *y = *(const pl_change *const *)b;
    return strcmp(x->idempotency_key, y->idempotency_key);
}

/* A key twice in one batch would make the batch disagree with itself. */
static int check_keys_unique(const pl_change *changes, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += changes[i].idempotency_key != NULL;
    if (k < 2)
        return PL_OK;
    const pl_change **v = malloc(k * sizeof *v); /* NOLINT(bugprone-sizeof-expression): pointers */
    if (!v)
        return pl_fail(PL_ENOMEM, "out of memory");
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (changes[i].idempotency_key)
            v[k++] = &changes[i];
    qsort(v, k, sizeof *v, key_cmp); /* NOLINT(bugprone-sizeof-expression): pointers */
    int rc = PL_OK;
    for (size_t i = 1; i < k && !rc; i++)
        if (strcmp(v[i - 1]->idempotency_key, v[i]->idempotency_key) == 0)
            rc = pl_fail(PL_EINVAL, "changes[%ld].idempotency_key: repeats changes[%ld]'s in one batch",
                         (long)(v[i] - changes), (long)(v[i - 1] - changes));
    free(v);
    return rc;
}

static int validate_all(const pl_change *changes, const pl_time *tts, size_t n, int batch)
{
    for (size_t i = 0; i < n; i++) {
        int rc = pl_check_change(&changes[i], batch ? (long)i : -1);
        if (rc)
            return rc;
        if (tts && (tts[i] < PL_TIME_MIN || tts[i] > PL_TIME_MAX))
            return pl_fail(PL_EINVAL, "transaction_times[%zu]: must be an instant in 0001..9999", i);
    }
    return check_keys_unique(changes, n);
}

static void encode(pl_array cols[NCOLS], const pl_change *changes, const pl_time *tts, size_t n)
{
    static const unsigned oids[NCOLS] = {PL_OID_TEXT, PL_OID_TEXT, PL_OID_JSONB, PL_OID_JSONB,
                                         PL_OID_TIMESTAMPTZ, PL_OID_TIMESTAMPTZ, PL_OID_TEXT,
                                         PL_OID_TEXT, PL_OID_JSONB, PL_OID_TEXT, PL_OID_TIMESTAMPTZ};
    for (int k = 0; k < NCOLS; k++)
        pl_array_begin(&cols[k], oids[k]);
    for (size_t i = 0; i < n; i++) {
        const pl_change *c = &changes[i];
        pl_array_text(&cols[COL_ENTITY], c->entity_id);
        pl_array_text(&cols[COL_FIELD], c->field_name);
        pl_array_jsonb(&cols[COL_NEW], c->new_value);
        pl_array_jsonb(&cols[COL_OLD], c->old_value);
        pl_array_time(&cols[COL_VFROM], c->valid_from);
        pl_array_time(&cols[COL_VTO], c->valid_to);
        pl_array_text(&cols[COL_SOURCE], c->source_type);
        pl_array_text(&cols[COL_REASON], c->change_reason);
        pl_array_jsonb(&cols[COL_META], c->metadata);
        pl_array_text(&cols[COL_KEY], c->idempotency_key);
        if (tts)
            pl_array_time(&cols[COL_TT], tts[i]);
    }
}

/* Reads the receipts into out (may be NULL) and the transaction times into
 * written (may be NULL), both in change order. */
static int read_receipts(PGresult *r, pl_receipt *out, size_t n, size_t *appended, pl_time *written)
{
    *appended = 0;
    if (PQntuples(r) != (int)n || PQnfields(r) != 5)
        return pl_fail(PL_EDB, "append returned %d receipts for %zu changes", PQntuples(r), n);
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetlength(r, i, 0) != 8 || PQgetlength(r, i, 1) != 8 || PQgetlength(r, i, 2) != 8)
            return pl_fail(PL_EDB, "append returned a malformed receipt");
        int64_t ord = pl_get_i64(PQgetvalue(r, i, 0));
        if (ord < 1 || (uint64_t)ord > n)
            return pl_fail(PL_EDB, "append returned receipt %lld of %zu", (long long)ord, n);
        if (out) {
            out[ord - 1].id = pl_get_i64(PQgetvalue(r, i, 1));
            out[ord - 1].transaction_time = pl_wire_get_time(PQgetvalue(r, i, 2));
        }
        if (written)
            written[ord - 1] = pl_wire_get_time(PQgetvalue(r, i, 2));
        /* A keyed retry returns the original receipt without appending. */
        if (PQgetlength(r, i, 4) == 1 && PQgetvalue(r, i, 4)[0])
            (*appended)++;
    }
    return PL_OK;
}

/* cfg.keyed_write_retries: one budget of attempts made again, pausing
 * 50 ms, doubling up to 1 s, within cfg.keyed_write_retry_ms, shared by
 * the cache's setup of the write and the append itself. */
typedef struct keyed_retry {
    uint64_t start, pause;
    unsigned made;
} keyed_retry;

/* Pauses before one more attempt; 0 when the budget is spent. The
 * budget starts at the first failure. */
static int retry_again(pl_ledger *l, keyed_retry *kr)
{
    uint64_t budget = (uint64_t)l->cfg.keyed_write_retry_ms * 1000u;
    if (!kr->start)
        kr->start = pl_mono_us();
    uint64_t spent = pl_mono_us() - kr->start;
    if (kr->made >= l->cfg.keyed_write_retries || spent >= budget)
        return 0;
    pl_sleep_us((int64_t)(kr->pause < budget - spent ? kr->pause : budget - spent));
    if (kr->pause < 1000000)
        kr->pause *= 2;
    if (pl_mono_us() - kr->start >= budget)
        return 0;
    kr->made++;
    atomic_fetch_add(&l->write_retries, 1);
    return 1;
}

/* The append again, every change keyed, after an attempt failed with rc
 * (PL_ECONNECT or PL_EUNKNOWN); the last answer. A retry after
 * PL_EUNKNOWN may find the first attempt committed: the keys turn that
 * into receipts marked duplicate, never a second record. */
static int retry_keyed(pl_ledger *l, keyed_retry *kr, const char *const *values, const int *lengths,
                       PGresult **r, int rc)
{
    while ((rc == PL_ECONNECT || rc == PL_EUNKNOWN) && retry_again(l, kr)) {
        PQclear(*r);
        *r = NULL;
        int again = pl_db_run(l->db, PL_SQL_APPEND, values, lengths, PL_RUN_IDEMPOTENT, r);
        /* An unknown outcome stays the answer when a later attempt only
         * failed to connect: the first may have committed. */
        rc = again == PL_ECONNECT && rc == PL_EUNKNOWN ? PL_EUNKNOWN : again;
    }
    return rc;
}

static int append(pl_receipt *out, pl_ledger *l, const pl_change *changes, const pl_time *tts,
                  size_t n, int batch)
{
    int rc = validate_all(changes, tts, n, batch);
    if (rc)
        return rc;
    pl_array cols[NCOLS];
    encode(cols, changes, tts, n);
    const char *values[NCOLS];
    int lengths[NCOLS];
    for (int k = 0; k < NCOLS; k++) {
        if (pl_array_end(&cols[k]) < 0 || cols[k].buf.len > INT32_MAX) {
            for (int j = 0; j < NCOLS; j++)
                pl_buf_free(&cols[j].buf);
            return pl_fail(PL_ENOMEM, "batch too large to encode");
        }
        values[k] = cols[k].buf.data;
        lengths[k] = (int)cols[k].buf.len;
    }
    if (!tts)
        values[COL_TT] = NULL;
    int all_keyed = 1;
    for (size_t i = 0; i < n && all_keyed; i++)
        all_keyed = changes[i].idempotency_key != NULL;
    keyed_retry kr = {0, 50000, 0};

    /* The entities written, for the cache's intents, announced before
     * anything can commit (cache.c) and before a connection is held: the
     * cache may need one of its own. */
    const char **ids = NULL;
    pl_time *written = NULL;
    pl_cache_intent intent;
    int intent_started = 0;
    if (l->cache) {
        ids = malloc(n * sizeof *ids);
        written = malloc(n * sizeof *written);
        if (!ids || !written) {
            rc = pl_fail(PL_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            ids[i] = changes[i].entity_id;
        /* Nothing was sent when this fails: a keyed write may try again
         * (PostgreSQL unreachable while Redis is too, during a failover). */
        rc = pl_cache_intent_begin(l->cache, &intent, ids, n);
        while (all_keyed && (rc == PL_ECONNECT || rc == PL_ETIMEOUT) && retry_again(l, &kr))
            rc = pl_cache_intent_begin(l->cache, &intent, ids, n);
        if (rc)
            goto done;
        intent_started = 1;
    }

    /* Safe to run twice when the connection breaks after sending: every
     * change carries an idempotency key (db/exec.c has the other rules). */
    PGresult *r = NULL;
    rc = pl_db_run(l->db, PL_SQL_APPEND, values, lengths, all_keyed ? PL_RUN_IDEMPOTENT : 0, &r);
    if (all_keyed && (rc == PL_ECONNECT || rc == PL_EUNKNOWN))
        rc = retry_keyed(l, &kr, values, lengths, &r, rc);
    size_t appended = 0;
    int outcome = rc == PL_OK ? PL_CACHE_COMMITTED : rc == PL_EUNKNOWN ? PL_CACHE_UNKNOWN
                                                                      : PL_CACHE_FAILED;
    if (rc == PL_OK) {
        rc = read_receipts(r, out, n, &appended, written);
        atomic_fetch_add(&l->inserts, appended);
    }
    PQclear(r);
    if (intent_started)
        pl_cache_intent_end(l->cache, &intent, ids,
                            outcome == PL_CACHE_COMMITTED && rc == PL_OK ? written : NULL, n, outcome);
done:
    for (int k = 0; k < NCOLS; k++)
        pl_buf_free(&cols[k].buf);
    free(ids);
    free(written);
    return rc;
}

/* The array arguments of a batch (n == 0 is checked by the callers). */
static int batch_args(const pl_change *changes, size_t n)
{
    if (!changes)
        return pl_fail(PL_EINVAL, "changes: NULL");
    if (n > PL_MAX_BATCH)
        return pl_fail(PL_EINVAL, "n: %zu is more than PL_MAX_BATCH (%d)", n, PL_MAX_BATCH);
    return PL_OK;
}

int pl_validate_changes(const pl_change *changes, size_t n)
{
    if (n == 0)
        return PL_OK;
    int rc = batch_args(changes, n);
    return rc ? rc : validate_all(changes, NULL, n, 1);
}

static int insert_call(pl_receipt *out, pl_ledger *l, const pl_change *c)
{
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    if (!c)
        return pl_fail(PL_EINVAL, "change: NULL");
    return append(out, l, c, NULL, 1, 0);
}

int pl_insert(pl_receipt *out, pl_ledger *l, const pl_change *c)
{
    PL_GUARD(l, insert_call(out, l, c));
}

static int insert_batch_call(pl_receipt *out, pl_ledger *l, const pl_change *changes, size_t n)
{
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    if (n == 0)
        return PL_OK;
    int rc = batch_args(changes, n);
    return rc ? rc : append(out, l, changes, NULL, n, 1);
}

int pl_insert_batch(pl_receipt *out, pl_ledger *l, const pl_change *changes, size_t n)
{
    PL_GUARD(l, insert_batch_call(out, l, changes, n));
}

static int import_batch_call(pl_receipt *out, pl_ledger *l, const pl_change *changes,
                             const pl_time *transaction_times, size_t n)
{
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    if (!l->cfg.allow_import)
        return pl_fail(PL_EPERM, "pl_import_batch: the ledger was not opened with cfg.allow_import");
    if (n == 0)
        return PL_OK;
    if (!changes || !transaction_times)
        return pl_fail(PL_EINVAL, "changes or transaction_times: NULL");
    if (n > PL_MAX_BATCH)
        return pl_fail(PL_EINVAL, "n: %zu is more than PL_MAX_BATCH (%d)", n, PL_MAX_BATCH);
    return append(out, l, changes, transaction_times, n, 1);
}

int pl_import_batch(pl_receipt *out, pl_ledger *l, const pl_change *changes,
                    const pl_time *transaction_times, size_t n)
{
    PL_GUARD(l, import_batch_call(out, l, changes, transaction_times, n));
}
