/*
 * bulk_import: a resumable bulk import. Kill it at any moment (even with
 * SIGKILL), run it again with the same file, and every record is in the
 * ledger exactly once.
 *
 * How: every record gets an idempotency key made of the input file's name
 * and the record's line number ("changes.jsonl:1234"). The records go in
 * batches (pl_insert_batch, all or nothing), so after a kill each batch is
 * either wholly in the ledger or not at all. A rerun sends every batch
 * again: the library recognises a change whose key is already in the
 * ledger, does not append it again, and hands back the original receipt.
 * Replays are not errors, so the only way to tell them from appends is the
 * handle's counter of appended records (pl_stats_info.inserts), read before
 * and after each batch; this program is single-threaded, so the difference
 * is exactly what that batch appended.
 *
 * The key depends on the file name and the position, so: rename the file
 * and it is a new import; edit a line that was already imported and that
 * line is refused with PL_ECONFLICT (a key reused for a different change);
 * append lines and only the new ones are appended.
 *
 * Input formats (chosen by the file name: ".csv" is CSV, anything else is
 * JSON lines):
 *
 *   JSON lines, one object per line (blank lines are skipped but counted):
 *     {"entity_id": "txn_1", "field_name": "amount", "new_value": 14.99,
 *      "source_type": "bank_import", "valid_from": "2025-01-31T12:00:00Z"}
 *     entity_id, field_name, source_type: required strings;
 *     new_value: required, any JSON value (null too);
 *     valid_from, valid_to (RFC 3339), change_reason: optional strings;
 *     old_value (any JSON), metadata (an object): optional.
 *
 *   CSV (RFC 4180: fields may be "quoted", "" is a quote inside quotes,
 *   quoted fields may span lines), with this header line first:
 *     entity_id,field_name,new_value,source_type
 *     txn_1,amount,14.99,bank_import
 *     txn_1,merchant,"""AMZN MKTP US*2K4""",bank_import
 *   new_value is JSON text (a JSON string is written with its quotes,
 *   which CSV doubles). The key's "line" is the line the record starts on.
 *
 * Usage: bulk_import [-b BATCH] FILE [PG_CONNINFO [REDIS_URL]]
 *   BATCH: changes per transaction, 1..100000 (default 1000).
 *   PG_CONNINFO, REDIS_URL: as merchant_story ($PROVLEDGER_PG,
 *   $PROVLEDGER_REDIS); $PROVLEDGER_SCHEMA picks the schema (default
 *   "provledger").
 * A progress bar is drawn on stderr; the last line on stdout says how many
 * records were appended and how many were already there. Exit status 0
 * when everything is in, 1 on an error (the message names the line), 2 on a
 * usage error.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <provledger.h>

/* One record read from the input, owning its strings (the library copies
 * what it needs during the call, so they are freed after each batch). */
typedef struct {
    long line;
    char *entity_id, *field_name, *new_value, *old_value, *source_type;
    char *change_reason, *metadata, *valid_from, *valid_to, *key;
} row;

static void row_free(row *r)
{
    free(r->entity_id);
    free(r->field_name);
    free(r->new_value);
    free(r->old_value);
    free(r->source_type);
    free(r->change_reason);
    free(r->metadata);
    free(r->valid_from);
    free(r->valid_to);
    free(r->key);
    memset(r, 0, sizeof *r);
}

static char *dup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

/* A growable line buffer: getline() is POSIX, not C11. */
typedef struct {
    char *data;
    size_t len, cap;
} buf;

