/* Exports (pl_export) and their verification (pl_verify_export): the
 * ledger and its log as JSON-lines files an auditor checks with no
 * database (README "Export format"). Records are written sealed first,
 * in leaf order, so the verifier reads records and leaves in step. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cursor.h"
#include "error.h"
#include "ledger.h"
#include "verify.h"
#include "wire.h"

#define EXPORT_FORMAT "provledger-export"
#define EXPORT_VERSION 1

/* ------------------------------------------------------------------------ */
/* Shared encodings                                                          */
/* ------------------------------------------------------------------------ */

static json_t *hex(const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[((const unsigned char *)p)[i] >> 4];
        s[2 * i + 1] = digits[((const unsigned char *)p)[i] & 15];
    }
    s[2 * n] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* Decodes hex of exactly n bytes (n == 0: any even length up to cap). */
static int unhex(unsigned char *out, size_t cap, size_t *len, const char *s)
{
    size_t k = strlen(s);
    if (k % 2 || k / 2 > cap)
        return -1;
    for (size_t i = 0; i < k; i += 2) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[i + j];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i / 2] = (unsigned char)v;
    }
    *len = k / 2;
    return 0;
}

static json_t *time_json(pl_time t)
{
    if (t == PL_TIME_ANY)
        return json_string("-infinity");
    char b[PL_TIME_BUFSIZE];
    pl_time_format(b, sizeof b, t);
    return json_string(b);
}

