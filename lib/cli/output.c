/*
 * provledger: printing JSON and tables.
 *
 * JSON is written by hand rather than through jansson's encoder: record
 * values are already JSON text (PostgreSQL's jsonb form) and are spliced in
 * as they are, so numbers keep every digit (a decoder would turn 0.1 into
 * 0.10000000000000001 and refuse integers past 64 bits).
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

/* ------------------------------------------------------------------------ */
/* JSON writer                                                              */
/* ------------------------------------------------------------------------ */

void jw_init(cli_json *j)
{
    memset(j, 0, sizeof *j);
    j->first[0] = 1;
}

void jw_free(cli_json *j)
{
    free(j->s);
    memset(j, 0, sizeof *j);
}

void jw_reset(cli_json *j)
{
    j->len = 0;
    j->depth = 0;
    j->first[0] = 1;
    j->after_key = 0;
    if (j->s)
        j->s[0] = '\0';
}

static void put(cli_json *j, const char *s, size_t n)
{
    if (j->oom)
        return;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 256;
        while (cap < j->len + n + 1)
            cap *= 2;
        char *p = realloc(j->s, cap);
        if (!p) {
            j->oom = 1;
            return;
        }
        j->s = p;
        j->cap = cap;
    }
    memcpy(j->s + j->len, s, n);
    j->len += n;
    j->s[j->len] = '\0';
}

static void puts_(cli_json *j, const char *s)
{
    put(j, s, strlen(s));
}

/* Before a value: the comma that separates it from the previous one. */
static void sep(cli_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (!j->first[j->depth])
        put(j, ",", 1);
    j->first[j->depth] = 0;
}

static void open_(cli_json *j, char ch)
{
    sep(j);
    put(j, &ch, 1);
    if (j->depth + 1 < (int)sizeof j->first)
        j->depth++;
    j->first[j->depth] = 1;
}

static void close_(cli_json *j, char ch)
{
    put(j, &ch, 1);
    if (j->depth > 0)
        j->depth--;
}

void jw_obj(cli_json *j) { open_(j, '{'); }
void jw_obj_end(cli_json *j) { close_(j, '}'); }
void jw_arr(cli_json *j) { open_(j, '['); }
void jw_arr_end(cli_json *j) { close_(j, ']'); }

static void quoted(cli_json *j, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(j, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0x7f)
            continue;
        put(j, run, (size_t)(s - run));
        run = s + 1;
        switch (ch) {
        case '"': puts_(j, "\\\""); break;
        case '\\': puts_(j, "\\\\"); break;
        case '\n': puts_(j, "\\n"); break;
        case '\r': puts_(j, "\\r"); break;
        case '\t': puts_(j, "\\t"); break;
        default: {
            char u[7] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15], '\0'};
            puts_(j, u);
        }
        }
    }
    put(j, run, (size_t)(s - run));
    put(j, "\"", 1);
}

void jw_key(cli_json *j, const char *key)
{
    sep(j);
    quoted(j, key);
    put(j, ":", 1);
    j->after_key = 1;
}

void jw_str(cli_json *j, const char *s)
{
    sep(j);
    if (s)
        quoted(j, s);
    else
        puts_(j, "null");
}

void jw_raw(cli_json *j, const char *json)
{
    sep(j);
    puts_(j, json ? json : "null");
}

void jw_int(cli_json *j, long long v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    jw_raw(j, b);
}

void jw_uint(cli_json *j, unsigned long long v)
{
    char b[32];
    snprintf(b, sizeof b, "%llu", v);
    jw_raw(j, b);
}

