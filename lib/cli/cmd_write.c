/*
 * provledger: the commands that write: migrate and insert.
 *
 * insert --stdin reads every line and checks it (JSON, keys, types, sizes,
 * times) before it connects, so a bad line writes nothing; the changes are
 * then appended in transactions of --batch changes with pl_insert_batch().
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* migrate                                                                  */
/* ------------------------------------------------------------------------ */

int cmd_migrate(cli *c)
{
    int st = cli_open(c);
    if (st != CLI_OK)
        return st;
    int before = 0, after = 0;
    int rc = pl_schema_version(&before, c->l);
    /* Before the first migration there may be nothing to read the version
     * from; pl_migrate() itself reports a schema newer than the library. */
    if (rc == PL_ESCHEMA) {
        before = 0;
        rc = PL_OK;
    }
    if (rc == PL_OK)
        rc = pl_migrate(c->l);
    if (rc == PL_OK)
        rc = pl_schema_version(&after, c->l);
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    char b[16], a[16];
    snprintf(b, sizeof b, "%d", before);
    snprintf(a, sizeof a, "%d", after);
    cli_kv kv[] = {
        {"schema", c->schema, 0},
        {"previous_version", b, 1},
        {"schema_version", a, 1},
    };
    return cli_print_kv(c, kv, sizeof kv / sizeof kv[0]);
}

/* ------------------------------------------------------------------------ */
/* One change from options                                                  */
/* ------------------------------------------------------------------------ */

static int print_receipt(const cli *c, const pl_receipt *r)
{
    char id[32], tt[PL_TIME_BUFSIZE + 8];
    snprintf(id, sizeof id, "%" PRId64, r->id);
    pl_time_format(tt, sizeof tt, r->transaction_time);
    cli_kv kv[] = {{"id", id, 1}, {"transaction_time", tt, 0}};
    return cli_print_kv(c, kv, 2);
}

static int insert_one(cli *c)
{
    static const char *const required[] = {"entity", "field", "value", "source"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!cli_get(c, required[i]))
            return cli_bad(c, "missing --%s (or use --stdin)", required[i]);
    if (cli_get(c, "batch"))
        return cli_bad(c, "--batch needs --stdin");

    pl_change ch = PL_CHANGE_INIT;
    ch.entity_id = cli_get(c, "entity");
    ch.field_name = cli_get(c, "field");
    ch.new_value = cli_get(c, "value");
    ch.old_value = cli_get(c, "old");
    ch.source_type = cli_get(c, "source");
    ch.change_reason = cli_get(c, "reason");
    ch.metadata = cli_get(c, "metadata");
    ch.idempotency_key = cli_get(c, "idempotency-key");
    int st;
    if ((st = cli_check_json(c, "--value", ch.new_value, 0)) != CLI_OK)
        return st;
    if (ch.old_value && (st = cli_check_json(c, "--old", ch.old_value, 0)) != CLI_OK)
        return st;
    if (ch.metadata && (st = cli_check_json(c, "--metadata", ch.metadata, 1)) != CLI_OK)
        return st;
    const char *t;
    if ((t = cli_get(c, "valid-from")) &&
        (st = cli_parse_time(c, "--valid-from", t, 1, 0, 0, &ch.valid_from)) != CLI_OK)
        return st;
    if ((t = cli_get(c, "valid-to")) &&
        (st = cli_parse_time(c, "--valid-to", t, 0, 0, 1, &ch.valid_to)) != CLI_OK)
        return st;
    if (ch.valid_from != PL_TIME_NOW && ch.valid_from >= ch.valid_to)
        return cli_bad(c, "--valid-from must be before --valid-to");

    if ((st = cli_open(c)) != CLI_OK)
        return st;
    pl_receipt r;
    int rc = pl_insert(&r, c->l, &ch);
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    if (cli_get(c, "count")) {
        cli_kv kv[] = {{"inserted", "1", 1}};
        return cli_print_kv(c, kv, 1);
    }
    return print_receipt(c, &r);
}