static int time_parse(pl_time *t, const json_t *j)
{
    const char *s = json_string_value(j);
    if (!s)
        return -1;
    if (strcmp(s, "-infinity") == 0) {
        *t = PL_TIME_ANY;
        return 0;
    }
    return pl_time_parse(t, s) == PL_OK ? 0 : -1;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ------------------------------------------------------------------------ */
/* pl_export                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct exporter {
    pl_db_session s;
    const char *dir;
    FILE *f;
    int64_t records, leaves;
} exporter;

static int open_file(exporter *e, const char *name)
{
    size_t n = strlen(e->dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path)
        return pl_fail(PL_ENOMEM, "out of memory");
    snprintf(path, n, "%s/%s", e->dir, name);
    e->f = fopen(path, "w");
    int rc = e->f ? PL_OK : pl_fail(PL_EINVAL, "dir: cannot write %s: %s", path, strerror(errno));
    free(path);
    return rc;
}

static int close_file(exporter *e)
{
    int bad = ferror(e->f) | fclose(e->f);
    e->f = NULL;
    return bad ? pl_fail(PL_EINVAL, "dir: writing %s failed: %s", e->dir, strerror(errno)) : PL_OK;
}

static int put_line(exporter *e, json_t *j)
{
    if (!j)
        return pl_fail(PL_ENOMEM, "out of memory");
    int rc = json_dumpf(j, e->f, JSON_COMPACT | JSON_ENSURE_ASCII) == 0 && fputc('\n', e->f) != EOF
                 ? PL_OK
                 : pl_fail(PL_EINVAL, "dir: writing the export failed: %s", strerror(errno));
    json_decref(j);
    return rc;
}

static int64_t i64(const PGresult *r, int row, int c)
{
    return PQgetlength(r, row, c) == 8 ? pl_get_i64(PQgetvalue(r, row, c)) : 0;
}

static int export_records(void *ctx, const PGresult *r)
{
    exporter *e = ctx;
    int rc = PL_OK;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        pl_leaf_record rec;
        char *json[3];
        if ((rc = pl_log_row_record(&rec, json, r, i, 1)))
            break;
        json_t *o = json_object();
        json_object_set_new(o, "leaf_index", PQgetisnull(r, i, 0) ? json_null() : json_integer(i64(r, i, 0)));
        json_object_set_new(o, "id", json_integer(rec.id));
        json_object_set_new(o, "entity_id", json_string(rec.entity_id));
        json_object_set_new(o, "field_name", json_string(rec.field_name));
        json_object_set_new(o, "transaction_time", time_json(rec.transaction_time));
        json_object_set_new(o, "valid_from", time_json(rec.valid_from));
        json_object_set_new(o, "valid_to", time_json(rec.valid_to));
        json_object_set_new(o, "source_type", json_string(rec.source_type));
        json_object_set_new(o, "change_reason", str_or_null(rec.change_reason));
        json_object_set_new(o, "old_value", str_or_null(rec.old_value));
        json_object_set_new(o, "new_value", str_or_null(rec.new_value));
        json_object_set_new(o, "metadata", str_or_null(rec.metadata));
        json_object_set_new(o, "erased", json_boolean(PQgetvalue(r, i, 12)[0]));
        json_object_set_new(o, "commitments", PQgetlength(r, i, 13) == PL_COMMITMENTS_SIZE
                                                  ? hex(PQgetvalue(r, i, 13), PL_COMMITMENTS_SIZE)
                                                  : json_null());
        pl_log_json_free(json);
        rc = put_line(e, o);
        e->records++;
    }
    return rc;
}

static int export_log(void *ctx, const PGresult *r)
{
    exporter *e = ctx;
    int rc = PL_OK;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "leaf_index", json_integer(i64(r, i, 0)));
        json_object_set_new(o, "kind", json_integer(PQgetvalue(r, i, 1)[1]));
        json_object_set_new(o, "item_id", json_integer(i64(r, i, 2)));
        json_object_set_new(o, "leaf_hash", hex(PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3)));
        json_object_set_new(o, "nodes", PQgetisnull(r, i, 4) ? json_null()
                                        : hex(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4)));
        rc = put_line(e, o);
        e->leaves++;
    }
    return rc;
}

static int export_keys(void *ctx, const PGresult *r)
{
    exporter *e = ctx;
    int rc = PL_OK;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "entity_id", json_string(PQgetvalue(r, i, 0)));
        json_object_set_new(o, "key", hex(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1)));
        rc = put_line(e, o);
    }
    return rc;
}

/* Writes a cursor's rows to file `name` through fn. */
static int export_cursor(exporter *e, const char *name, int stmt, int (*fn)(void *, const PGresult *))
{
    int rc = open_file(e, name);
    if (!rc)
        rc = pl_cursor_declare(&e->s, stmt, NULL);
    if (!rc)
        rc = pl_cursor_each(&e->s, PL_CURSOR_AHEAD, fn, e);
    if (e->f) {
        int crc = close_file(e);
        if (!rc)
            rc = crc;
    }
    return rc;
}

static int export_small(exporter *e)
{
    PGresult *cps = NULL, *ers = NULL;
    int rc = pl_db_session_run(&e->s, PL_SQL_VERIFY_CHECKPOINTS, NULL, NULL, &cps);
    if (!rc)
        rc = open_file(e, "checkpoints.jsonl");
    for (int i = 0; !rc && i < PQntuples(cps); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "tree_size", json_integer(i64(cps, i, 1)));
        json_object_set_new(o, "root_hash", hex(PQgetvalue(cps, i, 2), (size_t)PQgetlength(cps, i, 2)));
        json_object_set_new(o, "note", json_stringn(PQgetvalue(cps, i, 3), (size_t)PQgetlength(cps, i, 3)));
        json_object_set_new(o, "sealed_at", time_json(pl_wire_get_time(PQgetvalue(cps, i, 4))));
        rc = put_line(e, o);
    }
    if (e->f) {
        int crc = close_file(e);
        rc = rc ? rc : crc;
    }
    /* The latest checkpoint alone, as `provledger checkpoint` prints it. */
    int last = cps ? PQntuples(cps) - 1 : -1;
    if (!rc && last >= 0 && !(rc = open_file(e, "checkpoint"))) {
        fwrite(PQgetvalue(cps, last, 3), 1, (size_t)PQgetlength(cps, last, 3), e->f);
        rc = close_file(e);
    }
    PQclear(cps);
    if (!rc)
        rc = pl_db_session_run(&e->s, PL_SQL_EXPORT_ERASURES, NULL, NULL, &ers);
    if (!rc)
        rc = open_file(e, "erasures.jsonl");
    for (int i = 0; !rc && i < PQntuples(ers); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(i64(ers, i, 0)));
        json_object_set_new(o, "entity_id", json_string(PQgetvalue(ers, i, 1)));
        json_object_set_new(o, "erased_at", time_json(pl_wire_get_time(PQgetvalue(ers, i, 2))));
        json_object_set_new(o, "reason", PQgetisnull(ers, i, 3) ? json_null() : json_string(PQgetvalue(ers, i, 3)));
        rc = put_line(e, o);
    }
    if (e->f) {
        int crc = close_file(e);
        rc = rc ? rc : crc;
    }
    PQclear(ers);
    return rc;
}

