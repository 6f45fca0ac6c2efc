/*
 * provledger, the command-line tool: declarations shared by its files.
 *
 * The tool is a client of the public API only (<provledger.h>), plus
 * jansson to indent the health report. JSON input is never decoded: the
 * library judges it as the user wrote it (json_scan.c only finds where
 * each value of an input line lies). One invocation runs one command:
 *
 *     provledger [GLOBAL OPTIONS] COMMAND [ARGUMENTS] [OPTIONS]
 *
 * provledger.c parses the command line and reports errors, output.c prints
 * JSON and tables, json_scan.c splits JSON texts, cmd_*.c run the commands.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PL_CLI_H
#define PL_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <provledger.h>

/* Exit statuses (documented in provledger.1, EXIT STATUS). */
enum cli_exit {
    CLI_OK = 0,        /* success */
    CLI_ERROR = 1,     /* the library or a server failed */
    CLI_USAGE = 2,     /* bad command line or bad input; nothing written */
    CLI_NOT_FOUND = 3, /* no record answers the question */
    CLI_FINDINGS = 4   /* verify found tampering; seal refused records */
};

enum cli_format { CLI_FORMAT_JSON = 0, CLI_FORMAT_TABLE = 1 };

/* One option of a command: --name or --name ARG. */
typedef struct cli_opt {
    const char *name;  /* without the leading "--" */
    const char *arg;   /* placeholder of its argument; NULL for a flag */
    const char *help;  /* one line */
} cli_opt;

#define CLI_MAX_POS 4
#define CLI_MAX_OPTS 20

typedef struct cli cli;

/* One command. */
typedef struct cli_cmd {
    const char *name;                /* "current", "dashboard changes" */
    const char *pos[CLI_MAX_POS];    /* positional argument names */
    size_t min_pos;                  /* how many of them are required */
    const cli_opt *opts;             /* ends with a NULL name; may be NULL */
    const char *summary;             /* one line, for the command list */
    const char *description;         /* a paragraph, for COMMAND --help */
    int (*run)(cli *c);              /* returns an exit status */
} cli_cmd;

/* The parsed command line of one invocation. */
struct cli {
    const cli_cmd *cmd;
    const char *pos[CLI_MAX_POS];
    size_t npos;
    const char *val[CLI_MAX_OPTS];   /* by index in cmd->opts; "" for a flag */
    enum cli_format format;
    unsigned flags;                  /* PL_REALTIME, PL_ALLOW_STALE */
    const char *pg;                  /* libpq conninfo ("" = PG* variables) */
    const char *redis;               /* Redis URL or NULL */
    const char *schema;
    const char *cache_prefix;        /* NULL: the library's default */
    const char *replica;             /* replica conninfo or NULL */
    int stdout_tty, stderr_tty;
    pl_ledger *l;                    /* after cli_open() */
};

/* The command table (provledger.c). */
extern const cli_cmd cli_commands[];

/* --- provledger.c: options, errors, the ledger --------------------------- */

/* The value of option --name of the running command: NULL when absent,
 * "" for a flag that is present. */
const char *cli_get(const cli *c, const char *name);