/* ------------------------------------------------------------------------ */
/* JSON lines                                                               */
/* ------------------------------------------------------------------------ */

typedef struct changes {
    pl_change *ch;
    long *line;
    size_t n, cap;
} changes;

static void change_free(pl_change *ch)
{
    free((char *)ch->entity_id);
    free((char *)ch->field_name);
    free((char *)ch->new_value);
    free((char *)ch->old_value);
    free((char *)ch->source_type);
    free((char *)ch->change_reason);
    free((char *)ch->metadata);
    free((char *)ch->idempotency_key);
}

static void changes_free(changes *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        change_free(&cs->ch[i]);
    free(cs->ch);
    free(cs->line);
    memset(cs, 0, sizeof *cs);
}

/* A tiny scanner over text that jansson has already accepted as a JSON
 * object: it finds where each member's value starts and ends, so that
 * values are passed on exactly as written (every digit of a number kept). */
static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *skip_string(const char *p)
{
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && p[1])
            p++;
    return *p ? p + 1 : p;
}

static const char *skip_value(const char *p)
{
    if (*p == '"')
        return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = skip_string(p);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']')
                depth--;
            p++;
            if (depth == 0)
                break;
        }
        return p;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p;
}

/* The raw text of member KEY of the object in TEXT, as a new string, in
 * *out (NULL when absent). Returns -1 when out of memory. */
static int raw_member(const char *text, const char *key, char **out)
{
    *out = NULL;
    const char *p = skip_ws(text);
    if (*p != '{')
        return 0;
    p = skip_ws(p + 1);
    while (*p == '"') {
        const char *kend = skip_string(p);
        int match;
        if (memchr(p, '\\', (size_t)(kend - p))) {
            json_error_t err;
            json_t *k = json_loadb(p, (size_t)(kend - p), JSON_DECODE_ANY, &err);
            match = k && json_is_string(k) && strcmp(json_string_value(k), key) == 0;
            json_decref(k);
        } else {
            size_t n = (size_t)(kend - p) - 2;
            match = strlen(key) == n && memcmp(p + 1, key, n) == 0;
        }
        p = skip_ws(kend);
        if (*p != ':')
            return 0;
        p = skip_ws(p + 1);
        const char *vend = skip_value(p);
        if (match) {
            size_t n = (size_t)(vend - p);
            char *s = malloc(n + 1);
            if (!s)
                return -1;
            memcpy(s, p, n);
            s[n] = '\0';
            *out = s;
            return 0; /* duplicates were rejected: the first is the one */
        }
        p = skip_ws(vend);
        if (*p != ',')
            return 0;
        p = skip_ws(p + 1);
    }
    return 0;
}

static const char *const line_keys[] = {
    "entity_id", "field_name", "new_value", "old_value", "valid_from", "valid_to",
    "source_type", "change_reason", "metadata", "idempotency_key", NULL,
};

/* Takes string member KEY of O: required or optional (null/absent: NULL),
 * at most MAX bytes, non-empty. Returns 0, 1 (bad: ERR set) or -1. */
static int take_string(json_t *o, const char *key, int required, size_t max, char **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(err, errlen, "%s: required", key);
            return 1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: must be a string%s", key, required ? "" : " or null");
        return 1;
    }
    size_t n = json_string_length(v);
    if (n == 0) {
        snprintf(err, errlen, "%s: must not be empty", key);
        return 1;
    }
    if (n > max) {
        snprintf(err, errlen, "%s: longer than %zu bytes", key, max);
        return 1;
    }
    if (!(*out = strdup(json_string_value(v))))
        return -1;
    return 0;
}