static int export_call(int64_t *records, pl_ledger *l, const char *dir)
{
    if (records)
        *records = 0;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    if (!dir || !*dir)
        return pl_fail(PL_EINVAL, "dir: NULL or empty");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return pl_fail(PL_EINVAL, "dir: cannot create %s: %s", dir, strerror(errno));
    exporter e = {.dir = dir};
    /* One snapshot for every file: they describe one instant. */
    int rc = pl_db_session_begin(&e.s, l->db, PL_CLASS_HEAVY, PL_SQL_TX_READ_SNAPSHOT);
    if (rc)
        return rc;
    rc = export_small(&e);
    if (!rc)
        rc = export_cursor(&e, "keys.jsonl", PL_SQL_EXPORT_KEYS, export_keys);
    if (!rc)
        rc = export_cursor(&e, "log.jsonl", PL_SQL_EXPORT_LOG, export_log);
    if (!rc)
        rc = export_cursor(&e, "records.jsonl", PL_SQL_EXPORT_RECORDS, export_records);
    if (!rc && !(rc = open_file(&e, "manifest.json"))) {
        json_t *m = json_pack("{s:s,s:i,s:I,s:I,s:s}", "format", EXPORT_FORMAT, "version", EXPORT_VERSION,
                              "records", (json_int_t)e.records, "leaves", (json_int_t)e.leaves, "schema",
                              pl_db_schema(l->db));
        rc = put_line(&e, m);
        int crc = close_file(&e);
        rc = rc ? rc : crc;
    }
    pl_db_session_rollback_close(&e.s);
    if (!rc && records)
        *records = e.records;
    return rc;
}

int pl_export(int64_t *records, pl_ledger *l, const char *dir)
{
    PL_GUARD(l, export_call(records, l, dir));
}

/* ------------------------------------------------------------------------ */
/* Verifying an export                                                       */
/* ------------------------------------------------------------------------ */

typedef struct lines {
    FILE *f;
    char *buf;
    size_t cap;
    int64_t number;
    const char *name;
} lines;

static int lines_open(lines *ls, const char *dir, const char *name)
{
    memset(ls, 0, sizeof *ls);
    ls->name = name;
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path)
        return pl_fail(PL_ENOMEM, "out of memory");
    snprintf(path, n, "%s/%s", dir, name);
    ls->f = fopen(path, "r");
    int rc = ls->f ? PL_OK : pl_fail(PL_EINVAL, "export_dir: cannot read %s: %s", path, strerror(errno));
    free(path);
    return rc;
}

/* The next line as JSON (NULL at the end); PL_EINVAL for a bad line. */
static int lines_next(lines *ls, json_t **out)
{
    *out = NULL;
    ssize_t n = getline(&ls->buf, &ls->cap, ls->f);
    if (n < 0)
        return ferror(ls->f) ? pl_fail(PL_EINVAL, "export_dir: reading %s failed", ls->name) : PL_OK;
    ls->number++;
    json_error_t err;
    *out = json_loadb(ls->buf, (size_t)n, 0, &err);
    if (!*out || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return pl_fail(PL_EINVAL, "export_dir: %s line %lld is not a JSON object", ls->name,
                       (long long)ls->number);
    }
    return PL_OK;
}

static void lines_close(lines *ls)
{
    if (ls->f)
        fclose(ls->f);
    free(ls->buf);
    memset(ls, 0, sizeof *ls);
}

typedef struct key_entry {
    char *entity;
    unsigned char key[32];
} key_entry;

typedef struct unsealed_entry {
    int64_t id;
    char *entity;
    pl_time tt;
    pl_time sealed_max; /* PL_TIME_ANY: none */
} unsealed_entry;

typedef struct erasure_entry {
    int64_t id;
    char *entity;
    pl_time at;
    char *reason;
} erasure_entry;

static int key_cmp(const void *a, const void *b)
{
    return strcmp(((const key_entry *)a)->entity, ((const key_entry *)b)->entity);
}

static int unsealed_cmp(const void *a, const void *b)
{
    return strcmp(((const unsealed_entry *)a)->entity, ((const unsealed_entry *)b)->entity);
}

typedef struct xsource {
    pl_vstate *v;
    const char *dir;
    key_entry *keys;
    size_t nkeys;
    unsealed_entry *uns;
    size_t nuns;
    erasure_entry *ers;
    size_t ners;
} xsource;

static int bad_line(const lines *ls, const char *what)
{
    return pl_fail(PL_EINVAL, "export_dir: %s line %lld: %s", ls->name, (long long)ls->number, what);
}