static int buf_put(buf *b, char c)
{
    if (b->len + 1 >= b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 0;
}

/* Reads one line without its newline; returns 0 at end of file. */
static int read_line(buf *b, FILE *f)
{
    int c;
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
    while ((c = getc(f)) != EOF && c != '\n')
        if (buf_put(b, (char)c))
            return -1;
    if (b->len && b->data[b->len - 1] == '\r')
        b->data[--b->len] = '\0';
    return c == EOF && b->len == 0 ? 0 : 1;
}

typedef struct {
    FILE *f;
    int csv;
    long line;       /* the line the next record starts on */
    buf b;
} reader;

/* A JSON member as text: strings unquoted (they are keys and times), other
 * values compact JSON (they are the ledger's values). */
static char *member(json_t *o, const char *name, int as_json)
{
    json_t *v = json_object_get(o, name);
    if (!v || (json_is_null(v) && strcmp(name, "new_value") != 0))
        return NULL;
    if (!as_json && json_is_string(v))
        return dup(json_string_value(v));
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static int read_jsonl(row *r, reader *rd, char *err, size_t errlen)
{
    int got;
    while ((got = read_line(&rd->b, rd->f)) > 0) {
        long line = rd->line++;
        if (rd->b.len == 0)
            continue;
        json_error_t je;
        json_t *o = json_loads(rd->b.data, 0, &je);
        if (!json_is_object(o)) {
            snprintf(err, errlen, "line %ld: %s", line, o ? "not a JSON object" : je.text);
            json_decref(o);
            return -1;
        }
        r->line = line;
        r->entity_id = member(o, "entity_id", 0);
        r->field_name = member(o, "field_name", 0);
        r->new_value = member(o, "new_value", 1);
        r->old_value = member(o, "old_value", 1);
        r->source_type = member(o, "source_type", 0);
        r->change_reason = member(o, "change_reason", 0);
        r->metadata = member(o, "metadata", 1);
        r->valid_from = member(o, "valid_from", 0);
        r->valid_to = member(o, "valid_to", 0);
        json_decref(o);
        return 1;
    }
    return got;
}

/* One RFC 4180 record into fields[0..max); returns the field count, 0 at
 * end of file, -1 on an error. Quoted fields may hold commas, quotes ("")
 * and line breaks, so this reads characters, not lines. */
static int read_csv_record1(reader *rd, char **fields, int max, char *err, size_t errlen);

/* As read_csv_record1(), freeing the fields already read on an error. */
static int read_csv_record(reader *rd, char **fields, int max, char *err, size_t errlen)
{
    int n = read_csv_record1(rd, fields, max, err, errlen);
    if (n < 0)
        for (int i = 0; i < max; i++) {
            free(fields[i]);
            fields[i] = NULL;
        }
    return n;
}

static int read_csv_record1(reader *rd, char **fields, int max, char *err, size_t errlen)
{
    int n = 0, c, quoted = 0, any = 0;
    rd->b.len = 0;
    buf_put(&rd->b, '\0'); /* make data non-NULL */
    rd->b.len = 0;
    for (;;) {
        c = getc(rd->f);
        if (c == EOF && !any)
            return 0;
        any = 1;
        if (quoted) {
            if (c == EOF) {
                snprintf(err, errlen, "line %ld: unterminated quoted field", rd->line);
                return -1;
            }
            if (c == '"') {
                int d = getc(rd->f);
                if (d == '"') {
                    buf_put(&rd->b, '"');
                    continue;
                }
                ungetc(d, rd->f);
                quoted = 0;
                continue;
            }
            if (c == '\n')
                rd->line++;
            buf_put(&rd->b, (char)c);
            continue;
        }
        if (c == '"' && rd->b.len == 0) {
            quoted = 1;
            continue;
        }
        if (c == ',' || c == '\n' || c == EOF) {
            if (rd->b.len && rd->b.data[rd->b.len - 1] == '\r' && c != ',')
                rd->b.data[--rd->b.len] = '\0';
            if (n == max) {
                snprintf(err, errlen, "line %ld: more than %d fields", rd->line, max);
                return -1;
            }
            if (!(fields[n++] = dup(rd->b.len ? rd->b.data : "")))
                return -1;
            rd->b.len = 0;
            if (c != ',') {
                rd->line++;
                return n;
            }
            continue;
        }
        buf_put(&rd->b, (char)c);
    }
}

static int read_csv(row *r, reader *rd, char *err, size_t errlen)
{
    char *f[4] = {NULL};
    long line = rd->line;
    int n = read_csv_record(rd, f, 4, err, errlen);
    if (n <= 0)
        return n;
    if (n != 4) {
        snprintf(err, errlen, "line %ld: %d fields, expected 4", line, n);
        for (int i = 0; i < n; i++)
            free(f[i]);
        return -1;
    }
    r->line = line;
    r->entity_id = f[0];
    r->field_name = f[1];
    r->new_value = f[2];
    r->source_type = f[3];
    return 1;
}

static int read_row(row *r, reader *rd, char *err, size_t errlen)
{
    return rd->csv ? read_csv(r, rd, err, errlen) : read_jsonl(r, rd, err, errlen);
}

/* Draws "[#####.....]  42%  8400 records" over itself on stderr. */
static void progress(long done_bytes, long total_bytes, long records)
{
    int pct = total_bytes > 0 ? (int)(100.0 * (double)done_bytes / (double)total_bytes) : 100;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\r[%s] %3d%%  %ld records", bar, pct, records);
    fflush(stderr);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "\nbulk_import: %s: %s: %s\n", what, pl_strerror(rc), pl_errmsg());
    return 1;
}

/* Sends one batch; counts what it appended and what was already there. */
static int send_batch(pl_ledger *l, row *rows, pl_change *ch, size_t n, long *appended,
                      long *replayed)
{
    for (size_t i = 0; i < n; i++) {
        row *r = &rows[i];
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = r->entity_id;
        c.field_name = r->field_name;
        c.new_value = r->new_value;
        c.old_value = r->old_value;
        c.source_type = r->source_type;
        c.change_reason = r->change_reason;
        c.metadata = r->metadata;
        c.idempotency_key = r->key;
        if ((r->valid_from && pl_time_parse(&c.valid_from, r->valid_from)) ||
            (r->valid_to && pl_time_parse(&c.valid_to, r->valid_to))) {
            char what[64];
            snprintf(what, sizeof what, "line %ld: valid_from/valid_to", r->line);
            return fail(what, PL_EINVAL);
        }
        ch[i] = c;
    }
    pl_stats_info before, after;
    pl_stats(&before, l, sizeof before);
    int rc = pl_insert_batch(NULL, l, ch, n);
    if (rc) {
        /* The library names a bad change by its index in the batch; the
         * user needs the line. Nothing of this batch was written. */
        char what[96];
        long index;
        if (rc == PL_EINVAL && sscanf(pl_errmsg(), "changes[%ld]", &index) == 1 && index >= 0 &&
            (size_t)index < n)
            snprintf(what, sizeof what, "line %ld (nothing of lines %ld..%ld written)",
                     rows[index].line, rows[0].line, rows[n - 1].line);
        else
            snprintf(what, sizeof what, "lines %ld..%ld (nothing of them written)", rows[0].line,
                     rows[n - 1].line);
        return fail(what, rc);
    }
    pl_stats(&after, l, sizeof after);
    long added = (long)(after.inserts - before.inserts);
    *appended += added;
    *replayed += (long)n - added;
    return 0;
}

int main(int argc, char **argv)
{
    size_t batch = 1000;
    int argi = 1;
    if (argi + 1 < argc && strcmp(argv[argi], "-b") == 0) {
        char *end;
        errno = 0;
        unsigned long b = strtoul(argv[argi + 1], &end, 10);
        if (errno || *end || b < 1 || b > PL_MAX_BATCH) {
            fprintf(stderr, "bulk_import: -b: 1..%d\n", PL_MAX_BATCH);
            return 2;
        }
        batch = b;
        argi += 2;
    }
    const char *path = argi < argc ? argv[argi] : NULL;
    const char *pg = argi + 1 < argc ? argv[argi + 1] : getenv("PROVLEDGER_PG");
    const char *redis = argi + 2 < argc ? argv[argi + 2] : getenv("PROVLEDGER_REDIS");
    const char *schema = getenv("PROVLEDGER_SCHEMA");
    if (!path || argc > argi + 3 || !pg || !*pg) {
        fprintf(stderr, "usage: bulk_import [-b BATCH] FILE [PG_CONNINFO [REDIS_URL]]\n");
        return 2;
    }

    reader rd = {fopen(path, "rb"), 0, 1, {NULL, 0, 0}};
    if (!rd.f) {
        fprintf(stderr, "bulk_import: %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t plen = strlen(path);
    rd.csv = plen >= 4 && strcmp(path + plen - 4, ".csv") == 0;
    /* The file's identity in the keys is its base name, so the same file
     * imported from another directory is still recognised. */
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    fseek(rd.f, 0, SEEK_END);
    long total = ftell(rd.f);
    rewind(rd.f);

    char err[256] = "";
    if (rd.csv) { /* the header line is not a record */
        char *h[4] = {NULL};
        int n = read_csv_record(&rd, h, 4, err, sizeof err);
        int ok = n == 4 && strcmp(h[0], "entity_id") == 0 && strcmp(h[1], "field_name") == 0 &&
                 strcmp(h[2], "new_value") == 0 && strcmp(h[3], "source_type") == 0;
        for (int i = 0; i < 4; i++)
            free(h[i]);
        if (!ok) {
            fprintf(stderr, "bulk_import: %s: the first line must be "
                            "entity_id,field_name,new_value,source_type\n", path);
            fclose(rd.f);
            free(rd.b.data);
            return 1;
        }
    }

    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = pg;
    cfg.redis_url = (redis && *redis) ? redis : NULL;
    if (schema && *schema)
        cfg.schema = schema;
    pl_ledger *l = NULL;
    int rc = pl_open(&l, &cfg);
    if (rc == PL_OK)
        rc = pl_migrate(l);
    if (rc) {
        fail("pl_open/pl_migrate", rc);
        pl_close(l);
        fclose(rd.f);
        free(rd.b.data);
        return 1;
    }

    row *rows = calloc(batch, sizeof *rows);
    pl_change *ch = calloc(batch, sizeof *ch);
    long records = 0, appended = 0, replayed = 0;
    int status = rows && ch ? 0 : 1;
    size_t n = 0;
    while (status == 0) {
        int got = read_row(&rows[n], &rd, err, sizeof err);
        if (got < 0) {
            fprintf(stderr, "\nbulk_import: %s: %s\n", path, err[0] ? err : "out of memory");
            status = 1;
            break;
        }
        if (got > 0) {
            char key[PL_MAX_KEY_BYTES];
            snprintf(key, sizeof key, "%s:%ld", base, rows[n].line);
            rows[n].key = dup(key);
            n++;
        }
        if (n == batch || (got == 0 && n > 0)) {
            status = send_batch(l, rows, ch, n, &appended, &replayed);
            records += (long)n;
            for (size_t i = 0; i < n; i++)
                row_free(&rows[i]);
            n = 0;
            progress(ftell(rd.f), total, records);
        }
        if (got == 0)
            break;
    }
    for (size_t i = 0; i < n; i++)
        row_free(&rows[i]);
    fputc('\n', stderr);
    if (status == 0)
        printf("%ld records: %ld appended, %ld already in the ledger\n", records, appended,
               replayed);
    free(rows);
    free(ch);
    free(rd.b.data);
    fclose(rd.f);
    pl_close(l);
    return status;
}
