/*
 * provledger: the commands that write: migrate and insert.
 *
 * insert --stdin reads every line and splits it into its members (the raw
 * text of each JSON value, json_scan.c), has the library check every change
 * before the first is written, so a bad line writes nothing, and then
 * appends the changes in transactions of --batch changes with
 * pl_insert_batch(). The library is the only judge of the JSON values.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The option that gave field NAME of a change, for messages. */
static const char *option_of(const char *field)
{
    static const char *const map[][2] = {
        {"entity_id", "--entity"},      {"field_name", "--field"},
        {"new_value", "--value"},       {"old_value", "--old"},
        {"source_type", "--source"},    {"change_reason", "--reason"},
        {"metadata", "--metadata"},     {"valid_from", "--valid-from"},
        {"valid_to", "--valid-to"},     {"idempotency_key", "--idempotency-key"},
    };
    size_t n = strcspn(field, ":");
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i][0]) == n && strncmp(field, map[i][0], n) == 0)
            return map[i][1];
    return NULL;
}

static int insert_one(cli *c)
{
    static const char *const required[] = {"entity", "field", "value", "source"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!cli_get(c, required[i]))
            return cli_bad(c, "missing --%s (or use --stdin)", required[i]);
    if (cli_get(c, "batch"))
        return cli_bad(c, "--batch needs --stdin");

    /* The JSON texts go to the library as given: it alone decides what is
     * valid (1e400 is), and its message is the one printed. */
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
    const char *t;
    if ((t = cli_get(c, "valid-from")) &&
        (st = cli_parse_time(c, "--valid-from", t, 1, 0, 0, &ch.valid_from)) != CLI_OK)
        return st;
    if ((t = cli_get(c, "valid-to")) &&
        (st = cli_parse_time(c, "--valid-to", t, 0, 0, 1, &ch.valid_to)) != CLI_OK)
        return st;

    /* Checked before connecting: bad input is a usage error whether or
     * not the server can be reached. */
    int rc = pl_validate_changes(&ch, 1);
    if (rc != PL_OK) {
        const char *msg = pl_errmsg();
        if (strncmp(msg, "changes[0].", 11) == 0)
            msg += 11;
        const char *opt = option_of(msg);
        cli_note(c, "%s: %s%s%s%s", pl_strerror(rc), msg, opt ? " (" : "", opt ? opt : "", opt ? ")" : "");
        return rc == PL_EINVAL ? CLI_USAGE : CLI_ERROR;
    }
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    pl_receipt r;
    rc = pl_insert(&r, c->l, &ch);
    if (rc != PL_OK) {
        const char *opt = rc == PL_EINVAL ? option_of(pl_errmsg()) : NULL;
        char ctx[64];
        snprintf(ctx, sizeof ctx, "(%s)", opt ? opt : "");
        return cli_fail(c, rc, opt ? ctx : NULL);
    }
    if (cli_get(c, "count")) {
        cli_kv kv[] = {{"inserted", "1", 1}};
        return cli_print_kv(c, kv, 1);
    }
    return print_receipt(c, &r);
}

/* ------------------------------------------------------------------------ */
/* JSON lines                                                               */
/* ------------------------------------------------------------------------ */

/* The keys of a line: the names pl_change's fields have in the library's
 * messages, so that a message can be traced back to a member. */
enum { K_ENTITY, K_FIELD, K_NEW, K_OLD, K_VFROM, K_VTO, K_SOURCE, K_REASON, K_META, K_IDEM,
       NKEYS };
static const char *const line_keys[NKEYS] = {
    "entity_id", "field_name", "new_value", "old_value", "valid_from", "valid_to",
    "source_type", "change_reason", "metadata", "idempotency_key",
};

typedef struct changes {
    pl_change *ch;
    long *line;
    unsigned (*col)[NKEYS];  /* column of each member's value; 0: absent */
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
    free(cs->col);
    memset(cs, 0, sizeof *cs);
}

static int is_null(const cli_jmember *m)
{
    return m->val_len == 4 && memcmp(m->val, "null", 4) == 0;
}

/* The string member M (NULL: absent) into *out: NULL for absent or null.
 * Lengths and emptiness are the library's to judge. Returns 0, 1 (bad:
 * ERR set, *at its byte offset) or -1. */
static int take_string(const cli_jmember *m, const char *key, char **out, const char *line,
                       size_t *at, char *err, size_t errlen)
{
    *out = NULL;
    if (!m || is_null(m))
        return 0;
    *at = (size_t)(m->val - line);
    if (m->val[0] != '"') {
        snprintf(err, errlen, "%s: must be a string or null", key);
        return 1;
    }
    size_t off;
    const char *why;
    int rc = cli_json_string(m->val, m->val_len, out, &off, &why);
    if (rc > 0) {
        *at += off;
        snprintf(err, errlen, "%s: %s", key, why);
    }
    return rc;
}

