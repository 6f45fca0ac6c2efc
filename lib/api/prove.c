/* Inclusion and consistency proofs served from the stored log. The
 * database keeps leaf hashes and the interior hashes at levels 4, 8, 12,
 * ... (with the leaf that completes each); a proof needs O(log n) of
 * them. Proofs are built in two passes over the same code: the first
 * records which stored hashes it asks for, one query fetches them all,
 * the second builds the proof from them. The tree's root at the proved
 * size is rebuilt from the same hashes and must equal the checkpoint's. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ledger.h"
#include "merkle.h"
#include "tlog.h"
#include "wire.h"

/* Stored hashes a proof reads: (level, index) pairs and their values. */
typedef struct hash_set {
    struct {
        int level;
        int64_t index;
        pl_hash hash;
        int found;
    } *items;
    size_t count, cap;
    int recording; /* pass 1: note what is asked */
    int missing;
} hash_set;

static int hs_find(const hash_set *hs, int level, int64_t index)
{
    for (size_t i = 0; i < hs->count; i++)
        if (hs->items[i].level == level && hs->items[i].index == index)
            return (int)i;
    return -1;
}

static int hs_get(void *ctx, int level, int64_t index, pl_hash out)
{
    hash_set *hs = ctx;
    int at = hs_find(hs, level, index);
    if (hs->recording) {
        memset(out, 0, 32);
        if (at >= 0)
            return 0;
        if (hs->count == hs->cap) {
            size_t cap = hs->cap ? hs->cap * 2 : 64;
            void *p = realloc(hs->items, cap * sizeof *hs->items);
            if (!p)
                return -1;
            hs->items = p;
            hs->cap = cap;
        }
        hs->items[hs->count].level = level;
        hs->items[hs->count].index = index;
        hs->items[hs->count].found = 0;
        hs->count++;
        return 0;
    }
    if (at < 0 || !hs->items[at].found) {
        hs->missing = 1;
        return -1;
    }
    memcpy(out, hs->items[at].hash, 32);
    return 0;
}

/* The leaf that holds stored hash (level, index): the last one it covers. */
static int64_t holder(int level, int64_t index)
{
    return ((index + 1) << level) - 1;
}

/* Fetches every recorded hash in one statement. */
static int hs_fetch(hash_set *hs, pl_ledger *l)
{
    pl_array ids;
    pl_array_begin(&ids, PL_OID_INT8);
    for (size_t i = 0; i < hs->count; i++)
        pl_array_int8(&ids, holder(hs->items[i].level, hs->items[i].index));
    if (pl_array_end(&ids)) {
        pl_buf_free(&ids.buf);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    const char *v[1] = {ids.buf.data};
    int len[1] = {(int)ids.buf.len};
    PGresult *res = NULL;
    int rc = pl_db_run(l->db, PL_SQL_PROVE_HASHES, v, len, 0, &res);
    pl_buf_free(&ids.buf);
    for (int r = 0; !rc && r < PQntuples(res); r++) {
        if (PQgetlength(res, r, 0) != 8 || PQgetlength(res, r, 1) != 32)
            continue;
        int64_t leaf = pl_get_i64(PQgetvalue(res, r, 0));
        const unsigned char *nodes = (const unsigned char *)PQgetvalue(res, r, 2);
        size_t nlen = PQgetisnull(res, r, 2) ? 0 : (size_t)PQgetlength(res, r, 2);
        for (size_t i = 0; i < hs->count; i++) {
            if (holder(hs->items[i].level, hs->items[i].index) != leaf)
                continue;
            if (hs->items[i].level == 0) {
                memcpy(hs->items[i].hash, PQgetvalue(res, r, 1), 32);
                hs->items[i].found = 1;
                continue;
            }
            for (size_t k = 0; k + 33 <= nlen; k += 33) {
                if (nodes[k] == hs->items[i].level) {
                    memcpy(hs->items[i].hash, nodes + k + 1, 32);
                    hs->items[i].found = 1;
                }
            }
        }
    }
    PQclear(res);
    return rc;
}

static pl_proof *proof_alloc(size_t count)
{
    pl_proof *p = calloc(1, sizeof *p + count * 32);
    if (p && count)
        p->hashes = (const unsigned char *)(p + 1);
    return p;
}

void pl_proof_free(pl_proof *p)
{
    free(p);
}

/* Checks a proof call's arguments and finds the tree to prove against:
 * the given checkpoint or the latest (*latest, freed by the caller). */
static int prove_begin(pl_proof **out, pl_ledger *l, const pl_checkpoint **cp, pl_checkpoint **latest)
{
    *latest = NULL;
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    if (*cp)
        return PL_OK;
    int rc = pl_log_latest(latest, l);
    *cp = *latest;
    return rc == PL_NOT_FOUND ? pl_fail(PL_NOT_FOUND, "nothing is sealed yet") : rc;
}

/* Builds the proof (inclusion when index >= 0, else consistency from m)
 * and the root at cp's size, in two passes. */
static int build(pl_proof **out, pl_ledger *l, const pl_checkpoint *cp, int64_t index, int64_t m)
{
    hash_set hs = {.recording = 1};
    pl_hash path[128], root, from_root;
    size_t count = 0;
    int64_t n = cp->tree_size;
    int rc = PL_OK;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        int bad = index >= 0 ? pl_merkle_prove_inclusion(path, &count, index, n, hs_get, &hs)
                             : pl_merkle_prove_consistency(path, &count, m, n, hs_get, &hs);
        bad |= pl_merkle_subtree_root(root, 0, n, hs_get, &hs);
        if (index < 0)
            bad |= pl_merkle_subtree_root(from_root, 0, m, hs_get, &hs);
        if (pass == 0) {
            if (bad)
                rc = pl_fail(PL_ENOMEM, "out of memory");
            else
                rc = hs_fetch(&hs, l);
            hs.recording = 0;
        } else if (bad || hs.missing) {
            rc = pl_fail(PL_EVERIFY, "the stored log lacks hashes of the tree of size %lld", (long long)n);
        }
    }
    if (!rc && memcmp(root, cp->root_hash, 32) != 0)
        rc = pl_fail(PL_EVERIFY, "the stored tree of size %lld does not have the checkpoint's root",
                     (long long)n);
    pl_proof *p = NULL;
    if (!rc && !(p = proof_alloc(count)))
        rc = pl_fail(PL_ENOMEM, "out of memory");
    if (!rc) {
        p->leaf_index = index;
        p->tree_size = n;
        memcpy(p->root_hash, root, 32);
        if (count)
            memcpy((void *)p->hashes, path, count * 32);
        p->count = count;
        if (index < 0) {
            p->from_size = m;
            memcpy(p->from_root, from_root, 32);
        }
        *out = p;
    }
    free(hs.items);
    return rc;
}