static int take_time(json_t *o, const char *key, int is_from, pl_time *out, char *err,
                     size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = is_from ? PL_TIME_NOW : PL_TIME_INFINITY;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: must be an RFC 3339 string or null", key);
        return 1;
    }
    const char *s = json_string_value(v);
    pl_time t;
    if (is_from && strcmp(s, "now") == 0)
        return 0;
    if (pl_time_parse(&t, s) != PL_OK || (is_from && t == PL_TIME_INFINITY)) {
        snprintf(err, errlen, "%s: expected an RFC 3339 time such as 2025-01-31T12:00:00Z, got '%.64s'",
                 key, s);
        return 1;
    }
    *out = t;
    return 0;
}

/* Parses one line into CH. Returns 0, 1 (bad: ERR set) or -1 (no memory). */
static int parse_line(const char *text, pl_change *ch, char *err, size_t errlen)
{
    pl_change init = PL_CHANGE_INIT;
    *ch = init;
    json_error_t jerr;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!o) {
        snprintf(err, errlen, "invalid JSON at column %d: %s", jerr.column, jerr.text);
        return 1;
    }
    int rc = 0;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "expected a JSON object");
        rc = 1;
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        size_t k = 0;
        while (line_keys[k] && strcmp(line_keys[k], key) != 0)
            k++;
        if (!line_keys[k]) {
            snprintf(err, errlen, "unknown key \"%.64s\"", key);
            rc = 1;
            goto done;
        }
    }
    char *s;
#define TAKE(expr)           \
    do {                     \
        if ((rc = (expr)))   \
            goto done;       \
    } while (0)
    TAKE(take_string(o, "entity_id", 1, PL_MAX_KEY_BYTES, &s, err, errlen));
    ch->entity_id = s;
    TAKE(take_string(o, "field_name", 1, PL_MAX_KEY_BYTES, &s, err, errlen));
    ch->field_name = s;
    TAKE(take_string(o, "source_type", 1, PL_MAX_KEY_BYTES, &s, err, errlen));
    ch->source_type = s;
    TAKE(take_string(o, "change_reason", 0, PL_MAX_REASON_BYTES, &s, err, errlen));
    ch->change_reason = s;
    TAKE(take_string(o, "idempotency_key", 0, PL_MAX_KEY_BYTES, &s, err, errlen));
    ch->idempotency_key = s;
    TAKE(take_time(o, "valid_from", 1, &ch->valid_from, err, errlen));
    TAKE(take_time(o, "valid_to", 0, &ch->valid_to, err, errlen));
    if (ch->valid_from != PL_TIME_NOW && ch->valid_from >= ch->valid_to) {
        snprintf(err, errlen, "valid_from: must be before valid_to");
        rc = 1;
        goto done;
    }

    if (!json_object_get(o, "new_value")) {
        snprintf(err, errlen, "new_value: required");
        rc = 1;
        goto done;
    }
    v = json_object_get(o, "metadata");
    if (v && !json_is_null(v) && !json_is_object(v)) {
        snprintf(err, errlen, "metadata: must be a JSON object or null");
        rc = 1;
        goto done;
    }
    static const char *const raw_keys[] = {"new_value", "old_value", "metadata"};
    for (size_t k = 0; k < 3; k++) {
        v = json_object_get(o, raw_keys[k]);
        if (k > 0 && (!v || json_is_null(v)))
            continue; /* none */
        if (raw_member(text, raw_keys[k], &s) != 0) {
            rc = -1;
            goto done;
        }
        if (!s) { /* cannot happen for text jansson accepted */
            snprintf(err, errlen, "%s: cannot be read", raw_keys[k]);
            rc = 1;
            goto done;
        }
        if (strlen(s) > PL_MAX_VALUE_BYTES) {
            free(s);
            snprintf(err, errlen, "%s: longer than %d bytes", raw_keys[k], PL_MAX_VALUE_BYTES);
            rc = 1;
            goto done;
        }
        if (k == 0)
            ch->new_value = s;
        else if (k == 1)
            ch->old_value = s;
        else
            ch->metadata = s;
    }