static int load_checkpoints(xsource *x)
{
    lines ls;
    int rc = lines_open(&ls, x->dir, "checkpoints.jsonl");
    int64_t row = 0;
    while (!rc) {
        json_t *o;
        if ((rc = lines_next(&ls, &o)) || !o)
            break;
        unsigned char root[32];
        size_t n = 0;
        const char *rh = json_string_value(json_object_get(o, "root_hash"));
        const char *note = json_string_value(json_object_get(o, "note"));
        json_t *size = json_object_get(o, "tree_size");
        if (!rh || !note || !json_is_integer(size) || unhex(root, 32, &n, rh) || n != 32)
            rc = bad_line(&ls, "needs tree_size, root_hash (64 hex digits) and note");
        else
            rc = pl_vstate_add_checkpoint(x->v, ++row, json_integer_value(size), root, note,
                                          json_string_length(json_object_get(o, "note")));
        json_decref(o);
    }
    lines_close(&ls);
    return rc;
}

static int load_keys(xsource *x)
{
    lines ls;
    int rc = lines_open(&ls, x->dir, "keys.jsonl");
    size_t cap = 0;
    while (!rc) {
        json_t *o;
        if ((rc = lines_next(&ls, &o)) || !o)
            break;
        const char *entity = json_string_value(json_object_get(o, "entity_id"));
        const char *k = json_string_value(json_object_get(o, "key"));
        key_entry e = {0};
        size_t n = 0;
        if (!entity || !k || unhex(e.key, 32, &n, k) || n != 32) {
            rc = bad_line(&ls, "needs entity_id and key (64 hex digits)");
        } else {
            if (x->nkeys == cap) {
                cap = cap ? cap * 2 : 256;
                void *p = realloc(x->keys, cap * sizeof *x->keys);
                if (!p)
                    rc = pl_fail(PL_ENOMEM, "out of memory");
                else
                    x->keys = p;
            }
            if (!rc && !(e.entity = strdup(entity)))
                rc = pl_fail(PL_ENOMEM, "out of memory");
            if (!rc)
                x->keys[x->nkeys++] = e;
        }
        json_decref(o);
    }
    lines_close(&ls);
    if (!rc && x->nkeys)
        qsort(x->keys, x->nkeys, sizeof *x->keys, key_cmp);
    return rc;
}

static int load_erasures(xsource *x)
{
    lines ls;
    int rc = lines_open(&ls, x->dir, "erasures.jsonl");
    size_t cap = 0;
    while (!rc) {
        json_t *o;
        if ((rc = lines_next(&ls, &o)) || !o)
            break;
        erasure_entry e = {0};
        const char *entity = json_string_value(json_object_get(o, "entity_id"));
        const char *reason = json_string_value(json_object_get(o, "reason"));
        if (!json_is_integer(json_object_get(o, "id")) || !entity ||
            time_parse(&e.at, json_object_get(o, "erased_at"))) {
            rc = bad_line(&ls, "needs id, entity_id and erased_at");
        } else {
            e.id = json_integer_value(json_object_get(o, "id"));
            if (x->ners == cap) {
                cap = cap ? cap * 2 : 16;
                void *p = realloc(x->ers, cap * sizeof *x->ers);
                if (!p)
                    rc = pl_fail(PL_ENOMEM, "out of memory");
                else
                    x->ers = p;
            }
            if (!rc && (!(e.entity = strdup(entity)) || (reason && !(e.reason = strdup(reason))))) {
                free(e.entity);
                rc = pl_fail(PL_ENOMEM, "out of memory");
            }
            if (!rc)
                x->ers[x->ners++] = e;
        }
        json_decref(o);
    }
    lines_close(&ls);
    return rc;
}

