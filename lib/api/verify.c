/* The verifier (pl_verify): everything an auditor checks, recomputed on
 * this side from the rows, against the pinned key and the checkpoint the
 * auditor kept. The same core judges the database (a cursor over every
 * leaf with what it covers, in one repeatable-read snapshot) and an export
 * (export.c reads its files). The tree is rebuilt leaf by leaf from the
 * stored leaf hashes with O(log n) memory (the log as stored: its interior
 * hashes and checkpoints must match it), and every leaf is recomputed from
 * its row (a row that differs from its stored leaf is ALTERED, one that is
 * gone MISSING). */
#include "verify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "error.h"
#include "ledger.h"
#include "wire.h"

static const char *const finding_names[] = {
    NULL, "ALTERED", "MISSING", "BACKDATED", "LOG_MISMATCH", "INCONSISTENT", "BAD_SIGNATURE", "ERASED",
};

const char *pl_finding_name(int kind)
{
    if (kind < 1 || kind > PL_FINDING_ERASED)
        return "UNKNOWN";
    return finding_names[kind];
}

void pl_vstate_report(pl_vstate *v, int kind, int64_t id, int64_t leaf, const char *entity,
                      const char *fmt, ...)
{
    if (v->stopped)
        return;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    v->sum.findings++;
    v->sum.by_kind[kind]++;
    pl_finding f = {.kind = kind, .id = id, .leaf_index = leaf, .entity_id = entity, .detail = detail};
    if (v->fn && v->fn(v->ctx, &f))
        v->stopped = 1;
}

int pl_vstate_init(pl_vstate *v, const pl_key *pub, const pl_checkpoint *trusted, pl_finding_fn fn,
                   void *ctx)
{
    memset(v, 0, sizeof *v);
    v->pub = pub;
    v->trusted = trusted;
    v->fn = fn;
    v->ctx = ctx;
    pl_merkle_builder_init(&v->stored, 0, NULL, 0);
    return PL_OK;
}

void pl_vstate_free(pl_vstate *v)
{
    free(v->cps);
    pl_buf_free(&v->leaf);
    pl_buf_free(&v->nodes);
}

int pl_vstate_add_checkpoint(pl_vstate *v, int64_t row_id, int64_t size, const unsigned char root[32],
                             const char *note, size_t note_len)
{
    if (v->ncps == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void *p = realloc(v->cps, cap * sizeof *v->cps);
        if (!p)
            return pl_fail(PL_ENOMEM, "out of memory");
        v->cps = p;
        v->cap = cap;
    }
    pl_vcheckpoint *c = &v->cps[v->ncps];
    memset(c, 0, sizeof *c);
    c->row_id = row_id;
    c->size = size;
    memcpy(c->root, root, 32);
    v->ncps++;
    v->sum.checkpoints++;
    /* The note must say what its row says, and be signed by the pinned key. */
    pl_checkpoint *cp = NULL;
    if (pl_checkpoint_parse(&cp, note, note_len) != PL_OK) {
        pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, -1, NULL,
                         "stored checkpoint %lld (size %lld) does not parse: %s", (long long)row_id,
                         (long long)size, pl_errmsg());
    } else {
        if (cp->tree_size != size || memcmp(cp->root_hash, root, 32) != 0)
            pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, -1, NULL,
                             "stored checkpoint %lld: its note says size %lld, its row size %lld or "
                             "another root", (long long)row_id, (long long)cp->tree_size, (long long)size);
        if (pl_checkpoint_verify(cp, v->pub) != PL_OK)
            pl_vstate_report(v, PL_FINDING_BAD_SIGNATURE, 0, -1, NULL,
                             "stored checkpoint %lld (size %lld) is not signed by the pinned key",
                             (long long)row_id, (long long)size);
    }
    pl_checkpoint_free(cp);
    return PL_OK;
}

