/* Shared pieces of the transparency-log calls (see tlog.h). */
#include "tlog.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ledger.h"
#include "wire.h"

int pl_log_head_read(pl_log_head *h, const PGresult *res)
{
    memset(h, 0, sizeof *h);
    if (PQntuples(res) != 1 || PQnfields(res) != 8)
        return pl_fail(PL_EDB, "PostgreSQL returned a checkpoint this library cannot read");
    h->leaves = PQgetlength(res, 0, 6) == 8 ? pl_get_i64(PQgetvalue(res, 0, 6)) : 0;
    h->ledger_id = PQgetvalue(res, 0, 7);
    if (PQgetisnull(res, 0, 0))
        return PL_OK;
    if (PQgetlength(res, 0, 0) != 8 || PQgetlength(res, 0, 1) != 32 || PQgetlength(res, 0, 4) % 32 != 0 ||
        PQgetlength(res, 0, 5) != 8)
        return pl_fail(PL_EVERIFY, "the latest stored checkpoint is malformed");
    h->present = 1;
    h->tree_size = pl_get_i64(PQgetvalue(res, 0, 0));
    memcpy(h->root, PQgetvalue(res, 0, 1), 32);
    h->origin = PQgetvalue(res, 0, 2);
    h->note = PQgetvalue(res, 0, 3);
    h->note_len = (size_t)PQgetlength(res, 0, 3);
    h->frontier = (const unsigned char *)PQgetvalue(res, 0, 4);
    h->frontier_count = (size_t)PQgetlength(res, 0, 4) / 32;
    h->sealed_at = pl_wire_get_time(PQgetvalue(res, 0, 5));
    return PL_OK;
}

int pl_log_head_resume(pl_merkle_builder *b, const pl_log_head *h)
{
    if (!h->present) {
        if (h->leaves != 0)
            return pl_fail(PL_EVERIFY, "the log holds %lld leaves but no checkpoint", (long long)h->leaves);
        pl_merkle_builder_init(b, 0, NULL, 0);
        return PL_OK;
    }
    if (h->leaves != h->tree_size)
        return pl_fail(PL_EVERIFY, "the log holds %lld leaves but its latest checkpoint covers %lld",
                       (long long)h->leaves, (long long)h->tree_size);
    if (pl_merkle_builder_init(b, h->tree_size, (const pl_hash *)h->frontier, h->frontier_count))
        return pl_fail(PL_EVERIFY, "the latest checkpoint's frontier does not fit its size %lld",
                       (long long)h->tree_size);
    pl_hash root;
    pl_merkle_builder_root(b, root);
    if (memcmp(root, h->root, 32) != 0)
        return pl_fail(PL_EVERIFY, "the latest checkpoint's frontier does not fold to its root");
    return PL_OK;
}

static char *jsonb_text(const PGresult *res, int row, int c)
{
    const char *v = PQgetvalue(res, row, c);
    int n = PQgetlength(res, row, c);
    if (n < 1 || v[0] != 1)
        return NULL;
    char *s = malloc((size_t)n);
    if (s) {
        memcpy(s, v + 1, (size_t)n - 1);
        s[n - 1] = '\0';
    }
    return s;
}

void pl_log_json_free(char *json[3])
{
    for (int j = 0; j < 3; j++) {
        free(json[j]);
        json[j] = NULL;
    }
}

int pl_log_row_record(pl_leaf_record *r, char *json[3], const PGresult *res, int row, int first)
{
    memset(r, 0, sizeof *r);
    json[0] = json[1] = json[2] = NULL;
    if (PQgetlength(res, row, first) != 8 || PQgetlength(res, row, first + 3) != 8 ||
        PQgetlength(res, row, first + 4) != 8 || PQgetlength(res, row, first + 5) != 8)
        return pl_fail(PL_EDB, "PostgreSQL returned a record this library cannot read");
    r->id = pl_get_i64(PQgetvalue(res, row, first));
    r->entity_id = PQgetvalue(res, row, first + 1);
    r->field_name = PQgetvalue(res, row, first + 2);
    r->transaction_time = pl_wire_get_time(PQgetvalue(res, row, first + 3));
    r->valid_from = pl_wire_get_time(PQgetvalue(res, row, first + 4));
    r->valid_to = pl_wire_get_time(PQgetvalue(res, row, first + 5));
    r->source_type = PQgetvalue(res, row, first + 6);
    r->change_reason = PQgetisnull(res, row, first + 7) ? NULL : PQgetvalue(res, row, first + 7);
    for (int j = 0; j < 3; j++) {
        if (PQgetisnull(res, row, first + 8 + j))
            continue;
        if (!(json[j] = jsonb_text(res, row, first + 8 + j))) {
            pl_log_json_free(json);
            return pl_fail(PL_EDB, "PostgreSQL returned a value of record %lld this library cannot read",
                           (long long)r->id);
        }
    }
    r->old_value = json[0];
    r->new_value = json[1];
    r->metadata = json[2];
    return PL_OK;
}

int pl_log_checkpoint(pl_checkpoint **out, const char *note, size_t len, pl_time sealed_at)
{
    int rc = pl_checkpoint_parse(out, note, len);
    if (rc == PL_EINVAL)
        return pl_fail(PL_EVERIFY, "a stored checkpoint does not parse: %s", pl_errmsg());
    if (!rc)
        (*out)->sealed_at = sealed_at;
    return rc;
}

int pl_log_latest(pl_checkpoint **out, pl_ledger *l)
{
    PGresult *res = NULL;
    int rc = pl_db_run(l->db, PL_SQL_CHECKPOINT_LATEST, NULL, NULL, 0, &res);
    pl_log_head h;
    if (!rc)
        rc = pl_log_head_read(&h, res);
    if (!rc && !h.present)
        rc = PL_NOT_FOUND;
    if (!rc)
        /* cppcheck-suppress uninitStructMember ; pl_log_head_read zeroed h first */
        rc = pl_log_checkpoint(out, h.note, h.note_len, h.sealed_at);
    PQclear(res);
    return rc;
}

int pl_log_check_origin(const char *what, const char *origin)
{
    size_t n = strlen(origin);
    if (n == 0 || n > 255)
        return pl_fail(PL_EINVAL, "%s: must be 1 to 255 bytes", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)origin[i];
        if (c <= 0x20 || c >= 0x7f || c == '+')
            return pl_fail(PL_EINVAL, "%s: printable ASCII without spaces or '+' (byte %zu)", what, i);
    }
    return PL_OK;
}
