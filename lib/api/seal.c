/* The sealer: appends committed records and erasures to the transparency
 * log and signs a checkpoint (README "Tamper evidence"). One seal is one
 * read-committed transaction on one connection:
 *   1. the seal lock (one sealer or eraser at a time), then the latest
 *      checkpoint, whose frontier must fold to its root and whose size
 *      must be the stored leaves' count (else the log was tampered with);
 *   2. xmin, the oldest transaction still running: every transaction
 *      below it has ended, and each later statement sees those that
 *      committed;
 *   3. a cursor over the records and erasures of transactions in
 *      [horizon, xmin), in (transaction time, kind, id) order: a record
 *      that commits later belongs to a later window, so no later commit
 *      can change what this seal appended;
 *   4. per chunk: commitment keys, leaves hashed here on the client, the
 *      interior hashes they complete, appended in one statement;
 *   5. every entity's sealed time moved once (migration 8 says why not per
 *      chunk); the checkpoint, signed here (the key never reaches the database),
 *      and the new horizon; COMMIT. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "cursor.h"
#include "error.h"
#include "leaf.h"
#include "ledger.h"
#include "merkle.h"
#include "note.h"
#include "tlog.h"
#include "wire.h"

/* Columns of pl_seal_candidates.sql. */
enum { C_KIND, C_ID, C_ENTITY, C_TT = 4, C_REASON = 8, C_ERASED = 12, C_COMMITMENTS, C_NCOLS };

/* One entity of a chunk: its commitment key and sealed time. */
typedef struct seal_entity {
    const char *id;
    unsigned char key[32];
    int has_key;
    pl_time sealed_tt; /* PL_TIME_ANY: nothing sealed yet */
} seal_entity;

static int entity_cmp(const void *a, const void *b)
{
    return strcmp(((const seal_entity *)a)->id, ((const seal_entity *)b)->id);
}

/* One chunk's leaves, as pl_seal_append's arrays. */
typedef struct seal_chunk {
    pl_array index, kind, item, hash, nodes;
    size_t count;
} seal_chunk;

/* The entities with a record sealed, in this seal, at transaction time tt:
 * the latest time seen, as candidates come in time order. A record of an
 * entity at a time at or before the entity's last sealed one is back-dated
 * (no commit makes it); an earlier seal's last time comes from log_entity,
 * which moves only at the seal's end, so within the seal only a second
 * record at the same time as one already sealed can be back-dated: this
 * set finds those, across chunks. An open-addressing set of copies. */
typedef struct same_time {
    pl_time tt;
    char **slot;
    size_t cap, used;
} same_time;

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void same_time_free(same_time *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slot[i]);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* Empties the set; a table grown for a large group of one time is let go,
 * so that emptying stays cheap for the (usual) groups of one. */
static void same_time_clear(same_time *t)
{
    if (t->cap > 64) {
        same_time_free(t);
        return;
    }
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slot[i]);
        t->slot[i] = NULL;
    }
    t->used = 0;
}