static int take_time(const cli_jmember *m, const char *key, int is_from, pl_time *out,
                     const char *line, size_t *at, char *err, size_t errlen)
{
    *out = is_from ? PL_TIME_NOW : PL_TIME_INFINITY;
    char *s;
    int rc = take_string(m, key, &s, line, at, err, errlen);
    if (rc || !s)
        return rc;
    pl_time t;
    if (is_from && strcmp(s, "now") == 0) {
        rc = 0;
    } else if (pl_time_parse(&t, s) != PL_OK || (is_from && t == PL_TIME_INFINITY)) {
        snprintf(err, errlen,
                 "%s: expected an RFC 3339 time such as 2025-01-31T12:00:00Z, got '%.64s'", key, s);
        rc = 1;
    } else {
        *out = t;
    }
    free(s);
    return rc;
}

/* A copy of the raw value of M: the user's text, byte for byte. */
static int take_raw(const cli_jmember *m, int null_is_none, char **out)
{
    *out = NULL;
    if (!m || (null_is_none && is_null(m)))
        return 0;
    if (!(*out = malloc(m->val_len + 1)))
        return -1;
    memcpy(*out, m->val, m->val_len);
    (*out)[m->val_len] = '\0';
    return 0;
}

/* Splits one line into CH, keeping the column of each member's value in
 * COL. Only what the line format itself demands is checked here (an
 * object of known keys, each once, strings where the library takes C
 * strings, times it takes as numbers); everything else is the library's.
 * Returns 0, 1 (bad: ERR set, *at the byte offset) or -1 (no memory). */
static int parse_line(const char *text, size_t len, pl_change *ch, unsigned col[NKEYS],
                      size_t *at, char *err, size_t errlen)
{
    pl_change init = PL_CHANGE_INIT;
    *ch = init;
    memset(col, 0, NKEYS * sizeof col[0]);
    cli_jmember *m = NULL;
    size_t n = 0;
    const char *why;
    int rc = cli_json_members(text, len, &m, &n, at, &why);
    if (rc) {
        if (rc > 0)
            snprintf(err, errlen, "%s", why);
        return rc;
    }
    const cli_jmember *by_key[NKEYS] = {NULL};
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < NKEYS && strcmp(line_keys[k], m[i].key) != 0)
            k++;
        *at = (size_t)(m[i].name - text);
        if (k == NKEYS) {
            snprintf(err, errlen, "unknown key \"%.64s\"", m[i].key);
            rc = 1;
            goto done;
        }
        if (by_key[k]) {
            snprintf(err, errlen, "duplicate key \"%s\"", line_keys[k]);
            rc = 1;
            goto done;
        }
        by_key[k] = &m[i];
        col[k] = (unsigned)cli_utf8_column(text, (size_t)(m[i].val - text));
    }
    char *s;
#define TAKE(expr)           \
    do {                     \
        if ((rc = (expr)))   \
            goto done;       \
    } while (0)
#define STR(k, field)                                                                 \
    do {                                                                              \
        TAKE(take_string(by_key[k], line_keys[k], &s, text, at, err, errlen));        \
        ch->field = s;                                                                \
    } while (0)
    STR(K_ENTITY, entity_id);
    STR(K_FIELD, field_name);
    STR(K_SOURCE, source_type);
    STR(K_REASON, change_reason);
    STR(K_IDEM, idempotency_key);
    TAKE(take_time(by_key[K_VFROM], "valid_from", 1, &ch->valid_from, text, at, err, errlen));
    TAKE(take_time(by_key[K_VTO], "valid_to", 0, &ch->valid_to, text, at, err, errlen));
    TAKE(take_raw(by_key[K_NEW], 0, &s));
    ch->new_value = s;
    TAKE(take_raw(by_key[K_OLD], 1, &s));
    ch->old_value = s;
    TAKE(take_raw(by_key[K_META], 1, &s));
    ch->metadata = s;
#undef STR
#undef TAKE
done:
    cli_jmembers_free(m, n);
    if (rc != 0) {
        change_free(ch);
        *ch = init;
    }
    return rc;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

/* Reads and splits every line of F. Returns CLI_OK, CLI_USAGE (reported)
 * or CLI_ERROR. */