#undef TAKE
done:
    json_decref(o);
    if (rc != 0) {
        change_free(ch);
        *ch = init;
    }
    return rc;
}

static int blank(const char *s)
{
    return *skip_ws(s) == '\0';
}

/* Reads and checks every line of F. Returns CLI_OK, CLI_USAGE (reported)
 * or CLI_ERROR. */
static int read_lines(const cli *c, FILE *f, changes *cs)
{
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t len;
    long lineno = 0, bad = 0, first_bad = 0;
    char first_err[512] = "";
    int st = CLI_OK;
    while ((len = getline(&buf, &bufcap, f)) >= 0) {
        lineno++;
        if ((size_t)len != strlen(buf)) {
            if (!bad++) {
                first_bad = lineno;
                snprintf(first_err, sizeof first_err, "contains a NUL byte");
            }
            continue;
        }
        if (blank(buf))
            continue;
        if (cs->n == cs->cap) {
            size_t cap = cs->cap ? cs->cap * 2 : 1024;
            pl_change *ch = realloc(cs->ch, cap * sizeof *ch);
            if (ch)
                cs->ch = ch;
            long *ln = realloc(cs->line, cap * sizeof *ln);
            if (ln)
                cs->line = ln;
            if (!ch || !ln) {
                st = CLI_ERROR;
                break;
            }
            cs->cap = cap;
        }
        char err[512];
        int rc = parse_line(buf, &cs->ch[cs->n], err, sizeof err);
        if (rc < 0) {
            st = CLI_ERROR;
            break;
        }
        if (rc > 0) {
            if (!bad++) {
                first_bad = lineno;
                snprintf(first_err, sizeof first_err, "%s", err);
            }
            continue;
        }
        if (bad) { /* nothing will be written: keep no more */
            change_free(&cs->ch[cs->n]);
            continue;
        }
        cs->line[cs->n++] = lineno;
    }
    int read_err = ferror(f);
    free(buf);
    if (st == CLI_ERROR) {
        cli_note(c, "out of memory reading line %ld", lineno);
        return CLI_ERROR;
    }
    if (read_err) {
        cli_note(c, "cannot read standard input");
        return CLI_ERROR;
    }
    if (bad) {
        if (bad > 1)
            return cli_bad(c, "line %ld: %s (and %ld more bad lines); nothing was written",
                           first_bad, first_err, bad - 1);
        return cli_bad(c, "line %ld: %s; nothing was written", first_bad, first_err);
    }
    return CLI_OK;
}

/* The progress bar on a terminal's stderr. */
static void progress(size_t done, size_t total)
{
    const int width = 30;
    int fill = total ? (int)((double)done / (double)total * width) : width;
    fputs("\rprovledger: insert: [", stderr);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : '-', stderr);
    fprintf(stderr, "] %3d%% %zu/%zu", total ? (int)(100.0 * (double)done / (double)total) : 100,
            done, total);
    fflush(stderr);
}

