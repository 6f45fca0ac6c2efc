/* The log's leaves: the versioned, length-prefixed binary encoding of a
 * record or an erasure that the tree hashes (README "Tamper evidence",
 * byte for byte), and the keyed commitments to a record's values. */
#ifndef PL_LEAF_H
#define PL_LEAF_H

#include <stdint.h>

#include "provledger.h"
#include "wire.h"

/* Leaf kinds, as log_leaf.kind stores them. */
enum { PL_LEAF_RECORD = 1, PL_LEAF_ERASURE = 2 };

/* The four commitments of a record, in leaf order. */
enum { PL_COMMIT_REASON, PL_COMMIT_OLD, PL_COMMIT_NEW, PL_COMMIT_META, PL_COMMIT_COUNT };
#define PL_COMMITMENTS_SIZE (PL_COMMIT_COUNT * 32)

/* What a record leaf covers. Times: PL_TIME_ANY stands for -infinity,
 * PL_TIME_INFINITY for infinity. Value texts as jsonb prints them; NULL
 * for SQL NULL. */
typedef struct pl_leaf_record {
    int64_t id;
    const char *entity_id;
    const char *field_name;
    pl_time transaction_time;
    pl_time valid_from;
    pl_time valid_to;
    const char *source_type;
    const char *change_reason;
    const char *old_value;
    const char *new_value;
    const char *metadata;
} pl_leaf_record;

/* The commitments to r's change reason, old value, new value and
 * metadata under the entity's 32-byte key: HMAC-SHA-256(key, "PLC1" ||
 * which || present || form || bytes), the JSON values in RFC 8785
 * canonical form. PL_EINVAL when a stored value is not JSON. */
int pl_leaf_commit(unsigned char out[PL_COMMITMENTS_SIZE], const unsigned char key[32],
                   const pl_leaf_record *r);

/* Appends the leaf of record r with commitments c ("PLR1"). */
void pl_leaf_record_encode(pl_buf *out, const pl_leaf_record *r,
                           const unsigned char c[PL_COMMITMENTS_SIZE]);

/* Appends the leaf of an erasure ("PLE1"). */
void pl_leaf_erasure_encode(pl_buf *out, int64_t id, const char *entity_id, pl_time erased_at,
                            const char *reason);

#endif