static int read_lines(const cli *c, FILE *f, changes *cs)
{
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t len;
    long lineno = 0, bad = 0, first_bad = 0;
    char first_err[600] = "";
    int st = CLI_OK;
    while ((len = getline(&buf, &bufcap, f)) >= 0) {
        lineno++;
        const char *text = buf;
        size_t n = (size_t)len;
        /* A byte order mark, as some editors write, is no part of the
         * JSON; columns count from after it. */
        if (lineno == 1 && n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
            text += 3;
            n -= 3;
        }
        size_t nul = strlen(text);
        if (nul != n) {
            if (!bad++) {
                first_bad = lineno;
                snprintf(first_err, sizeof first_err, "column %zu: contains a NUL byte",
                         cli_utf8_column(text, nul));
            }
            continue;
        }
        if (blank(text, n))
            continue;
        if (cs->n >= cs->cap) {
            size_t cap = cs->cap ? cs->cap * 2 : 1024;
            pl_change *ch = realloc(cs->ch, cap * sizeof *ch);
            if (ch)
                cs->ch = ch;
            long *ln = realloc(cs->line, cap * sizeof *ln);
            if (ln)
                cs->line = ln;
            unsigned(*col)[NKEYS] = realloc(cs->col, cap * sizeof *col);
            if (col)
                cs->col = col;
            if (!ch || !ln || !col) {
                st = CLI_ERROR;
                break;
            }
            cs->cap = cap;
        }
        char err[512];
        size_t at = 0;
        int rc = parse_line(text, n, &cs->ch[cs->n], cs->col[cs->n], &at, err, sizeof err);
        if (rc < 0) {
            st = CLI_ERROR;
            break;
        }
        if (rc > 0) {
            if (!bad++) {
                first_bad = lineno;
                snprintf(first_err, sizeof first_err, "column %zu: %s", cli_utf8_column(text, at),
                         err);
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
            return cli_bad(c, "line %ld, %s (and %ld more bad lines); nothing was written",
                           first_bad, first_err, bad - 1);
        return cli_bad(c, "line %ld, %s; nothing was written", first_bad, first_err);
    }
    return CLI_OK;
}

/* Reports the library's rejection of change IDX of CS (RC, with the
 * "changes[i]." prefix of its message replaced by the line and the column
 * of the member it names). */
static int report_line(const cli *c, const changes *cs, size_t idx, int rc, const char *what)
{
    const char *msg = pl_errmsg();
    const char *dot = strstr(msg, "].");
    if (strncmp(msg, "changes[", 8) == 0 && dot)
        msg = dot + 2;
    unsigned col = 0;
    size_t n = strcspn(msg, ":");
    for (size_t k = 0; k < NKEYS; k++)
        if (strlen(line_keys[k]) == n && strncmp(msg, line_keys[k], n) == 0)
            col = cs->col[idx][k];
    char where[64];
    if (col)
        snprintf(where, sizeof where, "line %ld, column %u", cs->line[idx], col);
    else
        snprintf(where, sizeof where, "line %ld", cs->line[idx]);
    cli_note(c, "%s: %s: %s; %s", where, pl_strerror(rc), msg, what);
    return rc == PL_EINVAL ? CLI_USAGE : CLI_ERROR;
}

/* Has the library check every change (pl_validate_changes, no I/O) before
 * the first is written, so that one bad line writes nothing even when the
 * changes span many transactions. */
static int check_lines(const cli *c, changes *cs)
{
    for (size_t done = 0; done < cs->n;) {
        size_t k = cs->n - done < (size_t)PL_MAX_BATCH ? cs->n - done : (size_t)PL_MAX_BATCH;
        int rc = pl_validate_changes(cs->ch + done, k);
        size_t idx;
        /* NOLINTNEXTLINE(cert-err34-c): the library's own "changes[N]: ..." */
        if (rc == PL_EINVAL && sscanf(pl_errmsg(), "changes[%zu]", &idx) == 1 && idx < k)
            return report_line(c, cs, done + idx, rc, "nothing was written");
        if (rc != PL_OK)
            return cli_fail(c, rc, "(checking the lines; nothing was written)");
        done += k;
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

static int insert_stdin(cli *c, int implicit)
{
    static const char *const single[] = {"entity", "field", "value", "old", "source", "reason",
                                         "metadata", "valid-from", "valid-to",
                                         "idempotency-key"};
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        if (cli_get(c, single[i])) {
            if (implicit)
                return cli_bad(c, "--%s needs --entity (without --entity, changes are read "
                                  "from standard input as JSON lines)",
                               single[i]);
            return cli_bad(c, "--stdin excludes --%s", single[i]);
        }
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
    if (cs.n > 0 && ((st = check_lines(c, &cs)) != CLI_OK || (st = cli_open(c)) != CLI_OK)) {
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
            /* NOLINTNEXTLINE(cert-err34-c): the library's own "changes[N]: ..." */
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
        return insert_stdin(c, 0);
    /* As a filter (changes | provledger insert), no flag is needed: without
     * --entity, a standard input that is not a terminal is the input. */
    if (!cli_get(c, "entity") && !isatty(STDIN_FILENO))
        return insert_stdin(c, 1);
    return insert_one(c);
}