static void progress_clear(void)
{
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

static int insert_stdin(cli *c)
{
    static const char *const single[] = {"entity", "field", "value", "old", "source", "reason",
                                         "metadata", "valid-from", "valid-to",
                                         "idempotency-key"};
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        if (cli_get(c, single[i]))
            return cli_bad(c, "--stdin excludes --%s", single[i]);
    long long batch = 1000;
    const char *b = cli_get(c, "batch");
    int st;
    if (b && (st = cli_parse_int(c, "--batch", b, 1, PL_MAX_BATCH, &batch)) != CLI_OK)
        return st;
    int count_only = cli_get(c, "count") != NULL;

    changes cs;
    memset(&cs, 0, sizeof cs);
    if ((st = read_lines(c, stdin, &cs)) != CLI_OK) {
        changes_free(&cs);
        return st;
    }
    if (cs.n > 0 && (st = cli_open(c)) != CLI_OK) {
        changes_free(&cs);
        return st;
    }

    pl_receipt *rcpt = malloc((size_t)batch * sizeof *rcpt);
    cli_json j;
    jw_init(&j);
    cli_table t;
    static const char *const cols[] = {"line", "id", "transaction_time"};
    int table = !count_only && c->format == CLI_FORMAT_TABLE;
    memset(&t, 0, sizeof t);
    if (!rcpt || (table && cli_table_init(&t, 3, cols) != 0)) {
        st = CLI_ERROR;
        cli_note(c, "out of memory");
        goto out;
    }
    if (table) {
        cli_table_right(&t, 0);
        cli_table_right(&t, 1);
    }
    int bar = c->stderr_tty;
    size_t done = 0;
    if (bar && cs.n)
        progress(0, cs.n);
    while (done < cs.n) {
        size_t k = cs.n - done < (size_t)batch ? cs.n - done : (size_t)batch;
        int rc = pl_insert_batch(rcpt, c->l, cs.ch + done, k);
        if (rc != PL_OK) {
            if (bar)
                progress_clear();
            char ctx[256], lines[64];
            long first = cs.line[done], last = cs.line[done + k - 1];
            if (first == last)
                snprintf(lines, sizeof lines, "line %ld", first);
            else
                snprintf(lines, sizeof lines, "lines %ld-%ld", first, last);
            size_t idx;
            if (sscanf(pl_errmsg(), "changes[%zu]", &idx) == 1 && idx < k)
                snprintf(ctx, sizeof ctx, "(at line %ld; %s not written, %zu earlier changes committed)",
                         cs.line[done + idx], lines, done);
            else
                snprintf(ctx, sizeof ctx, "(%s %s, %zu earlier changes committed)", lines,
                         rc == PL_EUNKNOWN ? "may or may not be written" : "not written", done);
            if (count_only) {
                char n[32];
                snprintf(n, sizeof n, "%zu", done);
                cli_kv kv[] = {{"inserted", n, 1}};
                cli_print_kv(c, kv, 1);
            }
            st = cli_fail(c, rc, ctx);
            goto out;
        }
        if (!count_only) {
            if (bar && c->stdout_tty)
                progress_clear();
            for (size_t i = 0; i < k; i++) {
                if (table) {
                    char ln[32], id[32], tt[PL_TIME_BUFSIZE + 8];
                    snprintf(ln, sizeof ln, "%ld", cs.line[done + i]);
                    snprintf(id, sizeof id, "%" PRId64, rcpt[i].id);
                    pl_time_format(tt, sizeof tt, rcpt[i].transaction_time);
                    const char *cells[3] = {ln, id, tt};
                    cli_table_add(&t, cells);
                } else {
                    jw_obj(&j);
                    jw_key(&j, "line");
                    jw_int(&j, cs.line[done + i]);
                    jw_key(&j, "id");
                    jw_int(&j, (long long)rcpt[i].id);
                    jw_key(&j, "transaction_time");
                    jw_time(&j, rcpt[i].transaction_time);
                    jw_obj_end(&j);
                    jw_line(&j, stdout);
                }
            }
            if (table)
                cli_table_flush(&t, stdout);
            fflush(stdout);
        }
        done += k;
        if (bar)
            progress(done, cs.n);
    }
    if (bar && cs.n)
        fputc('\n', stderr);
    if (count_only) {
        char n[32];
        snprintf(n, sizeof n, "%zu", done);
        cli_kv kv[] = {{"inserted", n, 1}};
        st = cli_print_kv(c, kv, 1);
    } else if (table && cs.n == 0) {
        cli_table_flush(&t, stdout);
    }
    if (j.oom || t.oom) {
        cli_note(c, "out of memory");
        st = CLI_ERROR;
    }
out:
    cli_table_free(&t);
    jw_free(&j);
    free(rcpt);
    changes_free(&cs);
    return st;
}

int cmd_insert(cli *c)
{
    if (cli_get(c, "stdin"))
        return insert_stdin(c);
    return insert_one(c);
}
