/* What the transparency-log calls share (seal.c, prove.c, verify.c,
 * export.c): reading the latest checkpoint and records out of rows. */
#ifndef PL_TLOG_H
#define PL_TLOG_H

#include <libpq-fe.h>

#include "leaf.h"
#include "merkle.h"
#include "provledger.h"

/* The latest checkpoint as stored (pl_checkpoint_latest.sql); pointers
 * into the PGresult it was read from. */
typedef struct pl_log_head {
    int present;                    /* a checkpoint exists */
    int64_t tree_size;
    pl_hash root;
    const char *origin;
    const char *note;
    size_t note_len;
    const unsigned char *frontier;  /* frontier_count hashes of 32 bytes */
    size_t frontier_count;
    pl_time sealed_at;
    int64_t leaves;                 /* leaves stored */
    const char *ledger_id;
} pl_log_head;

/* Reads the one row of PL_SQL_CHECKPOINT_LATEST. PL_EVERIFY when it is
 * malformed. */
int pl_log_head_read(pl_log_head *h, const PGresult *res);

/* Checks that the stored log matches its latest checkpoint (leaf count,
 * frontier folding to the root) and loads the builder to go on from it.
 * PL_EVERIFY naming what differs. */
int pl_log_head_resume(pl_merkle_builder *b, const pl_log_head *h);

/* A record leaf's fields from binary columns starting at `first`: id,
 * entity, field, tt, valid from, valid to, source, reason, old, new,
 * metadata. Strings point into res; the JSON texts are malloc'd into
 * json[3] (free with pl_log_json_free). */
int pl_log_row_record(pl_leaf_record *r, char *json[3], const PGresult *res, int row, int first);
void pl_log_json_free(char *json[3]);

/* A library-allocated checkpoint from a note, with its seal time. */
int pl_log_checkpoint(pl_checkpoint **out, const char *note, size_t len, pl_time sealed_at);

/* Reads the latest checkpoint on a session or with pl_db_run. */
int pl_log_latest(pl_checkpoint **out, pl_ledger *l);

/* Checks that origin can name a log and its key: printable ASCII, no
 * space or '+', at most 255 bytes. PL_EINVAL naming `what`. */
int pl_log_check_origin(const char *what, const char *origin);

#endif
