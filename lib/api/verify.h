/* The verifier's core (verify.c), fed leaf by leaf by a source: the
 * database (verify.c) or an export (export.c). */
#ifndef PL_VERIFY_H
#define PL_VERIFY_H

#include "leaf.h"
#include "merkle.h"
#include "provledger.h"
#include "tlog.h"
#include "wire.h"

/* What a record leaf covers, as the source found it. */
typedef struct pl_vrow {
    int present;
    pl_leaf_record rec;
    int erased;
    const unsigned char *commitments; /* PL_COMMITMENTS_SIZE bytes, or NULL */
    const unsigned char *key;         /* 32 bytes, or NULL */
} pl_vrow;

typedef struct pl_verasure {
    int present;
    const char *entity_id;
    pl_time erased_at;
    const char *reason;
} pl_verasure;

/* One stored leaf and what it covers. */
typedef struct pl_vleaf {
    int64_t index;
    int kind;                   /* PL_LEAF_RECORD or PL_LEAF_ERASURE */
    int64_t item_id;
    unsigned char stored_hash[32];
    int check_nodes;            /* the source has the stored interior hashes */
    const unsigned char *nodes;
    size_t nodes_len;
    pl_vrow row;                /* kind record */
    pl_verasure erasure;        /* kind erasure */
} pl_vleaf;

/* A stored checkpoint, as its row states it (its note was checked
 * against the row and the pinned key when it was added). */
typedef struct pl_vcheckpoint {
    int64_t row_id, size;
    unsigned char root[32];
} pl_vcheckpoint;

typedef struct pl_vstate {
    const pl_key *pub;
    const pl_checkpoint *trusted;
    int trusted_checked;
    pl_finding_fn fn;
    void *ctx;
    int stopped;                /* the callback asked to stop */
    int gap;                    /* leaf positions skip: tree checks stop */
    pl_verify_summary sum;
    pl_merkle_builder stored;   /* the tree of the stored leaf hashes */
    pl_vcheckpoint *cps;        /* sorted by size (the source's order) */
    size_t ncps, cap, next_cp;
    pl_buf leaf, nodes;
} pl_vstate;

int pl_vstate_init(pl_vstate *v, const pl_key *pub, const pl_checkpoint *trusted, pl_finding_fn fn,
                   void *ctx);
void pl_vstate_free(pl_vstate *v);
/* Stored checkpoints, smallest first, before the first leaf. */
int pl_vstate_add_checkpoint(pl_vstate *v, int64_t row_id, int64_t size, const unsigned char root[32],
                             const char *note, size_t note_len);
/* After the checkpoints, before the first leaf. */
void pl_vstate_begin(pl_vstate *v);
/* Each leaf in order (a repeated index: another row with the same id). */
int pl_vstate_leaf(pl_vstate *v, const pl_vleaf *x);
/* After the last leaf. */
void pl_vstate_end(pl_vstate *v);
/* A record not in the log; backdated: a sealed record of its entity is
 * as late or later. */
void pl_vstate_unsealed(pl_vstate *v, int64_t id, const char *entity, pl_time tt, int backdated);
void pl_vstate_report(pl_vstate *v, int kind, int64_t id, int64_t leaf, const char *entity,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The export in dir as the source (export.c). */
int pl_verify_export(pl_vstate *v, const char *dir);

#endif