void jw_double(cli_json *j, double v)
{
    char b[40];
    if (v != v || v - v != 0) { /* NaN or infinite: JSON has neither */
        jw_null(j);
        return;
    }
    /* The shortest text that reads back as the same double. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v)
            break;
    }
    jw_raw(j, b);
}

void jw_bool(cli_json *j, int v) { jw_raw(j, v ? "true" : "false"); }
void jw_null(cli_json *j) { jw_raw(j, "null"); }

void jw_time(cli_json *j, pl_time t)
{
    if (t == PL_TIME_INFINITY) {
        jw_null(j);
        return;
    }
    char b[PL_TIME_BUFSIZE + 8];
    pl_time_format(b, sizeof b, t);
    jw_str(j, b);
}

int jw_line(cli_json *j, FILE *f)
{
    if (j->oom)
        return -1;
    if (j->s)
        fwrite(j->s, 1, j->len, f);
    fputc('\n', f);
    jw_reset(j);
    return 0;
}

int cli_is_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return 0;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                   */
/* ------------------------------------------------------------------------ */

/* East Asian Width W and F ranges and the common emoji, and the ranges of
 * combining and zero-width characters: a built-in table, so that columns
 * line up the same whatever the locale (wcwidth() knows nothing of UTF-8
 * under the C locale that scripts and services often run with). */
static const uint32_t zero_width[][2] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x05BF, 0x05BF}, {0x05C1, 0x05C2},
    {0x05C4, 0x05C5}, {0x05C7, 0x05C7}, {0x0610, 0x061A}, {0x064B, 0x065F}, {0x0670, 0x0670},
    {0x06D6, 0x06DC}, {0x06DF, 0x06E4}, {0x06E7, 0x06E8}, {0x06EA, 0x06ED}, {0x0900, 0x0902},
    {0x093A, 0x093A}, {0x093C, 0x093C}, {0x0941, 0x0948}, {0x094D, 0x094D}, {0x0951, 0x0957},
    {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E}, {0x1160, 0x11FF}, {0x1AB0, 0x1AFF},
    {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x202A, 0x202E}, {0x2060, 0x2064}, {0x20D0, 0x20FF},
    {0x302A, 0x302D}, {0x3099, 0x309A}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF},
    {0x1F3FB, 0x1F3FF}, {0xE0001, 0xE007F}, {0xE0100, 0xE01EF},
};

static const uint32_t wide[][2] = {
    {0x1100, 0x115F}, {0x231A, 0x231B}, {0x2329, 0x232A}, {0x23E9, 0x23EC}, {0x23F0, 0x23F0},
    {0x23F3, 0x23F3}, {0x25FD, 0x25FE}, {0x2614, 0x2615}, {0x2648, 0x2653}, {0x267F, 0x267F},
    {0x2693, 0x2693}, {0x26A1, 0x26A1}, {0x26AA, 0x26AB}, {0x26BD, 0x26BE}, {0x26C4, 0x26C5},
    {0x26CE, 0x26CE}, {0x26D4, 0x26D4}, {0x26EA, 0x26EA}, {0x26F2, 0x26F3}, {0x26F5, 0x26F5},
    {0x26FA, 0x26FA}, {0x26FD, 0x26FD}, {0x2705, 0x2705}, {0x270A, 0x270B}, {0x2728, 0x2728},
    {0x274C, 0x274C}, {0x274E, 0x274E}, {0x2753, 0x2755}, {0x2757, 0x2757}, {0x2795, 0x2797},
    {0x27B0, 0x27B0}, {0x27BF, 0x27BF}, {0x2B1B, 0x2B1C}, {0x2B50, 0x2B50}, {0x2B55, 0x2B55},
    {0x2E80, 0x3029}, {0x302E, 0x303E}, {0x3041, 0x3096}, {0x309B, 0x33FF}, {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF}, {0xA000, 0xA4CF}, {0xA960, 0xA97F}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
    {0xFE10, 0xFE19}, {0xFE30, 0xFE6F}, {0xFF00, 0xFF60}, {0xFFE0, 0xFFE6}, {0x16FE0, 0x16FE4},
    {0x17000, 0x18CFF}, {0x1B000, 0x1B2FF}, {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF},
    {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F200, 0x1F202}, {0x1F210, 0x1F23B},
    {0x1F240, 0x1F248}, {0x1F250, 0x1F251}, {0x1F260, 0x1F265}, {0x1F300, 0x1F320},
    {0x1F32D, 0x1F335}, {0x1F337, 0x1F37C}, {0x1F37E, 0x1F393}, {0x1F3A0, 0x1F3CA},
    {0x1F3CF, 0x1F3D3}, {0x1F3E0, 0x1F3F0}, {0x1F3F4, 0x1F3F4}, {0x1F3F8, 0x1F3FA},
    {0x1F400, 0x1F43E}, {0x1F440, 0x1F440}, {0x1F442, 0x1F4FC}, {0x1F4FF, 0x1F53D},
    {0x1F54B, 0x1F54E}, {0x1F550, 0x1F567}, {0x1F57A, 0x1F57A}, {0x1F595, 0x1F596},
    {0x1F5A4, 0x1F5A4}, {0x1F5FB, 0x1F64F}, {0x1F680, 0x1F6C5}, {0x1F6CC, 0x1F6CC},
    {0x1F6D0, 0x1F6D2}, {0x1F6D5, 0x1F6D7}, {0x1F6DC, 0x1F6DF}, {0x1F6EB, 0x1F6EC},
    {0x1F6F4, 0x1F6FC}, {0x1F7E0, 0x1F7EB}, {0x1F7F0, 0x1F7F0}, {0x1F90C, 0x1F93A},
    {0x1F93C, 0x1F945}, {0x1F947, 0x1F9FF}, {0x1FA70, 0x1FAFF}, {0x20000, 0x2FFFD},
    {0x30000, 0x3FFFD},
};