/* Where id is, or the empty slot it would take. */
static char **same_time_find(const same_time *t, const char *id)
{
    size_t i = (size_t)name_hash(id) & (t->cap - 1);
    while (t->slot[i] && strcmp(t->slot[i], id) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->slot[i];
}

static int same_time_has(const same_time *t, pl_time tt, const char *id)
{
    return t->used && tt == t->tt && *same_time_find(t, id) != NULL;
}

/* Notes that entity id has a record sealed at tt (the latest time yet). */
static int same_time_add(same_time *t, pl_time tt, const char *id)
{
    if (t->used && tt != t->tt)
        same_time_clear(t);
    t->tt = tt;
    if (2 * (t->used + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot)
            return pl_fail(PL_ENOMEM, "out of memory");
        same_time bigger = {.tt = tt, .slot = slot, .cap = cap, .used = t->used};
        for (size_t i = 0; i < t->cap; i++)
            if (t->slot[i])
                *same_time_find(&bigger, t->slot[i]) = t->slot[i];
        free(t->slot);
        *t = bigger;
    }
    char **at = same_time_find(t, id);
    if (*at)
        return PL_OK;
    if (!(*at = strdup(id)))
        return pl_fail(PL_ENOMEM, "out of memory");
    t->used++;
    return PL_OK;
}

static void chunk_begin(seal_chunk *c)
{
    memset(c, 0, sizeof *c);
    pl_array_begin(&c->index, PL_OID_INT8);
    pl_array_begin(&c->kind, PL_OID_INT2);
    pl_array_begin(&c->item, PL_OID_INT8);
    pl_array_begin(&c->hash, PL_OID_BYTEA);
    pl_array_begin(&c->nodes, PL_OID_BYTEA);
}

static void chunk_free(seal_chunk *c)
{
    pl_array *all[] = {&c->index, &c->kind, &c->item, &c->hash, &c->nodes};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        pl_buf_free(&all[i]->buf);
}

/* The builder reports each interior hash it stores (levels 4, 8, ...):
 * kept with the leaf that completes it. */
static void collect_node(void *ctx, int level, int64_t index, const pl_hash h)
{
    (void)index;
    pl_buf *b = ctx;
    unsigned char lv = (unsigned char)level;
    pl_buf_put(b, &lv, 1);
    pl_buf_put(b, h, 32);
}

typedef struct sealer {
    pl_db_session *s;
    pl_merkle_builder builder;
    int64_t sealed, backdated;
    pl_buf leaf, nodes;
    same_time latest; /* entities sealed at the latest time seen */
} sealer;

/* Keys and sealed times of the chunk's entities (sorted, unique). */
static int chunk_entities(sealer *z, const PGresult *res, seal_entity **out, size_t *count)
{
    int rows = PQntuples(res);
    seal_entity *e = calloc((size_t)rows + 1, sizeof *e);
    if (!e)
        return pl_fail(PL_ENOMEM, "out of memory");
    size_t n = 0;
    for (int i = 0; i < rows; i++)
        if (PQgetlength(res, i, C_KIND) == 2 && PQgetvalue(res, i, C_KIND)[1] == PL_LEAF_RECORD)
            e[n++].id = PQgetvalue(res, i, C_ENTITY);
    qsort(e, n, sizeof *e, entity_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(e[u - 1].id, e[i].id) != 0)
            e[u++] = e[i];
    *out = e;
    *count = u;
    if (u == 0)
        return PL_OK;
    /* Random candidates: the server keeps an entity's existing key. */
    pl_array ids, keys;
    pl_array_begin(&ids, PL_OID_TEXT);
    pl_array_begin(&keys, PL_OID_BYTEA);
    int rc = PL_OK;
    for (size_t i = 0; i < u && !rc; i++) {
        unsigned char k[32];
        if (RAND_bytes(k, sizeof k) != 1)
            rc = pl_fail(PL_ENOMEM, "no random bytes for a commitment key");
        pl_array_text(&ids, e[i].id);
        pl_array_bytea(&keys, k, sizeof k);
    }
    PGresult *kr = NULL;
    if (!rc && (pl_array_end(&ids) || pl_array_end(&keys)))
        rc = pl_fail(PL_ENOMEM, "out of memory");
    if (!rc) {
        const char *v[2] = {ids.buf.data, keys.buf.data};
        int len[2] = {(int)ids.buf.len, (int)keys.buf.len};
        rc = pl_db_session_run(z->s, PL_SQL_SEAL_KEYS, v, len, &kr);
    }
    for (int i = 0; !rc && i < PQntuples(kr); i++) {
        seal_entity probe = {.id = PQgetvalue(kr, i, 0)};
        seal_entity *hit = bsearch(&probe, e, u, sizeof *e, entity_cmp);
        if (!hit)
            continue;
        if (PQgetlength(kr, i, 1) == 32) {
            memcpy(hit->key, PQgetvalue(kr, i, 1), 32);
            hit->has_key = 1;
        }
        hit->sealed_tt = PQgetisnull(kr, i, 2) ? PL_TIME_ANY : pl_wire_get_time(PQgetvalue(kr, i, 2));
    }
    PQclear(kr);
    pl_buf_free(&ids.buf);
    pl_buf_free(&keys.buf);
    for (size_t i = 0; !rc && i < u; i++)
        if (!e[i].has_key)
            rc = pl_fail(PL_EDB, "entity %s has no commitment key", e[i].id);
    return rc;
}

/* Seals one fetched chunk. */
static int seal_chunk_rows(void *ctx, const PGresult *res)
{
    sealer *z = ctx;
    if (PQnfields(res) != C_NCOLS)
        return pl_fail(PL_EDB, "PostgreSQL returned seal candidates this library cannot read");
    seal_entity *ents = NULL;
    size_t nents = 0;
    int rc = chunk_entities(z, res, &ents, &nents);
    seal_chunk c;
    chunk_begin(&c);
    for (int i = 0; !rc && i < PQntuples(res); i++) {
        int kind = (unsigned char)PQgetvalue(res, i, C_KIND)[1];
        int64_t id = pl_get_i64(PQgetvalue(res, i, C_ID));
        const char *entity = PQgetvalue(res, i, C_ENTITY);
        pl_time tt = pl_wire_get_time(PQgetvalue(res, i, C_TT));
        z->leaf.len = 0;
        if (kind == PL_LEAF_RECORD) {
            seal_entity probe = {.id = entity};
            seal_entity *e = bsearch(&probe, ents, nents, sizeof *ents, entity_cmp);
            if ((e->sealed_tt != PL_TIME_ANY && tt <= e->sealed_tt) || same_time_has(&z->latest, tt, entity)) {
                /* No commit makes this (times rise per entity in commit
                 * order): leave it out, for pl_verify to report. */
                z->backdated++;
                continue;
            }
            pl_leaf_record r;
            char *json[3];
            unsigned char cm[PL_COMMITMENTS_SIZE];
            if ((rc = pl_log_row_record(&r, json, res, i, C_ID)))
                break;
            if (PQgetvalue(res, i, C_ERASED)[0] && PQgetlength(res, i, C_COMMITMENTS) == PL_COMMITMENTS_SIZE)
                memcpy(cm, PQgetvalue(res, i, C_COMMITMENTS), PL_COMMITMENTS_SIZE);
            else
                rc = pl_leaf_commit(cm, e->key, &r);
            if (!rc)
                pl_leaf_record_encode(&z->leaf, &r, cm);
            pl_log_json_free(json);
            if (!rc)
                rc = same_time_add(&z->latest, tt, entity);
            if (rc)
                break;
        } else {
            pl_leaf_erasure_encode(&z->leaf, id, entity, tt, PQgetisnull(res, i, C_REASON) ? NULL
                                   : PQgetvalue(res, i, C_REASON));
        }
        if (z->leaf.failed) {
            rc = pl_fail(PL_ENOMEM, "out of memory");
            break;
        }
        pl_hash h;
        pl_merkle_leaf(h, z->leaf.data, z->leaf.len);
        int64_t index = pl_merkle_builder_size(&z->builder);
        z->nodes.len = 0;
        pl_merkle_builder_push(&z->builder, h, collect_node, &z->nodes);
        pl_array_int8(&c.index, index);
        pl_array_int2(&c.kind, (int16_t)kind);
        pl_array_int8(&c.item, id);
        pl_array_bytea(&c.hash, h, 32);
        pl_array_bytea(&c.nodes, z->nodes.len ? z->nodes.data : NULL, z->nodes.len);
        c.count++;
    }
    if (!rc && c.count) {
        pl_array *a[] = {&c.index, &c.kind, &c.item, &c.hash, &c.nodes};
        const char *v[5];
        int len[5];
        for (int k = 0; k < 5 && !rc; k++) {
            if (pl_array_end(a[k]) || z->nodes.failed)
                rc = pl_fail(PL_ENOMEM, "out of memory");
            v[k] = a[k]->buf.data;
            len[k] = (int)a[k]->buf.len;
        }
        if (!rc)
            rc = pl_db_session_run(z->s, PL_SQL_SEAL_APPEND, v, len, NULL);
        if (!rc)
            z->sealed += (int64_t)c.count;
    }
    chunk_free(&c);
    free(ents);
    return rc;
}

/* The checkpoint note for the builder's tree, signed with key. */
static int sign_checkpoint(char **note, size_t *len, const pl_merkle_builder *b, const char *origin,
                           const pl_key *key)
{
    pl_hash root;
    pl_merkle_builder_root(b, root);
    char *body = NULL;
    int rc = pl_checkpoint_body(&body, origin, pl_merkle_builder_size(b), root);
    if (!rc)
        rc = pl_note_sign(note, len, body, origin, key);
    free(body);
    return rc;
}

static int seal_in(pl_db_session *s, pl_checkpoint **out, pl_seal_info *info, pl_ledger *l,
                   const pl_key *key, const char *origin)
{
    PGresult *lock = NULL, *head_res = NULL, *xmin_res = NULL, *fin = NULL;
    char *note = NULL, *default_origin = NULL;
    size_t note_len = 0;
    sealer z = {.s = s};
    pl_log_head head;
    memset(&head, 0, sizeof head); /* read below (head.present) even when a step failed */
    int rc = pl_db_session_run(s, PL_SQL_SEAL_LOCK, NULL, NULL, &lock);
    if (!rc)
        rc = pl_db_session_run(s, PL_SQL_CHECKPOINT_LATEST, NULL, NULL, &head_res);
    if (!rc)
        rc = pl_log_head_read(&head, head_res);
    if (!rc)
        rc = pl_log_head_resume(&z.builder, &head);
    if (!rc && head.present && origin && strcmp(origin, head.origin) != 0)
        rc = pl_fail(PL_EINVAL, "origin: this log is named \"%s\"; it cannot change", head.origin);
    if (!rc && !head.present && !origin) {
        const char *schema = pl_db_schema(l->db);
        size_t n = strlen(schema) + 40;
        if (!(default_origin = malloc(n)))
            rc = pl_fail(PL_ENOMEM, "out of memory");
        else
            snprintf(default_origin, n, "provledger/%s/%.12s", schema, head.ledger_id);
    }
    const char *name = head.present ? head.origin : origin ? origin : default_origin;
    if (!rc)
        rc = pl_db_session_run(s, PL_SQL_SEAL_XMIN, NULL, NULL, &xmin_res);
    const char *horizon = !rc && !PQgetisnull(lock, 0, 0) ? PQgetvalue(lock, 0, 0) : NULL;
    const char *xmin = !rc ? PQgetvalue(xmin_res, 0, 0) : NULL;
    if (!rc) {
        const char *v[2] = {horizon, xmin};
        rc = pl_cursor_declare(s, PL_SQL_SEAL_CANDIDATES, v);
    }
    int64_t size_before = pl_merkle_builder_size(&z.builder);
    if (!rc)
        /* Not ahead: each chunk runs its statements on the session. */
        rc = pl_cursor_each(s, 0, seal_chunk_rows, &z);
    if (!rc && z.sealed > 0) {
        char from[24];
        snprintf(from, sizeof from, "%" PRId64, size_before);
        const char *v[1] = {from};
        rc = pl_db_session_run(s, PL_SQL_SEAL_ENTITIES, v, NULL, NULL);
    }
    /* A new checkpoint when the tree grew, when there is none, or when the
     * latest is not this key's; else only the horizon moves. */
    int sign = !rc && (z.sealed > 0 || !head.present);
    if (!rc && !sign) {
        pl_checkpoint *latest = NULL;
        rc = pl_log_checkpoint(&latest, head.note, head.note_len, head.sealed_at);
        if (!rc && pl_checkpoint_verify(latest, key) != PL_OK)
            sign = 1;
        pl_checkpoint_free(latest);
    }
    if (sign)
        rc = sign_checkpoint(&note, &note_len, &z.builder, name, key);
    if (!rc) {
        pl_hash root;
        pl_merkle_builder_root(&z.builder, root);
        pl_hash frontier[64];
        size_t fc = 0;
        pl_merkle_builder_frontier(&z.builder, frontier, &fc);
        char size_be[8];
        int64_t size = pl_merkle_builder_size(&z.builder);
        for (int k = 0; k < 8; k++)
            size_be[k] = (char)((uint64_t)size >> (56 - 8 * k));
        const char *v[6] = {size_be, (const char *)root, name, note, (const char *)frontier, xmin};
        int len[6] = {8, 32, (int)strlen(name), (int)note_len, (int)(fc * 32), (int)strlen(xmin)};
        rc = pl_db_session_run(s, PL_SQL_SEAL_FINISH, v, len, &fin);
    }
    if (!rc) {
        pl_time at = PQgetlength(fin, 0, 0) == 8 ? pl_wire_get_time(PQgetvalue(fin, 0, 0)) : PL_TIME_ANY;
        rc = pl_db_session_run(s, PL_SQL_TX_COMMIT, NULL, NULL, NULL);
        if (!rc && out)
            rc = note ? pl_log_checkpoint(out, note, note_len, at)
                      : pl_log_checkpoint(out, head.note, head.note_len, head.sealed_at);
    }
    if (!rc && info) {
        info->sealed = z.sealed;
        info->backdated = z.backdated;
        info->tree_size = pl_merkle_builder_size(&z.builder);
    }
    PQclear(lock);
    PQclear(head_res);
    PQclear(xmin_res);
    PQclear(fin);
    free(note);
    free(default_origin);
    pl_buf_free(&z.leaf);
    pl_buf_free(&z.nodes);
    same_time_free(&z.latest);
    return rc;
}

static int seal_call(pl_checkpoint **out, pl_seal_info *info, size_t info_size, pl_ledger *l,
                     const pl_key *key, const char *origin)
{
    if (out)
        *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    if (info && info_size < sizeof(int64_t))
        return pl_fail(PL_EINVAL, "info_size: too small");
    if (!key)
        return pl_fail(PL_EINVAL, "key: NULL");
    if (!pl_key_has_private(key))
        return pl_fail(PL_EINVAL, "key: a public key cannot sign checkpoints");
    int rc = origin ? pl_log_check_origin("origin", origin) : PL_OK;
    if (rc)
        return rc;
    pl_seal_info got = {0};
    pl_db_session s;
    if ((rc = pl_db_session_begin(&s, l->db, PL_CLASS_MAINTENANCE, PL_SQL_TX_SEAL)))
        return rc;
    rc = seal_in(&s, out, &got, l, key, origin);
    pl_db_session_rollback_close(&s);
    if (!rc && info)
        memcpy(info, &got, info_size < sizeof got ? info_size : sizeof got);
    return rc;
}

int pl_seal(pl_checkpoint **out, pl_seal_info *info, size_t info_size, pl_ledger *l, const pl_key *key,
            const char *origin)
{
    PL_GUARD(l, seal_call(out, info, info_size, l, key, origin));
}

static int latest_call(pl_checkpoint **out, pl_ledger *l)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    return pl_log_latest(out, l);
}

int pl_checkpoint_latest(pl_checkpoint **out, pl_ledger *l)
{
    PL_GUARD(l, latest_call(out, l));
}
