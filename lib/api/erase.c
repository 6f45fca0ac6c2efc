/* Legal erasure of one entity (pl_erase). One transaction: the seal lock
 * (no seal runs meanwhile, so the sealer never sees half an erasure), the
 * entity's head (no writer of it runs meanwhile), then its records are
 * read and each one's commitments computed here, with the entity's key,
 * exactly as a seal computes them; pl_erase_entity keeps those
 * commitments, removes the values and the key, and records the erasure,
 * which the next seal appends to the log. Every leaf, sealed before or
 * after, is therefore built from the same commitments and still verifies. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "cache.h"
#include "error.h"
#include "ledger.h"
#include "tlog.h"
#include "validate.h"
#include "wire.h"

static int erase_in(pl_db_session *s, int64_t *erased, const char *entity_id, const char *reason)
{
    PGresult *records = NULL, *done = NULL;
    unsigned char fresh[32];
    if (RAND_bytes(fresh, sizeof fresh) != 1)
        return pl_fail(PL_ENOMEM, "no random bytes for a commitment key");
    int rc = pl_db_session_run(s, PL_SQL_SEAL_LOCK, NULL, NULL, NULL);
    if (!rc) {
        const char *v[2] = {entity_id, (const char *)fresh};
        int len[2] = {(int)strlen(entity_id), 32};
        rc = pl_db_session_run(s, PL_SQL_ERASE_LOCK, v, len, NULL);
    }
    if (!rc) {
        const char *v[1] = {entity_id};
        int len[1] = {(int)strlen(entity_id)};
        rc = pl_db_session_run(s, PL_SQL_ERASE_READ, v, len, &records);
    }
    int n = rc ? 0 : PQntuples(records);
    if (!rc && n == 0)
        rc = pl_fail(PL_NOT_FOUND, "entity_id: %s has no records left to erase", entity_id);
    if (!rc && PQgetlength(records, 0, 11) != 32)
        rc = pl_fail(PL_EDB, "entity %s has no commitment key", entity_id);
    pl_array ids, cms;
    pl_array_begin(&ids, PL_OID_INT8);
    pl_array_begin(&cms, PL_OID_BYTEA);
    for (int i = 0; !rc && i < n; i++) {
        pl_leaf_record r;
        char *json[3];
        unsigned char cm[PL_COMMITMENTS_SIZE];
        if ((rc = pl_log_row_record(&r, json, records, i, 0)))
            break;
        rc = pl_leaf_commit(cm, (const unsigned char *)PQgetvalue(records, 0, 11), &r);
        pl_array_int8(&ids, r.id);
        pl_array_bytea(&cms, cm, sizeof cm);
        pl_log_json_free(json);
    }
    if (!rc && (pl_array_end(&ids) || pl_array_end(&cms)))
        rc = pl_fail(PL_ENOMEM, "out of memory");
    if (!rc) {
        const char *v[4] = {entity_id, reason, ids.buf.data, cms.buf.data};
        int len[4] = {(int)strlen(entity_id), reason ? (int)strlen(reason) : 0, (int)ids.buf.len,
                      (int)cms.buf.len};
        rc = pl_db_session_run(s, PL_SQL_ERASE_ENTITY, v, len, &done);
    }
    if (!rc)
        rc = pl_db_session_run(s, PL_SQL_TX_COMMIT, NULL, NULL, NULL);
    if (!rc && erased)
        *erased = strtoll(PQgetvalue(done, 0, 0), NULL, 10);
    pl_buf_free(&ids.buf);
    pl_buf_free(&cms.buf);
    PQclear(records);
    PQclear(done);
    return rc;
}

static int erase_call(int64_t *erased, pl_ledger *l, const char *entity_id, const char *reason)
{
    if (erased)
        *erased = 0;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    int rc = pl_check_text("entity_id", entity_id, PL_MAX_KEY_BYTES, 1);
    if (!rc && reason)
        rc = pl_check_text("reason", reason, PL_MAX_REASON_BYTES, 0);
    if (rc)
        return rc;
    /* Cached answers of the entity: intents first, as for any write, so
     * no fill of the old values lands after the erasure commits. */
    pl_cache_intent intent;
    int intent_started = 0;
    if (l->cache) {
        const char *ents[1] = {entity_id};
        if ((rc = pl_cache_intent_begin(l->cache, &intent, ents, 1)))
            return rc;
        intent_started = 1;
    }
    pl_db_session s;
    rc = pl_db_session_begin(&s, l->db, PL_CLASS_MAINTENANCE, PL_SQL_TX_SEAL);
    if (!rc) {
        rc = erase_in(&s, erased, entity_id, reason);
        pl_db_session_rollback_close(&s);
    }
    if (intent_started) {
        const char *ents[1] = {entity_id};
        pl_cache_intent_end(l->cache, &intent, ents, NULL, 1, rc ? PL_CACHE_FAILED : PL_CACHE_COMMITTED);
    }
    return rc;
}

int pl_erase(int64_t *erased, pl_ledger *l, const char *entity_id, const char *reason)
{
    PL_GUARD(l, erase_call(erased, l, entity_id, reason));
}
