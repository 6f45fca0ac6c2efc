/*
 * provledger: the commands that read records: current, as-of, snapshot,
 * range, history, search and audit.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Prints R (or reports RC) and frees R. CONTEXT names the question for a
 * "not found" message. */
static int answer(cli *c, int rc, pl_result *r, const char *context)
{
    int st = rc == PL_OK ? cli_print_result(c, r)
                         : cli_fail(c, rc, rc == PL_NOT_FOUND ? context : NULL);
    pl_result_free(r);
    return st;
}

/* The optional time option OPT (default "now" or "any"). */
static int time_opt(const cli *c, const char *opt, pl_time dflt, pl_time *out)
{
    const char *v = cli_get(c, opt);
    char what[32];
    snprintf(what, sizeof what, "--%s", opt);
    *out = dflt;
    return v ? cli_parse_time(c, what, v, 1, 1, 0, out) : CLI_OK;
}

/* A context like "entity 'e' field 'f'" for messages. */
static void describe(char *buf, size_t len, const char *entity, const char *field)
{
    if (field)
        snprintf(buf, len, "entity '%.200s' field '%.200s'", entity, field);
    else
        snprintf(buf, len, "entity '%.200s'", entity);
}

int cmd_current(cli *c)
{
    int st = cli_open(c);
    if (st != CLI_OK)
        return st;
    pl_result *r = NULL;
    char ctx[512];
    describe(ctx, sizeof ctx, c->pos[0], c->pos[1]);
    int rc = pl_current(&r, c->l, c->pos[0], c->pos[1], c->flags);
    return answer(c, rc, r, ctx);
}

int cmd_as_of(cli *c)
{
    pl_time tx, valid;
    int st;
    if ((st = time_opt(c, "tx", PL_TIME_NOW, &tx)) != CLI_OK ||
        (st = time_opt(c, "valid", PL_TIME_NOW, &valid)) != CLI_OK)
        return st;
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    pl_result *r = NULL;
    char ctx[600], t1[PL_TIME_BUFSIZE + 8], t2[PL_TIME_BUFSIZE + 8];
    describe(ctx, sizeof ctx, c->pos[0], c->pos[1]);
    pl_time_format(t1, sizeof t1, tx);
    pl_time_format(t2, sizeof t2, valid);
    size_t n = strlen(ctx);
    snprintf(ctx + n, sizeof ctx - n, " at tx %s, valid %s", t1, t2);
    int rc = pl_as_of(&r, c->l, c->pos[0], c->pos[1], tx, valid, c->flags);
    return answer(c, rc, r, ctx);
}

int cmd_snapshot(cli *c)
{
    pl_time tx, valid;
    int st;
    if ((st = time_opt(c, "tx", PL_TIME_NOW, &tx)) != CLI_OK ||
        (st = time_opt(c, "valid", PL_TIME_NOW, &valid)) != CLI_OK)
        return st;
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    pl_result *r = NULL;
    char ctx[512];
    describe(ctx, sizeof ctx, c->pos[0], NULL);
    int rc = pl_snapshot(&r, c->l, c->pos[0], tx, valid, c->flags);
    return answer(c, rc, r, ctx);
}

/* Prints the records of an iterator as they come (JSON lines, or a table
 * flushed every 500 rows) and frees it. */
static int stream(cli *c, pl_iter *it)
{
    cli_json j;
    jw_init(&j);
    cli_table t;
    memset(&t, 0, sizeof t);
    int st = CLI_OK, rc;
    int table = c->format == CLI_FORMAT_TABLE;
    if (table && cli_record_table(&t) != 0) {
        cli_note(c, "out of memory");
        st = CLI_ERROR;
        goto out;
    }
    const pl_record *rec;
    size_t n = 0;
    while ((rc = pl_iter_next(&rec, it)) == PL_OK) {
        if (table) {
            cli_record_row(&t, rec);
            if (t.rows == 500) /* stream: print in chunks, widths only grow */
                cli_table_flush(&t, stdout);
        } else {
            cli_record_json(&j, rec);
            jw_line(&j, stdout);
        }
        n++;
    }
    if (table)
        cli_table_flush(&t, stdout);
    if (rc != PL_ITEROVER) {
        char ctx[64];
        snprintf(ctx, sizeof ctx, "(after %zu records)", n);
        fflush(stdout);
        st = cli_fail(c, rc, ctx);
    } else if (j.oom || t.oom) {
        cli_note(c, "out of memory");
        st = CLI_ERROR;
    }
out:
    cli_table_free(&t);
    jw_free(&j);
    pl_iter_free(it);
    return st;
}

/* --limit, --cursor and --newest-first of history and range: *limit 0
 * streams everything. */
static int page_opts(const cli *c, long long *limit, const char **cursor, unsigned *flags)
{
    const char *v = cli_get(c, "limit");
    int st;
    *limit = 0;
    *cursor = NULL;
    *flags = c->flags;
    if (v && (st = cli_parse_int(c, "--limit", v, 1, PL_MAX_PAGE, limit)) != CLI_OK)
        return st;
    *cursor = cli_get(c, "cursor");
    if (*cursor && !**cursor)
        return cli_bad(c, "--cursor: must not be empty");
    if (*cursor && !*limit)
        *limit = 100;
    *flags = c->flags | (cli_get(c, "newest-first") ? PL_NEWEST_FIRST : 0u);
    return CLI_OK;
}

