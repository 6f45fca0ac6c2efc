/*
 * offline_audit: what an auditor checks with no access to the database,
 * holding only what they were handed and what they kept themselves.
 *
 * Inputs:
 *   PUB.pem      the log's public key, pinned by the auditor long ago
 *                (openssl pkey -in log.key -pubout);
 *   CHECKPOINT   a checkpoint note the auditor saved earlier
 *                (provledger checkpoint > CHECKPOINT);
 *   EXPORT_DIR   an export handed over now (provledger export --out DIR);
 *   RECORD_ID    one record the auditor cares about, and
 *   PROOF.json   its inclusion proof as `provledger prove RECORD_ID
 *                --checkpoint CHECKPOINT` prints it.
 *
 * Checks, in order (each prints "ok" or what failed):
 *   1. the saved checkpoint is signed by the pinned key
 *      (pl_checkpoint_parse, pl_checkpoint_verify);
 *   2. the export is intact: every record matches its leaf, the tree
 *      rebuilds to the signed roots, and the log extends the saved
 *      checkpoint (pl_verify with no ledger and the export directory);
 *   3. the record is in the tree the saved checkpoint signs
 *      (pl_verify_inclusion). Nothing in the proof file is trusted but its
 *      sibling hashes: the leaf hash comes from the export (check 2 tied it
 *      to the record's content), the size and root from the signed
 *      checkpoint, so a forged proof can only fail.
 *
 * Usage: offline_audit PUB.pem CHECKPOINT EXPORT_DIR RECORD_ID PROOF.json
 * Exit status 0 when every check passes, 1 otherwise, 2 on a usage error.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <provledger.h>

/* Reads a whole (small) file: the checkpoint note is a few hundred bytes. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n + 4096 > cap) {
            char *d = realloc(data, cap = n + 65536);
            if (!d) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = d;
        }
        got = fread(data + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

/* Lower-case or upper-case hex of exactly PL_HASH_SIZE bytes. */
static int unhex(unsigned char out[PL_HASH_SIZE], const char *hex)
{
    if (!hex || strlen(hex) != 2 * PL_HASH_SIZE)
        return -1;
    for (int i = 0; i < PL_HASH_SIZE; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* The first object of a JSON-lines file whose integer member `key` is
 * `want`; the caller json_decref()s it. Reads line by line, so an export
 * of millions of records is never in memory at once. */
static json_t *find_line(const char *path, const char *key, json_int_t want)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    json_t *found = NULL;
    json_error_t je;
    /* JSON_DISABLE_EOF_CHECK: stop after one object, at the newline. */
    while (!found && !feof(f)) {
        json_t *o = json_loadf(f, JSON_DISABLE_EOF_CHECK, &je);
        if (!o)
            break;
        json_t *v = json_object_get(o, key);
        if (json_is_integer(v) && json_integer_value(v) == want)
            found = o;
        else
            json_decref(o);
    }
    fclose(f);
    return found;
}

static int failures = 0;

static void check(int ok, const char *what, const char *why)
{
    printf("%-44s %s%s%s\n", what, ok ? "ok" : "FAILED", ok ? "" : ": ", ok ? "" : why);
    failures += !ok;
}

/* pl_verify() reports each finding here; ERASED is informational. */
static int on_finding(void *ctx, const pl_finding *f)
{
    (void)ctx;
    printf("  finding %s: record %" PRId64 ", leaf %" PRId64 ", entity %s: %s\n",
           pl_finding_name(f->kind), f->id, f->leaf_index, f->entity_id ? f->entity_id : "-",
           f->detail);
    return 0; /* go on: the auditor wants every finding, not the first */
}

/* Check 3: the record's inclusion in the saved checkpoint's tree. */
static void check_inclusion(const pl_checkpoint *cp, const char *dir, const char *id_text,
                            const char *proof_path)
{
    char path[4096], why[256] = "";
    char *end;
    errno = 0;
    long long id = strtoll(id_text, &end, 10);
    json_error_t je;
    json_t *proof = json_load_file(proof_path, 0, &je);
    json_t *rec = NULL, *leaf = NULL;
    unsigned char leaf_hash[PL_HASH_SIZE];
    unsigned char *hashes = NULL;
    size_t count = 0;

    if (errno || *end || id <= 0) {
        snprintf(why, sizeof why, "RECORD_ID %s is not a record id", id_text);
        goto out;
    }
    if (!proof) {
        snprintf(why, sizeof why, "%s: %s", proof_path, je.text);
        goto out;
    }
    /* Where the export puts the record in the log... */
    snprintf(path, sizeof path, "%s/records.jsonl", dir);
    rec = find_line(path, "id", (json_int_t)id);
    json_t *li = rec ? json_object_get(rec, "leaf_index") : NULL;
    if (!json_is_integer(li)) {
        snprintf(why, sizeof why, "record %lld is %s in the export", id,
                 rec ? "not sealed" : "not");
        goto out;
    }
    json_int_t index = json_integer_value(li);
    /* ... and that leaf's hash, which pl_verify() checked against it. */
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    leaf = find_line(path, "leaf_index", index);
    if (!leaf || unhex(leaf_hash, json_string_value(json_object_get(leaf, "leaf_hash")))) {
        snprintf(why, sizeof why, "leaf %" JSON_INTEGER_FORMAT " is not in the export's log",
                 index);
        goto out;
    }
    /* The proof must be for this record, at this leaf, in the checkpoint's
     * tree; its sibling hashes are all that is taken from it. */
    json_t *hs = json_object_get(proof, "proof");
    if (json_integer_value(json_object_get(proof, "id")) != (json_int_t)id ||
        json_integer_value(json_object_get(proof, "leaf_index")) != index ||
        json_integer_value(json_object_get(proof, "tree_size")) != cp->tree_size ||
        !json_is_array(hs)) {
        snprintf(why, sizeof why, "the proof is not for record %lld at leaf %" JSON_INTEGER_FORMAT
                 " in a tree of %" PRId64, id, index, cp->tree_size);
        goto out;
    }
    count = json_array_size(hs);
    hashes = malloc(count ? count * PL_HASH_SIZE : 1);
    for (size_t i = 0; hashes && i < count; i++) {
        if (unhex(hashes + i * PL_HASH_SIZE, json_string_value(json_array_get(hs, i)))) {
            snprintf(why, sizeof why, "proof hash %zu is not %d bytes of hex", i, PL_HASH_SIZE);
            goto out;
        }
    }
    if (pl_verify_inclusion(leaf_hash, index, cp->tree_size, hashes, count, cp->root_hash) != PL_OK)
        snprintf(why, sizeof why, "%s", pl_errmsg());
    else
        printf("  record %lld: %s.%s = %s\n", id,
               json_string_value(json_object_get(rec, "entity_id")),
               json_string_value(json_object_get(rec, "field_name")),
               json_string_value(json_object_get(rec, "new_value")));
out:
    check(why[0] == '\0', "3. record is in the signed tree", why);
    free(hashes);
    json_decref(leaf);
    json_decref(rec);
    json_decref(proof);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: offline_audit PUB.pem CHECKPOINT EXPORT_DIR RECORD_ID PROOF.json\n");
        return 2;
    }
    const char *pub_path = argv[1], *cp_path = argv[2], *dir = argv[3];
    char why[512] = "";

    pl_key *pub = NULL;
    int rc = pl_key_load(&pub, pub_path);
    if (rc) {
        check(0, "0. load the pinned public key", pl_errmsg());
        return 1;
    }

    /* 1. The checkpoint the auditor kept, and its signature. */
    size_t len = 0;
    char *note = slurp(cp_path, &len);
    pl_checkpoint *cp = NULL;
    if (!note)
        snprintf(why, sizeof why, "%s: %s", cp_path, strerror(errno));
    else if ((rc = pl_checkpoint_parse(&cp, note, len)) || (rc = pl_checkpoint_verify(cp, pub)))
        snprintf(why, sizeof why, "%s: %s", pl_strerror(rc), pl_errmsg());
    check(cp && rc == PL_OK, "1. saved checkpoint is signed by the key", why);
    free(note);
    if (!cp || rc) {
        pl_checkpoint_free(cp);
        pl_key_free(pub);
        return 1;
    }
    printf("  %s: %" PRId64 " leaves\n", cp->origin, cp->tree_size);

    /* 2. The whole export, with no ledger: NULL for the handle. */
    pl_verify_summary sum;
    memset(&sum, 0, sizeof sum);
    rc = pl_verify(&sum, sizeof sum, NULL, dir, pub, cp, on_finding, NULL);
    snprintf(why, sizeof why, "%s: %s (%" PRId64 " findings)", pl_strerror(rc), pl_errmsg(),
             sum.findings);
    check(rc == PL_OK, "2. export matches the log and extends it", why);
    printf("  %" PRId64 " records, %" PRId64 " leaves, %" PRId64 " checkpoints, %" PRId64
           " unsealed\n",
           sum.records, sum.tree_size, sum.checkpoints, sum.unsealed);

    /* 3. One record's inclusion. */
    check_inclusion(cp, dir, argv[4], argv[5]);

    pl_checkpoint_free(cp);
    pl_key_free(pub);
    printf("%s\n", failures ? "AUDIT FAILED" : "audit passed");
    return failures ? 1 : 0;
}