/* Checks every checkpoint whose size the stored tree has just reached. */
static void check_sizes(pl_vstate *v)
{
    int64_t size = pl_merkle_builder_size(&v->stored);
    pl_hash root;
    int have_root = 0;
    while (v->next_cp < v->ncps && v->cps[v->next_cp].size <= size) {
        pl_vcheckpoint *c = &v->cps[v->next_cp++];
        if (c->size < size)
            continue; /* sorted by size: cannot happen */
        if (!have_root) {
            pl_merkle_builder_root(&v->stored, root);
            have_root = 1;
        }
        if (memcmp(root, c->root, 32) != 0)
            pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, -1, NULL,
                             "the stored log's tree of size %lld does not have the root of stored "
                             "checkpoint %lld", (long long)size, (long long)c->row_id);
    }
    if (v->trusted && v->trusted->tree_size == size) {
        if (!have_root)
            pl_merkle_builder_root(&v->stored, root);
        if (memcmp(root, v->trusted->root_hash, 32) != 0)
            pl_vstate_report(v, PL_FINDING_INCONSISTENT, 0, -1, NULL,
                             "the log's tree of size %lld does not have the root of the checkpoint you "
                             "hold: the log was rewritten since", (long long)size);
        v->trusted_checked = 1;
    }
}

void pl_vstate_begin(pl_vstate *v)
{
    if (v->trusted && pl_checkpoint_verify(v->trusted, v->pub) != PL_OK)
        pl_vstate_report(v, PL_FINDING_BAD_SIGNATURE, 0, -1, NULL,
                         "the checkpoint you hold (size %lld) is not signed by the pinned key",
                         (long long)v->trusted->tree_size);
    check_sizes(v);
}

static void compare_nodes(void *ctx, int level, int64_t index, const pl_hash h)
{
    (void)index;
    pl_buf *b = ctx;
    unsigned char lv = (unsigned char)level;
    pl_buf_put(b, &lv, 1);
    pl_buf_put(b, h, 32);
}

/* The recomputed leaf of a record row (into v->leaf); -1 when it cannot
 * be recomputed (reported). */
static int recompute_record(pl_vstate *v, const pl_vleaf *x, pl_hash out)
{
    const pl_vrow *r = &x->row;
    unsigned char cm[PL_COMMITMENTS_SIZE];
    if (r->erased) {
        if (!r->commitments) {
            pl_vstate_report(v, PL_FINDING_ALTERED, r->rec.id, x->index, r->rec.entity_id,
                             "marked erased, but its commitments are gone");
            return -1;
        }
        memcpy(cm, r->commitments, PL_COMMITMENTS_SIZE);
    } else {
        if (!r->key) {
            pl_vstate_report(v, PL_FINDING_ALTERED, r->rec.id, x->index, r->rec.entity_id,
                             "its entity's commitment key is gone, but its values are not erased");
            return -1;
        }
        int rc = pl_leaf_commit(cm, r->key, &r->rec);
        if (rc == PL_ENOMEM)
            return -2;
        if (rc) {
            pl_vstate_report(v, PL_FINDING_ALTERED, r->rec.id, x->index, r->rec.entity_id,
                             "a stored value is not JSON: %s", pl_errmsg());
            return -1;
        }
    }
    v->leaf.len = 0;
    pl_leaf_record_encode(&v->leaf, &r->rec, cm);
    if (v->leaf.failed)
        return -2;
    pl_merkle_leaf(out, v->leaf.data, v->leaf.len);
    return 0;
}