/* Prints a page, then its next cursor: in JSON one last line
 * {"next_cursor": "..."} (null on the last page); in a table a line
 * "next cursor: ...". */
static int print_page(cli *c, int rc, pl_result *r, char *next)
{
    int st = rc == PL_OK ? cli_print_result(c, r) : cli_fail(c, rc, NULL);
    if (st == CLI_OK) {
        if (c->format == CLI_FORMAT_JSON) {
            cli_json j;
            jw_init(&j);
            jw_obj(&j);
            jw_key(&j, "next_cursor");
            jw_str(&j, next);
            jw_obj_end(&j);
            if (jw_line(&j, stdout) != 0) {
                cli_note(c, "out of memory");
                st = CLI_ERROR;
            }
            jw_free(&j);
        } else {
            printf("\nnext cursor: %s\n", next ? next : "(none: last page)");
        }
    }
    pl_free(next);
    pl_result_free(r);
    return st;
}

int cmd_range(cli *c)
{
    pl_time from, to;
    long long limit;
    const char *cursor;
    unsigned flags;
    int st;
    if ((st = time_opt(c, "from", PL_TIME_ANY, &from)) != CLI_OK ||
        (st = time_opt(c, "to", PL_TIME_ANY, &to)) != CLI_OK ||
        (st = page_opts(c, &limit, &cursor, &flags)) != CLI_OK)
        return st;
    if (from != PL_TIME_ANY && to != PL_TIME_ANY && from != PL_TIME_NOW && to != PL_TIME_NOW &&
        from > to)
        return cli_bad(c, "--from is after --to");
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    if (limit) {
        pl_result *r = NULL;
        char *next = NULL;
        int rc = pl_range_page(&r, &next, c->l, c->pos[0], c->pos[1], from, to, cursor, (size_t)limit, flags);
        return print_page(c, rc, r, next);
    }
    pl_iter *it = NULL;
    int rc = pl_range_open(&it, c->l, c->pos[0], c->pos[1], from, to, flags);
    return rc == PL_OK ? stream(c, it) : cli_fail(c, rc, NULL);
}

int cmd_history(cli *c)
{
    long long limit;
    const char *cursor;
    unsigned flags;
    int st;
    if ((st = page_opts(c, &limit, &cursor, &flags)) != CLI_OK || (st = cli_open(c)) != CLI_OK)
        return st;
    if (limit) {
        pl_result *r = NULL;
        char *next = NULL;
        int rc = pl_history_page(&r, &next, c->l, c->pos[0], c->pos[1], cursor, (size_t)limit, flags);
        return print_page(c, rc, r, next);
    }
    pl_iter *it = NULL;
    int rc = pl_history_open(&it, c->l, c->pos[0], c->pos[1], flags);
    return rc == PL_OK ? stream(c, it) : cli_fail(c, rc, NULL);
}

int cmd_search(cli *c)
{
    long long limit = 100;
    const char *v = cli_get(c, "limit");
    int st;
    if (v && (st = cli_parse_int(c, "--limit", v, 1, 10000, &limit)) != CLI_OK)
        return st;
    const char *cursor = cli_get(c, "cursor");
    if (cursor && !*cursor)
        return cli_bad(c, "--cursor: must not be empty");
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    /* The library binds a cursor to the query's text. Handing it a
     * canonical text (no whitespace, members sorted, every number and
     * string as written) makes the cursor a property of the query, not of
     * how it was typed: '{"a": 1}' and '{"a":1}' page alike. A text that
     * is not plain valid JSON goes as it is, for the library to judge. */
    char *canon = cli_json_canonical(c->pos[0]);
    pl_result *r = NULL;
    char *next = NULL;
    int rc = pl_search_metadata(&r, &next, c->l, canon ? canon : c->pos[0], cursor, (size_t)limit);
    free(canon);
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    size_t n = pl_result_count(r);
    if (c->format == CLI_FORMAT_JSON) {
        cli_json j;
        jw_init(&j);
        jw_obj(&j);
        jw_key(&j, "records");
        jw_arr(&j);
        for (size_t i = 0; i < n; i++)
            cli_record_json(&j, pl_result_get(r, i));
        jw_arr_end(&j);
        jw_key(&j, "next_cursor");
        jw_str(&j, next);
        jw_obj_end(&j);
        st = jw_line(&j, stdout) == 0 ? CLI_OK : CLI_ERROR;
        if (st != CLI_OK)
            cli_note(c, "out of memory");
        jw_free(&j);
    } else {
        st = cli_print_result(c, r);
        if (st == CLI_OK)
            printf("\nnext cursor: %s\n", next ? next : "(none: last page)");
    }
    pl_free(next);
    pl_result_free(r);
    return st;
}

int cmd_audit(cli *c)
{
    pl_time from, to;
    int st;
    if ((st = time_opt(c, "from", PL_TIME_ANY, &from)) != CLI_OK ||
        (st = time_opt(c, "to", PL_TIME_ANY, &to)) != CLI_OK)
        return st;
    const char *source = cli_get(c, "source");
    if (source && !*source)
        return cli_bad(c, "--source: must not be empty");
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    pl_iter *it = NULL;
    int rc = pl_audit_open(&it, c->l, source, from, to);
    return rc == PL_OK ? stream(c, it) : cli_fail(c, rc, NULL);
}
