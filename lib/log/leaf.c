/* Leaf encoding and value commitments (see leaf.h and README "Tamper
 * evidence"). Every integer is big-endian; every string is a u32 length
 * and its UTF-8 bytes; a time is a tag byte (0: an instant, then i64
 * microseconds since 1970-01-01 UTC; 1: -infinity; 2: infinity). */
#include "leaf.h"

#include <string.h>


#include "digest.h"
#include "error.h"
#include "jcs.h"

/* Forms of committed content. */
enum { FORM_JCS = 1, FORM_PG_TEXT = 2, FORM_TEXT = 3 };

static void put_u8(pl_buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    pl_buf_put(b, &c, 1);
}

static void put_str(pl_buf *b, const char *s)
{
    size_t n = strlen(s);
    pl_buf_put_u32(b, (uint32_t)n);
    pl_buf_put(b, s, n);
}

static void put_time(pl_buf *b, pl_time t)
{
    if (t == PL_TIME_ANY) {
        put_u8(b, 1);
    } else if (t == PL_TIME_INFINITY) {
        put_u8(b, 2);
    } else {
        put_u8(b, 0);
        pl_buf_put_i64(b, t);
    }
}

/* One commitment: which (1..4), whether present, the form and bytes. */
static int commit_one(unsigned char out[32], const unsigned char key[32], unsigned which,
                      const char *value, int json, pl_buf *scratch)
{
    scratch->len = 0;
    pl_buf_put(scratch, "PLC1", 4);
    put_u8(scratch, which);
    put_u8(scratch, value != NULL);
    if (value) {
        if (!json) {
            put_u8(scratch, FORM_TEXT);
            pl_buf_put(scratch, value, strlen(value));
        } else {
            size_t form_at = scratch->len;
            put_u8(scratch, FORM_JCS);
            int rc = pl_jcs(scratch, value, strlen(value));
            if (rc == PL_JCS_UNREPRESENTABLE) {
                /* A number no IEEE double holds (PostgreSQL's numeric
                 * does): commit to PostgreSQL's own normal form instead. */
                scratch->len = form_at;
                put_u8(scratch, FORM_PG_TEXT);
                pl_buf_put(scratch, value, strlen(value));
            } else if (rc < 0) {
                return rc;
            }
        }
    }
    if (scratch->failed)
        return pl_fail(PL_ENOMEM, "out of memory");
    if (pl_hmac_sha256(out, key, 32, scratch->data, scratch->len) < 0)
        return pl_fail(PL_ENOMEM, "HMAC-SHA-256 failed");
    return PL_OK;
}

int pl_leaf_commit(unsigned char out[PL_COMMITMENTS_SIZE], const unsigned char key[32],
                   const pl_leaf_record *r)
{
    pl_buf scratch = {0};
    int rc = commit_one(out + 32 * PL_COMMIT_REASON, key, 1, r->change_reason, 0, &scratch);
    if (!rc)
        rc = commit_one(out + 32 * PL_COMMIT_OLD, key, 2, r->old_value, 1, &scratch);
    if (!rc)
        rc = commit_one(out + 32 * PL_COMMIT_NEW, key, 3, r->new_value, 1, &scratch);
    if (!rc)
        rc = commit_one(out + 32 * PL_COMMIT_META, key, 4, r->metadata, 1, &scratch);
    pl_buf_free(&scratch);
    return rc;
}

void pl_leaf_record_encode(pl_buf *out, const pl_leaf_record *r,
                           const unsigned char c[PL_COMMITMENTS_SIZE])
{
    pl_buf_put(out, "PLR1", 4);
    pl_buf_put_i64(out, r->id);
    put_str(out, r->entity_id);
    put_str(out, r->field_name);
    put_time(out, r->transaction_time);
    put_time(out, r->valid_from);
    put_time(out, r->valid_to);
    put_str(out, r->source_type);
    pl_buf_put(out, c, PL_COMMITMENTS_SIZE);
}

void pl_leaf_erasure_encode(pl_buf *out, int64_t id, const char *entity_id, pl_time erased_at,
                            const char *reason)
{
    pl_buf_put(out, "PLE1", 4);
    pl_buf_put_i64(out, id);
    put_str(out, entity_id);
    put_time(out, erased_at);
    put_u8(out, reason != NULL);
    if (reason)
        put_str(out, reason);
}