int pl_vstate_leaf(pl_vstate *v, const pl_vleaf *x)
{
    int64_t expect = pl_merkle_builder_size(&v->stored);
    if (x->index < expect) {
        /* The join met a second row with a sealed record's id. */
        if (x->kind == PL_LEAF_RECORD && x->row.present)
            pl_vstate_report(v, PL_FINDING_ALTERED, x->row.rec.id, x->index, x->row.rec.entity_id,
                             "a second row carries this sealed record's id");
        return PL_OK;
    }
    if (x->index != expect) {
        pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, x->index, NULL,
                         "the stored log skips from leaf %lld to leaf %lld", (long long)expect - 1,
                         (long long)x->index);
        v->gap = 1;
        return PL_OK;
    }
    if (v->gap)
        return PL_OK;
    v->sum.tree_size++;
    pl_hash mine;
    int judged = 0;
    memcpy(mine, x->stored_hash, 32);
    if (x->kind == PL_LEAF_RECORD) {
        if (!x->row.present) {
            pl_vstate_report(v, PL_FINDING_MISSING, x->item_id, x->index, NULL,
                             "sealed record %lld is gone", (long long)x->item_id);
        } else {
            v->sum.records++;
            int rc = recompute_record(v, x, mine);
            if (rc == -2)
                return pl_fail(PL_ENOMEM, "out of memory");
            if (rc == 0)
                judged = 1;
            else
                memcpy(mine, x->stored_hash, 32);
        }
    } else if (!x->erasure.present) {
        pl_vstate_report(v, PL_FINDING_MISSING, 0, x->index, NULL, "sealed erasure %lld is gone",
                         (long long)x->item_id);
    } else {
        v->leaf.len = 0;
        pl_leaf_erasure_encode(&v->leaf, x->item_id, x->erasure.entity_id, x->erasure.erased_at,
                               x->erasure.reason);
        if (v->leaf.failed)
            return pl_fail(PL_ENOMEM, "out of memory");
        pl_merkle_leaf(mine, v->leaf.data, v->leaf.len);
        if (memcmp(mine, x->stored_hash, 32) != 0)
            pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, x->index, x->erasure.entity_id,
                             "erasure %lld differs from its leaf", (long long)x->item_id);
    }
    if (judged) {
        if (memcmp(mine, x->stored_hash, 32) != 0)
            pl_vstate_report(v, PL_FINDING_ALTERED, x->row.rec.id, x->index, x->row.rec.entity_id,
                             "record %lld differs from its leaf", (long long)x->row.rec.id);
        else if (x->row.erased)
            pl_vstate_report(v, PL_FINDING_ERASED, x->row.rec.id, x->index, x->row.rec.entity_id,
                             "record %lld was erased; its leaf verifies", (long long)x->row.rec.id);
    }
    v->nodes.len = 0;
    pl_merkle_builder_push(&v->stored, x->stored_hash, compare_nodes, &v->nodes);
    if (v->nodes.failed)
        return pl_fail(PL_ENOMEM, "out of memory");
    if (x->check_nodes && (v->nodes.len != x->nodes_len ||
                           (x->nodes_len && memcmp(v->nodes.data, x->nodes, x->nodes_len) != 0)))
        pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, x->index, NULL,
                         "the interior hashes stored with leaf %lld differ from the tree's",
                         (long long)x->index);
    check_sizes(v);
    return PL_OK;
}

void pl_vstate_unsealed(pl_vstate *v, int64_t id, const char *entity, pl_time tt, int backdated)
{
    v->sum.unsealed++;
    v->sum.records++;
    if (backdated) {
        char t[PL_TIME_BUFSIZE];
        pl_time_format(t, sizeof t, tt);
        pl_vstate_report(v, PL_FINDING_BACKDATED, id, -1, entity,
                         "record %lld (transaction time %s) is not sealed, yet a sealed record of its "
                         "entity is as late or later", (long long)id, t);
    }
}

void pl_vstate_end(pl_vstate *v)
{
    int64_t size = pl_merkle_builder_size(&v->stored);
    for (; v->next_cp < v->ncps; v->next_cp++)
        pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, -1, NULL,
                         "stored checkpoint %lld covers %lld leaves; the log holds %lld: it was truncated",
                         (long long)v->cps[v->next_cp].row_id, (long long)v->cps[v->next_cp].size,
                         (long long)size);
    int64_t covered = 0;
    for (size_t i = 0; i < v->ncps; i++)
        if (v->cps[i].size > covered)
            covered = v->cps[i].size;
    if (!v->gap && size > covered)
        pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, covered, NULL,
                         "the log holds %lld leaves, but no checkpoint covers those past %lld",
                         (long long)size, (long long)covered);
    if (v->trusted && !v->trusted_checked)
        pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, -1, NULL,
                         "the checkpoint you hold covers %lld leaves; the log holds %lld: it was truncated",
                         (long long)v->trusted->tree_size, (long long)size);
}