/* A record line into a vrow (strings borrowed from o). */
static int parse_record(pl_vrow *r, unsigned char *commitments, const json_t *o, const lines *ls)
{
    memset(r, 0, sizeof *r);
    pl_leaf_record *c = &r->rec;
    json_t *id = json_object_get(o, "id");
    c->entity_id = json_string_value(json_object_get(o, "entity_id"));
    c->field_name = json_string_value(json_object_get(o, "field_name"));
    c->source_type = json_string_value(json_object_get(o, "source_type"));
    c->change_reason = json_string_value(json_object_get(o, "change_reason"));
    c->old_value = json_string_value(json_object_get(o, "old_value"));
    c->new_value = json_string_value(json_object_get(o, "new_value"));
    c->metadata = json_string_value(json_object_get(o, "metadata"));
    if (!json_is_integer(id) || !c->entity_id || !c->field_name || !c->source_type ||
        time_parse(&c->transaction_time, json_object_get(o, "transaction_time")) ||
        time_parse(&c->valid_from, json_object_get(o, "valid_from")) ||
        time_parse(&c->valid_to, json_object_get(o, "valid_to")))
        return bad_line(ls, "a record needs id, entity_id, field_name, source_type and its three times");
    c->id = json_integer_value(id);
    r->present = 1;
    r->erased = json_is_true(json_object_get(o, "erased"));
    const char *cm = json_string_value(json_object_get(o, "commitments"));
    size_t n = 0;
    if (cm && !unhex(commitments, PL_COMMITMENTS_SIZE, &n, cm) && n == PL_COMMITMENTS_SIZE)
        r->commitments = commitments;
    return PL_OK;
}

static json_int_t leaf_of(const json_t *o)
{
    json_t *li = json_object_get(o, "leaf_index");
    return json_is_integer(li) ? json_integer_value(li) : -1;
}

/* Pass 1: the unsealed records (they come last), for the back-date check. */
static int load_unsealed(xsource *x)
{
    lines ls;
    int rc = lines_open(&ls, x->dir, "records.jsonl");
    size_t cap = 0;
    while (!rc) {
        json_t *o;
        if ((rc = lines_next(&ls, &o)) || !o)
            break;
        if (leaf_of(o) < 0) {
            pl_vrow r;
            unsigned char cm[PL_COMMITMENTS_SIZE];
            rc = parse_record(&r, cm, o, &ls);
            if (!rc && x->nuns == cap) {
                cap = cap ? cap * 2 : 64;
                void *p = realloc(x->uns, cap * sizeof *x->uns);
                if (!p)
                    rc = pl_fail(PL_ENOMEM, "out of memory");
                else
                    x->uns = p;
            }
            if (!rc) {
                unsealed_entry *u = &x->uns[x->nuns];
                u->id = r.rec.id;
                u->tt = r.rec.transaction_time;
                u->sealed_max = PL_TIME_ANY;
                if (!(u->entity = strdup(r.rec.entity_id)))
                    rc = pl_fail(PL_ENOMEM, "out of memory");
                else
                    x->nuns++;
            }
        }
        json_decref(o);
    }
    lines_close(&ls);
    if (!rc && x->nuns)
        qsort(x->uns, x->nuns, sizeof *x->uns, unsealed_cmp);
    return rc;
}

/* A sealed record's time raises its entity's sealed maximum. */
static void note_sealed(xsource *x, const char *entity, pl_time tt)
{
    if (!x->nuns)
        return;
    unsealed_entry probe = {.entity = (char *)entity};
    unsealed_entry *u = bsearch(&probe, x->uns, x->nuns, sizeof *x->uns, unsealed_cmp);
    if (!u)
        return;
    /* Every unsealed record of that entity (adjacent after sorting). */
    while (u > x->uns && strcmp(u[-1].entity, entity) == 0)
        u--;
    for (; u < x->uns + x->nuns && strcmp(u->entity, entity) == 0; u++)
        if (u->sealed_max == PL_TIME_ANY || tt > u->sealed_max)
            u->sealed_max = tt;
}