static int inclusion_call(pl_proof **out, pl_ledger *l, int64_t record_id, const pl_checkpoint *cp)
{
    pl_checkpoint *latest;
    int rc = prove_begin(out, l, &cp, &latest);
    char idb[8];
    for (int k = 0; k < 8; k++)
        idb[k] = (char)((uint64_t)record_id >> (56 - 8 * k));
    const char *v[1] = {idb};
    int len[1] = {8};
    PGresult *res = NULL;
    if (!rc)
        rc = pl_db_run(l->db, PL_SQL_PROVE_LEAF, v, len, 0, &res);
    if (!rc && (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 8 || PQgetlength(res, 0, 1) != 32))
        rc = pl_fail(PL_NOT_FOUND, "record %lld is not sealed", (long long)record_id);
    int64_t index = rc ? 0 : pl_get_i64(PQgetvalue(res, 0, 0));
    if (!rc && index >= cp->tree_size)
        rc = pl_fail(PL_NOT_FOUND, "record %lld is leaf %lld, not in the tree of size %lld",
                     (long long)record_id, (long long)index, (long long)cp->tree_size);
    if (!rc)
        rc = build(out, l, cp, index, 0);
    if (!rc) {
        (*out)->record_id = record_id;
        memcpy((*out)->leaf_hash, PQgetvalue(res, 0, 1), 32);
    }
    PQclear(res);
    pl_checkpoint_free(latest);
    return rc;
}

int pl_prove_inclusion(pl_proof **out, pl_ledger *l, int64_t record_id, const pl_checkpoint *cp)
{
    PL_GUARD(l, inclusion_call(out, l, record_id, cp));
}

static int consistency_call(pl_proof **out, pl_ledger *l, int64_t from_size, const pl_checkpoint *cp)
{
    pl_checkpoint *latest;
    int rc = prove_begin(out, l, &cp, &latest);
    if (!rc && (from_size < 1 || from_size > cp->tree_size))
        rc = pl_fail(PL_EINVAL, "from_size: must be 1..%lld (the tree's size)", (long long)cp->tree_size);
    if (!rc)
        rc = build(out, l, cp, -1, from_size);
    pl_checkpoint_free(latest);
    return rc;
}

int pl_prove_consistency(pl_proof **out, pl_ledger *l, int64_t from_size, const pl_checkpoint *cp)
{
    PL_GUARD(l, consistency_call(out, l, from_size, cp));
}