/* ------------------------------------------------------------------------ */
/* The database as the source                                                */
/* ------------------------------------------------------------------------ */

/* Columns of pl_verify_leaves.sql. */
enum {
    L_INDEX, L_KIND, L_ITEM, L_HASH, L_NODES, L_ROW = 5, L_ERASED = 16, L_COMMITMENTS, L_KEY, L_ER_ID,
    L_ER_ENTITY, L_ER_AT, L_ER_REASON, L_NCOLS
};

static int leaves_chunk(void *ctx, const PGresult *res)
{
    pl_vstate *v = ctx;
    if (PQnfields(res) != L_NCOLS)
        return pl_fail(PL_EDB, "PostgreSQL returned leaves this library cannot read");
    int rc = PL_OK;
    for (int i = 0; !rc && i < PQntuples(res) && !v->stopped; i++) {
        pl_vleaf x;
        memset(&x, 0, sizeof x);
        char *json[3] = {NULL, NULL, NULL};
        if (PQgetlength(res, i, L_INDEX) != 8 || PQgetlength(res, i, L_KIND) != 2 ||
            PQgetlength(res, i, L_ITEM) != 8 || PQgetlength(res, i, L_HASH) != 32)
            return pl_fail(PL_EDB, "PostgreSQL returned a leaf this library cannot read");
        x.index = pl_get_i64(PQgetvalue(res, i, L_INDEX));
        x.kind = (unsigned char)PQgetvalue(res, i, L_KIND)[1];
        x.item_id = pl_get_i64(PQgetvalue(res, i, L_ITEM));
        memcpy(x.stored_hash, PQgetvalue(res, i, L_HASH), 32);
        x.check_nodes = 1;
        x.nodes = (const unsigned char *)PQgetvalue(res, i, L_NODES);
        x.nodes_len = PQgetisnull(res, i, L_NODES) ? 0 : (size_t)PQgetlength(res, i, L_NODES);
        if (x.kind == PL_LEAF_RECORD && !PQgetisnull(res, i, L_ROW)) {
            if ((rc = pl_log_row_record(&x.row.rec, json, res, i, L_ROW)))
                break;
            x.row.present = 1;
            x.row.erased = PQgetvalue(res, i, L_ERASED)[0] != 0;
            if (PQgetlength(res, i, L_COMMITMENTS) == PL_COMMITMENTS_SIZE)
                x.row.commitments = (const unsigned char *)PQgetvalue(res, i, L_COMMITMENTS);
            if (PQgetlength(res, i, L_KEY) == 32)
                x.row.key = (const unsigned char *)PQgetvalue(res, i, L_KEY);
        } else if (x.kind == PL_LEAF_ERASURE && !PQgetisnull(res, i, L_ER_ID)) {
            x.erasure.present = 1;
            x.erasure.entity_id = PQgetvalue(res, i, L_ER_ENTITY);
            x.erasure.erased_at = pl_wire_get_time(PQgetvalue(res, i, L_ER_AT));
            x.erasure.reason = PQgetisnull(res, i, L_ER_REASON) ? NULL : PQgetvalue(res, i, L_ER_REASON);
        }
        rc = pl_vstate_leaf(v, &x);
        pl_log_json_free(json);
    }
    return rc ? rc : v->stopped;
}