/* Prints "provledger: COMMAND: MESSAGE" on stderr and returns CLI_USAGE. */
int cli_bad(const cli *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
#ifdef __clang_analyzer__
/* For the static analyzer only (`./dev.sh lint`), which cannot see into
 * provledger.c: cli_bad returns CLI_USAGE, never CLI_OK. */
#define cli_bad(c, ...) (cli_bad((c), __VA_ARGS__), CLI_USAGE)
#endif

/* Prints a library failure, "provledger: COMMAND: <pl_strerror>: <pl_errmsg>"
 * (with CONTEXT appended when not NULL), and returns the exit status for
 * rc: CLI_USAGE for PL_EINVAL, CLI_NOT_FOUND for PL_NOT_FOUND, else
 * CLI_ERROR. */
int cli_fail(const cli *c, int rc, const char *context);

/* Prints "provledger: COMMAND: MESSAGE" on stderr (no exit status). */
void cli_note(const cli *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Opens the ledger from the global options; returns CLI_OK or the exit
 * status of the failure (already reported). */
int cli_open(cli *c);

/* Parses a time argument of option OPT (for messages): RFC 3339; "now"
 * when allow_now (-> PL_TIME_NOW); "any" when allow_any (-> PL_TIME_ANY);
 * "infinity" when allow_inf (-> PL_TIME_INFINITY). Returns CLI_OK or
 * CLI_USAGE (reported). */
int cli_parse_time(const cli *c, const char *opt, const char *text, int allow_now,
                   int allow_any, int allow_inf, pl_time *out);

/* Parses a decimal integer in [min, max]; returns CLI_OK or CLI_USAGE. */
int cli_parse_int(const cli *c, const char *opt, const char *text, long long min,
                  long long max, long long *out);

/* --follow and --interval-ms of a command that repeats a step (seal,
 * rollup): *follow and *interval_ms (default_ms without the option);
 * with --follow, SIGINT and SIGTERM make cli_follow_wait() return 0.
 * Returns CLI_OK or CLI_USAGE (reported). */
int cli_follow_options(const cli *c, long long default_ms, int *follow, long long *interval_ms);

/* Pauses interval_ms between steps; 0 once a stop signal came (at once
 * when it comes during the pause), 1 to go on. */
int cli_follow_wait(long long interval_ms);

/* Flushes stdout; on a write error reports it and returns CLI_ERROR. */
int cli_finish(const cli *c, int status);

/* --- json_scan.c: JSON texts as the user wrote them --------------------- */

/* One member of an object: its name decoded, its value as a slice of the
 * text (not NUL-terminated). */
typedef struct cli_jmember {
    char *key;            /* decoded name, owned */
    const char *name;     /* the name as written, at its opening quote */
    const char *val;      /* the value as written */
    size_t val_len;
} cli_jmember;

/* Splits the one JSON object of TEXT (LEN bytes) into its members, in
 * order. Only the structure needed to find the slices is checked; values
 * are the library's to validate. Returns 0 (*out: free with
 * cli_jmembers_free), 1 for a structural error (*err_off: its byte offset,
 * *err: what it is) or -1 when out of memory. */
int cli_json_members(const char *text, size_t len, cli_jmember **out, size_t *n,
                     size_t *err_off, const char **err);
void cli_jmembers_free(cli_jmember *m, size_t n);

/* Decodes the JSON string token RAW (LEN bytes, quotes included) into a
 * new C string. Returns 0, 1 (bad: *err_off, *why) or -1 (no memory). */
int cli_json_string(const char *raw, size_t len, char **out, size_t *err_off, const char **why);

/* The canonical text of a JSON object: no whitespace, members sorted by
 * name, every number and string byte for byte as written. NULL when TEXT
 * is not plain valid JSON of that kind (or out of memory): the caller then
 * passes the original on, for the library to judge. Free with free(). */
char *cli_json_canonical(const char *text);

/* The 1-based column, in characters, of byte OFF of UTF-8 TEXT (a byte
 * that is not part of valid UTF-8 counts as one character). */
size_t cli_utf8_column(const char *text, size_t off);

/* Decodes one UTF-8 character of S (LEN > 0 bytes) into *cp (U+FFFD for
 * a bad byte); returns how many bytes it took (1 for a bad byte). */
size_t cli_utf8_decode(const char *s, size_t len, uint32_t *cp);

/* Columns that code point CP takes on a terminal: 0 (combining marks,
 * zero-width characters), 1, or 2 (East Asian wide and fullwidth, emoji). */
int cli_char_width(uint32_t cp);

/* --- output.c: JSON writer -------------------------------------------------- */

/* A growing JSON text. Values are written in order; commas are automatic. */
typedef struct cli_json {
    char *s;
    size_t len, cap;
    int oom;
    int depth;
    unsigned char first[64];  /* per nesting level: no value written yet */
    int after_key;
} cli_json;

void jw_init(cli_json *j);
void jw_free(cli_json *j);
void jw_reset(cli_json *j);
void jw_obj(cli_json *j);
void jw_obj_end(cli_json *j);
void jw_arr(cli_json *j);
void jw_arr_end(cli_json *j);
void jw_key(cli_json *j, const char *key);
void jw_str(cli_json *j, const char *s);         /* NULL: null */
void jw_raw(cli_json *j, const char *json);      /* JSON text; NULL: null */
void jw_int(cli_json *j, long long v);
void jw_uint(cli_json *j, unsigned long long v);
void jw_double(cli_json *j, double v);
void jw_bool(cli_json *j, int v);
void jw_null(cli_json *j);
void jw_time(cli_json *j, pl_time t);            /* open end: null */
/* Writes the text and a newline to F and resets J; returns -1 when out of
 * memory. */
int jw_line(cli_json *j, FILE *f);

/* True when TEXT is a JSON number literal. */
int cli_is_json_number(const char *text);

/* --- output.c: tables --------------------------------------------------- */

/* Rows of text cells printed as aligned columns. For streamed output,
 * cli_table_flush() prints what is buffered (the header the first time);
 * column widths only grow. */
typedef struct cli_table {
    size_t ncols;
    const char **names;
    int *right;           /* right-align this column */
    size_t *width;
    char **cells;         /* rows * ncols, owned */
    size_t rows, cap;
    size_t max_cell;      /* longer cells are cut, with "..." (0: no limit) */
    int header_done;
    int oom;
} cli_table;

int cli_table_init(cli_table *t, size_t ncols, const char *const *names);
void cli_table_right(cli_table *t, size_t col);
/* Adds a row of ncols cells (NULL prints as empty); copies them. */
void cli_table_add(cli_table *t, const char *const *cells);
void cli_table_flush(cli_table *t, FILE *f);
void cli_table_free(cli_table *t);

/* --- output.c: records and library tables -------------------------------- */

/* Appends record R as a JSON object to J. */
void cli_record_json(cli_json *j, const pl_record *r);

/* A table for records (cli_record_row adds one). */
int cli_record_table(cli_table *t);
void cli_record_row(cli_table *t, const pl_record *r);

/* Prints every record of R in the chosen format; returns an exit status. */
int cli_print_result(const cli *c, const pl_result *r);

/* Prints a library table: a JSON array of objects, or aligned columns. */
int cli_print_pltable(const cli *c, const pl_table *t);

/* Notes on stderr when an answer may be stale (replica or view). */
void cli_note_origin(const cli *c, int origin, int64_t staleness_us);

/* One key and value of a single-object answer. */
typedef struct cli_kv {
    const char *key;
    const char *value;   /* NULL: null */
    int raw;             /* value is JSON text (a number, true, false) */
} cli_kv;

/* Prints one object: JSON, or a two-column table of keys and values. */
int cli_print_kv(const cli *c, const cli_kv *kv, size_t n);

/* --- the commands ------------------------------------------------------- */

int cmd_migrate(cli *c);
int cmd_insert(cli *c);
int cmd_current(cli *c);
int cmd_as_of(cli *c);
int cmd_snapshot(cli *c);
int cmd_range(cli *c);
int cmd_history(cli *c);
int cmd_search(cli *c);
int cmd_audit(cli *c);
int cmd_stats(cli *c);
int cmd_refresh(cli *c);
int cmd_partitions(cli *c);
int cmd_health(cli *c);
int cmd_dashboard_changes(cli *c);
int cmd_dashboard_corrections(cli *c);
int cmd_version(cli *c);
int cmd_rollup(cli *c);
int cmd_seal(cli *c);
int cmd_checkpoint(cli *c);
int cmd_verify(cli *c);
int cmd_prove(cli *c);
int cmd_erase(cli *c);
int cmd_export(cli *c);

#endif