static int leaves_pass(xsource *x)
{
    lines log, recs;
    int rc = lines_open(&log, x->dir, "log.jsonl");
    if (!rc && (rc = lines_open(&recs, x->dir, "records.jsonl"))) {
        lines_close(&log);
        return rc;
    }
    if (rc)
        return rc;
    json_t *next = NULL; /* the record line read ahead */
    rc = lines_next(&recs, &next);
    while (!rc && !x->v->stopped) {
        json_t *o;
        if ((rc = lines_next(&log, &o)) || !o)
            break;
        pl_vleaf leaf;
        memset(&leaf, 0, sizeof leaf);
        unsigned char nodes[33 * 16];
        const char *h = json_string_value(json_object_get(o, "leaf_hash"));
        const char *nd = json_string_value(json_object_get(o, "nodes"));
        size_t n = 0;
        if (!json_is_integer(json_object_get(o, "leaf_index")) || !json_is_integer(json_object_get(o, "kind")) ||
            !json_is_integer(json_object_get(o, "item_id")) || !h || unhex(leaf.stored_hash, 32, &n, h) ||
            n != 32 || (nd && unhex(nodes, sizeof nodes, &leaf.nodes_len, nd))) {
            json_decref(o);
            rc = bad_line(&log, "needs leaf_index, kind, item_id, leaf_hash and hex nodes");
            break;
        }
        leaf.index = json_integer_value(json_object_get(o, "leaf_index"));
        leaf.kind = (int)json_integer_value(json_object_get(o, "kind"));
        leaf.item_id = json_integer_value(json_object_get(o, "item_id"));
        leaf.check_nodes = 1;
        leaf.nodes = nodes;
        json_decref(o);
        if (leaf.kind == PL_LEAF_ERASURE) {
            for (size_t i = 0; i < x->ners; i++) {
                if (x->ers[i].id == leaf.item_id) {
                    leaf.erasure.present = 1;
                    leaf.erasure.entity_id = x->ers[i].entity;
                    leaf.erasure.erased_at = x->ers[i].at;
                    leaf.erasure.reason = x->ers[i].reason;
                }
            }
            rc = pl_vstate_leaf(x->v, &leaf);
            continue;
        }
        /* Records of earlier positions left over: the same id twice. */
        while (!rc && next && leaf_of(next) >= 0 && leaf_of(next) < leaf.index) {
            pl_vleaf dup = leaf;
            unsigned char cm[PL_COMMITMENTS_SIZE];
            dup.index = leaf_of(next);
            if (!(rc = parse_record(&dup.row, cm, next, &recs)))
                rc = pl_vstate_leaf(x->v, &dup);
            json_decref(next);
            if (!rc)
                rc = lines_next(&recs, &next);
        }
        unsigned char cm[PL_COMMITMENTS_SIZE];
        json_t *mine = NULL;
        if (!rc && next && leaf_of(next) == leaf.index) {
            mine = next;
            if (!(rc = parse_record(&leaf.row, cm, mine, &recs))) {
                key_entry probe = {.entity = (char *)leaf.row.rec.entity_id};
                key_entry *k = x->nkeys ? bsearch(&probe, x->keys, x->nkeys, sizeof *x->keys, key_cmp) : NULL;
                leaf.row.key = k ? k->key : NULL;
                note_sealed(x, leaf.row.rec.entity_id, leaf.row.rec.transaction_time);
            }
            if (!rc)
                rc = lines_next(&recs, &next);
        }
        if (!rc)
            rc = pl_vstate_leaf(x->v, &leaf);
        json_decref(mine);
    }
    json_decref(next);
    lines_close(&log);
    lines_close(&recs);
    return rc;
}

int pl_verify_export(pl_vstate *v, const char *dir)
{
    xsource x = {.v = v, .dir = dir};
    lines ls;
    int rc = lines_open(&ls, dir, "manifest.json");
    if (!rc) {
        json_t *m;
        rc = lines_next(&ls, &m);
        const char *format = m ? json_string_value(json_object_get(m, "format")) : NULL;
        if (!rc && (!format || strcmp(format, EXPORT_FORMAT) != 0 ||
                    json_integer_value(json_object_get(m, "version")) != EXPORT_VERSION))
            rc = pl_fail(PL_EINVAL, "export_dir: %s is not a provledger export of version %d", dir,
                         EXPORT_VERSION);
        json_decref(m);
        lines_close(&ls);
    }
    if (!rc)
        rc = load_checkpoints(&x);
    if (!rc)
        rc = load_keys(&x);
    if (!rc)
        rc = load_erasures(&x);
    if (!rc)
        rc = load_unsealed(&x);
    if (!rc) {
        pl_vstate_begin(v);
        rc = leaves_pass(&x);
    }
    if (!rc && !v->stopped) {
        pl_vstate_end(v);
        for (size_t i = 0; i < x.nuns; i++)
            pl_vstate_unsealed(v, x.uns[i].id, x.uns[i].entity, x.uns[i].tt,
                               x.uns[i].sealed_max != PL_TIME_ANY && x.uns[i].sealed_max >= x.uns[i].tt);
    }
    for (size_t i = 0; i < x.nkeys; i++)
        free(x.keys[i].entity);
    for (size_t i = 0; i < x.nuns; i++)
        free(x.uns[i].entity);
    for (size_t i = 0; i < x.ners; i++) {
        free(x.ers[i].entity);
        free(x.ers[i].reason);
    }
    free(x.keys);
    free(x.uns);
    free(x.ers);
    return rc;
}