static int in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

int cli_char_width(uint32_t cp)
{
    if (cp < 0x300)
        return 1;
    if (in_ranges(cp, zero_width, sizeof zero_width / sizeof zero_width[0]))
        return 0;
    return in_ranges(cp, wide, sizeof wide / sizeof wide[0]) ? 2 : 1;
}

/* Display width of UTF-8 text on a terminal. */
static size_t text_width(const char *s)
{
    size_t w = 0, n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += cli_utf8_decode(s + i, n - i, &cp);
        w += (size_t)cli_char_width(cp);
    }
    return w;
}

int cli_table_init(cli_table *t, size_t ncols, const char *const *names)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    /* calloc(0, ...) may return NULL: that is no out-of-memory */
    t->names = calloc(ncols ? ncols : 1, sizeof *t->names);
    t->right = calloc(ncols ? ncols : 1, sizeof *t->right);
    t->width = calloc(ncols ? ncols : 1, sizeof *t->width);
    if (!t->names || !t->right || !t->width) {
        t->oom = 1;
        return -1;
    }
    for (size_t i = 0; i < ncols; i++) {
        t->names[i] = names[i];
        t->width[i] = text_width(names[i]);
    }
    return 0;
}

void cli_table_right(cli_table *t, size_t col)
{
    if (!t->oom && col < t->ncols)
        t->right[col] = 1;
}

/* A copy of S fit for one cell: control characters as spaces; text wider
 * than max_cell columns is cut to max_cell - 1 columns and "...". */
static char *cell_text(const cli_table *t, const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    char *out = malloc(n + 4);
    if (!out)
        return NULL;
    int cut = t->max_cell && text_width(s) > t->max_cell;
    size_t o = 0, w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = cli_utf8_decode(s + i, n - i, &cp);
        size_t cw = (size_t)cli_char_width(cp);
        if (cut && w + cw > t->max_cell - 1) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        for (size_t b = 0; b < k; b++) {
            unsigned char ch = (unsigned char)s[i + b];
            out[o++] = (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch);
        }
        w += cw;
        i += k;
    }
    out[o] = '\0';
    return out;
}

void cli_table_add(cli_table *t, const char *const *cells)
{
    if (t->oom)
        return;
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **p = realloc(t->cells, cap * t->ncols * sizeof *p);
        if (!p) {
            t->oom = 1;
            return;
        }
        t->cells = p;
        t->cap = cap;
    }
    char **row = t->cells + t->rows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = cell_text(t, cells[i]);
        if (!row[i]) {
            for (size_t k = 0; k < i; k++)
                free(row[k]);
            t->oom = 1;
            return;
        }
    }
    t->rows++;
}

static void print_row(const cli_table *t, FILE *f, const char *const *cells, int upper)
{
    /* Padding is written only before more text, so no line ends in blanks. */
    size_t pending = 0;
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = cells[i];
        size_t w = text_width(s);
        size_t pad = t->width[i] > w ? t->width[i] - w : 0;
        if (t->right[i])
            pending += pad;
        if (*s) {
            fprintf(f, "%*s", (int)pending, "");
            pending = 0;
            for (const char *p = s; *p; p++)
                fputc(upper && *p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p, f);
        }
        if (!t->right[i])
            pending += pad;
        pending += 2;
    }
    fputc('\n', f);
}