static int unsealed_chunk(void *ctx, const PGresult *res)
{
    pl_vstate *v = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQnfields(res) != 4 || PQgetlength(res, i, 0) != 8 || PQgetlength(res, i, 2) != 8)
            return pl_fail(PL_EDB, "PostgreSQL returned records this library cannot read");
        pl_vstate_unsealed(v, pl_get_i64(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1),
                           pl_wire_get_time(PQgetvalue(res, i, 2)), PQgetvalue(res, i, 3)[0] != 0);
    }
    return v->stopped;
}

static int verify_db(pl_vstate *v, pl_ledger *l)
{
    pl_db_session s;
    int rc = pl_db_session_begin(&s, l->db, PL_CLASS_HEAVY, PL_SQL_TX_READ_SNAPSHOT);
    if (rc)
        return rc;
    PGresult *cps = NULL;
    rc = pl_db_session_run(&s, PL_SQL_VERIFY_CHECKPOINTS, NULL, NULL, &cps);
    for (int i = 0; !rc && i < PQntuples(cps); i++) {
        if (PQgetlength(cps, i, 0) != 8 || PQgetlength(cps, i, 1) != 8 || PQgetlength(cps, i, 2) != 32) {
            pl_vstate_report(v, PL_FINDING_LOG_MISMATCH, 0, -1, NULL, "a stored checkpoint is malformed");
            continue;
        }
        rc = pl_vstate_add_checkpoint(v, pl_get_i64(PQgetvalue(cps, i, 0)), pl_get_i64(PQgetvalue(cps, i, 1)),
                                      (const unsigned char *)PQgetvalue(cps, i, 2), PQgetvalue(cps, i, 3),
                                      (size_t)PQgetlength(cps, i, 3));
    }
    PQclear(cps);
    if (!rc) {
        pl_vstate_begin(v);
        rc = pl_cursor_declare(&s, PL_SQL_VERIFY_LEAVES, NULL);
    }
    if (!rc)
        rc = pl_cursor_each(&s, PL_CURSOR_AHEAD, leaves_chunk, v);
    if (!rc)
        pl_vstate_end(v);
    if (!rc && !v->stopped)
        rc = pl_cursor_declare(&s, PL_SQL_VERIFY_UNSEALED, NULL);
    if (!rc && !v->stopped)
        rc = pl_cursor_each(&s, PL_CURSOR_AHEAD, unsealed_chunk, v);
    pl_db_session_rollback_close(&s);
    return rc;
}

static int verify_call(pl_verify_summary *summary, size_t summary_size, pl_ledger *l, const char *export_dir,
                       const pl_key *pub, const pl_checkpoint *trusted, pl_finding_fn fn, void *ctx)
{
    if (!pub)
        return pl_fail(PL_EINVAL, "pub: NULL (pin the log's public key)");
    if (!l && !export_dir)
        return pl_fail(PL_EINVAL, "ledger: NULL without an export directory");
    pl_vstate v;
    pl_vstate_init(&v, pub, trusted, fn, ctx);
    int rc = export_dir ? pl_verify_export(&v, export_dir) : verify_db(&v, l);
    if (summary && summary_size)
        memcpy(summary, &v.sum, summary_size < sizeof v.sum ? summary_size : sizeof v.sum);
    int64_t serious = v.sum.findings - v.sum.by_kind[PL_FINDING_ERASED];
    pl_vstate_free(&v);
    if (!rc && serious > 0)
        rc = pl_fail(PL_EVERIFY, "%lld finding%s: the log or the ledger was tampered with",
                     (long long)serious, serious == 1 ? "" : "s");
    return rc;
}

int pl_verify(pl_verify_summary *summary, size_t summary_size, pl_ledger *l, const char *export_dir,
              const pl_key *pub, const pl_checkpoint *trusted, pl_finding_fn fn, void *ctx)
{
    if (!l)
        return verify_call(summary, summary_size, l, export_dir, pub, trusted, fn, ctx);
    PL_GUARD(l, verify_call(summary, summary_size, l, export_dir, pub, trusted, fn, ctx));
}