void cli_table_flush(cli_table *t, FILE *f)
{
    if (t->oom)
        return;
    for (size_t r = 0; r < t->rows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            size_t w = text_width(t->cells[r * t->ncols + i]);
            if (w > t->width[i])
                t->width[i] = w;
        }
    if (!t->header_done) {
        print_row(t, f, t->names, 1);
        t->header_done = 1;
    }
    for (size_t r = 0; r < t->rows; r++) {
        print_row(t, f, (const char *const *)(t->cells + r * t->ncols), 0);
        for (size_t i = 0; i < t->ncols; i++)
            free(t->cells[r * t->ncols + i]);
    }
    t->rows = 0;
}

void cli_table_free(cli_table *t)
{
    if (t->cells)
        for (size_t k = 0; k < t->rows * t->ncols; k++)
            free(t->cells[k]);
    free(t->cells);
    free(t->names);
    free(t->right);
    free(t->width);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

void cli_record_json(cli_json *j, const pl_record *r)
{
    jw_obj(j);
    jw_key(j, "id");
    jw_int(j, (long long)r->id);
    jw_key(j, "entity_id");
    jw_str(j, r->entity_id);
    jw_key(j, "field_name");
    jw_str(j, r->field_name);
    jw_key(j, "new_value");
    jw_raw(j, r->new_value);
    jw_key(j, "old_value");
    jw_raw(j, r->old_value);
    jw_key(j, "transaction_time");
    jw_time(j, r->transaction_time);
    jw_key(j, "valid_from");
    jw_time(j, r->valid_from);
    jw_key(j, "valid_to");
    jw_time(j, r->valid_to);
    jw_key(j, "source_type");
    jw_str(j, r->source_type);
    jw_key(j, "change_reason");
    jw_str(j, r->change_reason);
    jw_key(j, "metadata");
    jw_raw(j, r->metadata ? r->metadata : "{}");
    if (r->erased) {
        jw_key(j, "erased");
        jw_bool(j, 1);
    }
    jw_obj_end(j);
}

static const char *const record_cols[] = {
    "id", "entity", "field", "value", "valid_from", "valid_to", "transaction_time",
    "source", "reason",
};
#define RECORD_NCOLS (sizeof record_cols / sizeof record_cols[0])

int cli_record_table(cli_table *t)
{
    if (cli_table_init(t, RECORD_NCOLS, record_cols) != 0)
        return -1;
    cli_table_right(t, 0);
    t->max_cell = 48;
    return 0;
}

void cli_record_row(cli_table *t, const pl_record *r)
{
    char id[32], vf[PL_TIME_BUFSIZE + 8], vt[PL_TIME_BUFSIZE + 8], tt[PL_TIME_BUFSIZE + 8];
    snprintf(id, sizeof id, "%" PRId64, r->id);
    pl_time_format(vf, sizeof vf, r->valid_from);
    pl_time_format(vt, sizeof vt, r->valid_to);
    pl_time_format(tt, sizeof tt, r->transaction_time);
    const char *cells[RECORD_NCOLS] = {
        id, r->entity_id, r->field_name, r->new_value, vf, vt, tt, r->source_type,
        r->change_reason ? r->change_reason : "",
    };
    cli_table_add(t, cells);
}

int cli_print_result(const cli *c, const pl_result *r)
{
    size_t n = pl_result_count(r);
    if (c->format == CLI_FORMAT_JSON) {
        cli_json j;
        jw_init(&j);
        int bad = 0;
        for (size_t i = 0; i < n && !bad; i++) {
            cli_record_json(&j, pl_result_get(r, i));
            bad = jw_line(&j, stdout);
        }
        jw_free(&j);
        if (bad) {
            cli_note(c, "out of memory");
            return CLI_ERROR;
        }
    } else {
        cli_table t;
        if (cli_record_table(&t) != 0) {
            cli_table_free(&t);
            cli_note(c, "out of memory");
            return CLI_ERROR;
        }
        for (size_t i = 0; i < n; i++)
            cli_record_row(&t, pl_result_get(r, i));
        int oom = t.oom;
        if (!oom)
            cli_table_flush(&t, stdout);
        cli_table_free(&t);
        if (oom) {
            cli_note(c, "out of memory");
            return CLI_ERROR;
        }
    }
    cli_note_origin(c, pl_result_origin(r), pl_result_staleness_us(r));
    return CLI_OK;
}

void cli_note_origin(const cli *c, int origin, int64_t staleness_us)
{
    if (origin == PL_ORIGIN_REPLICA || origin == PL_ORIGIN_VIEW)
        cli_note(c, "note: answered by the %s, stale by up to %.3f s",
                 origin == PL_ORIGIN_REPLICA ? "replica" : "materialized view",
                 (double)staleness_us / 1e6);
}

/* ------------------------------------------------------------------------ */
/* Library tables                                                           */
/* ------------------------------------------------------------------------ */

/* Columns of the library's tables that hold numbers or booleans; every
 * other column is text. A cell is only printed as a number (or boolean)
 * when its text is one, so an unexpected value stays a string. */
static const char *const numeric_cols[] = {
    "rows", "total_bytes", "changes", "entities", "corrections", "staleness_seconds", NULL,
};
static const char *const bool_cols[] = {"attached", "last_success", NULL};

static int in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

int cli_print_pltable(const cli *c, const pl_table *t)
{
    size_t rows = pl_table_rows(t), cols = pl_table_cols(t);
    int oom = 0;
    if (c->format == CLI_FORMAT_JSON) {
        cli_json j;
        jw_init(&j);
        jw_arr(&j);
        for (size_t r = 0; r < rows; r++) {
            jw_obj(&j);
            for (size_t k = 0; k < cols; k++) {
                const char *name = pl_table_colname(t, k);
                const char *v = pl_table_value(t, r, k);
                jw_key(&j, name);
                if (v && in_list(numeric_cols, name) && cli_is_json_number(v))
                    jw_raw(&j, v); /* NOLINT(bugprone-branch-clone): two reasons, kept apart */
                else if (v && in_list(bool_cols, name) &&
                         (strcmp(v, "true") == 0 || strcmp(v, "false") == 0))
                    jw_raw(&j, v);
                else
                    jw_str(&j, v);
            }
            jw_obj_end(&j);
        }
        jw_arr_end(&j);
        oom = jw_line(&j, stdout) != 0;
        jw_free(&j);
    } else {
        const char **names = calloc(cols ? cols : 1, sizeof *names);
        const char **cells = calloc(cols ? cols : 1, sizeof *cells);
        cli_table tt;
        memset(&tt, 0, sizeof tt);
        if (!names || !cells) {
            oom = 1;
        } else {
            for (size_t k = 0; k < cols; k++)
                names[k] = pl_table_colname(t, k);
            if (cli_table_init(&tt, cols, names) == 0) {
                for (size_t k = 0; k < cols; k++)
                    if (in_list(numeric_cols, names[k]))
                        cli_table_right(&tt, k);
                for (size_t r = 0; r < rows; r++) {
                    for (size_t k = 0; k < cols; k++)
                        cells[k] = pl_table_value(t, r, k);
                    cli_table_add(&tt, cells);
                }
            }
            oom = tt.oom;
            if (!oom)
                cli_table_flush(&tt, stdout);
        }
        cli_table_free(&tt);
        free(names);
        free(cells);
    }
    if (oom) {
        cli_note(c, "out of memory");
        return CLI_ERROR;
    }
    cli_note_origin(c, pl_table_origin(t), pl_table_staleness_us(t));
    return CLI_OK;
}

int cli_print_kv(const cli *c, const cli_kv *kv, size_t n)
{
    int oom = 0;
    if (c->format == CLI_FORMAT_JSON) {
        cli_json j;
        jw_init(&j);
        jw_obj(&j);
        for (size_t i = 0; i < n; i++) {
            jw_key(&j, kv[i].key);
            if (kv[i].raw)
                jw_raw(&j, kv[i].value);
            else
                jw_str(&j, kv[i].value);
        }
        jw_obj_end(&j);
        oom = jw_line(&j, stdout) != 0;
        jw_free(&j);
    } else {
        static const char *const names[] = {"key", "value"};
        cli_table t;
        if (cli_table_init(&t, 2, names) == 0) {
            for (size_t i = 0; i < n; i++) {
                const char *cells[2] = {kv[i].key, kv[i].value ? kv[i].value : "null"};
                cli_table_add(&t, cells);
            }
        }
        oom = t.oom;
        if (!oom)
            cli_table_flush(&t, stdout);
        cli_table_free(&t);
    }
    if (oom) {
        cli_note(c, "out of memory");
        return CLI_ERROR;
    }
    return CLI_OK;
}
