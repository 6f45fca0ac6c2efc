/*
 * provledger: the command line, help texts, errors and opening the ledger.
 * See cli.h for the shape of an invocation and provledger.1 for the manual.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Options and commands                                                     */
/* ------------------------------------------------------------------------ */

static const cli_opt global_opts[] = {
    {"pg", "CONNINFO", "libpq conninfo or URI (default: empty, so PGHOST, PGPORT... apply)"},
    {"redis", "URL", "Redis cache URL (default $PROVLEDGER_REDIS_URL; none: no cache)"},
    {"schema", "NAME", "ledger schema (default $PROVLEDGER_SCHEMA or \"provledger\")"},
    {"cache-prefix", "PREFIX", "Redis key prefix (default $PROVLEDGER_CACHE_PREFIX or \"pl:\")"},
    {"replica", "CONNINFO", "read replica for --allow-stale (default $PROVLEDGER_REPLICA)"},
    {"format", "FORMAT", "json or table (default: table on a terminal, else json)"},
    {"realtime", NULL, "read the primary directly: no cache, replica or view"},
    {"allow-stale", NULL, "accept answers that may lag (replica, materialized views)"},
    {"help", NULL, "print help and exit"},
    {"version", NULL, "print the version and exit"},
    {NULL, NULL, NULL},
};

static const cli_opt insert_opts[] = {
    {"entity", "ID", "entity id (required without --stdin)"},
    {"field", "NAME", "field name (required without --stdin)"},
    {"value", "JSON", "new value, any JSON text (required without --stdin)"},
    {"old", "JSON", "old value, JSON text"},
    {"source", "TYPE", "source type, e.g. import (required without --stdin)"},
    {"reason", "TEXT", "change reason"},
    {"metadata", "JSON", "metadata, a JSON object"},
    {"valid-from", "TIME", "start of valid time (default \"now\": the transaction time)"},
    {"valid-to", "TIME", "end of valid time, exclusive (default \"infinity\")"},
    {"idempotency-key", "KEY", "a retry with the same key lands once"},
    {"stdin", NULL, "read changes as JSON lines from standard input"},
    {"batch", "N", "with --stdin: changes per transaction, 1..100000 (default 1000)"},
    {"count", NULL, "print only how many changes were inserted"},
    {NULL, NULL, NULL},
};

/* The entity and the field of a read, as options: the same as the
 * positional arguments ENTITY and FIELD (main() merges them). */
#define ENTITY_OPT {"entity", "ID", "the entity (the same as the argument ENTITY)"}
#define FIELD_OPT {"field", "NAME", "the field (the same as the argument FIELD)"}

static const cli_opt current_opts[] = {
    ENTITY_OPT,
    FIELD_OPT,
    {NULL, NULL, NULL},
};

/* Paging and order of history and range. */
#define PAGE_OPTS                                                                        \
    {"limit", "N", "print one page of at most N records, 1..10000, and the next cursor"}, \
    {"cursor", "C", "the next page after cursor C (a next_cursor; --limit default 100)"},  \
    {"newest-first", NULL, "newest records first"}

static const cli_opt history_opts[] = {
    ENTITY_OPT,
    FIELD_OPT,
    PAGE_OPTS,
    {NULL, NULL, NULL},
};

static const cli_opt snapshot_opts[] = {
    ENTITY_OPT,
    {"tx", "T", "transaction time: RFC 3339, \"now\" or \"any\" (default now)"},
    {"valid", "V", "valid time: RFC 3339, \"now\" or \"any\" (default now)"},
    {NULL, NULL, NULL},
};

static const cli_opt as_of_opts[] = {
    ENTITY_OPT,
    FIELD_OPT,
    {"tx", "T", "transaction time: RFC 3339, \"now\" or \"any\" (default now)"},
    {"valid", "V", "valid time: RFC 3339, \"now\" or \"any\" (default now)"},
    {NULL, NULL, NULL},
};

static const cli_opt range_opts[] = {
    ENTITY_OPT,
    FIELD_OPT,
    {"from", "T", "transaction times from T (RFC 3339, \"now\" or \"any\"; default any)"},
    {"to", "T", "up to T, exclusive (RFC 3339, \"now\" or \"any\"; default any)"},
    PAGE_OPTS,
    {NULL, NULL, NULL},
};

static const cli_opt search_opts[] = {
    {"limit", "N", "records per page, 1..10000 (default 100)"},
    {"cursor", "C", "the next_cursor of the previous page"},
    {NULL, NULL, NULL},
};

static const cli_opt audit_opts[] = {
    {"from", "T", "transaction times from T (RFC 3339, \"now\" or \"any\"; default any)"},
    {"to", "T", "up to T, exclusive (RFC 3339, \"now\" or \"any\"; default any)"},
    {"source", "TYPE", "only records of this source type"},
    {NULL, NULL, NULL},
};

static const cli_opt refresh_opts[] = {
    {"schedule", "CRON", "refresh inside PostgreSQL with pg_cron on this schedule"},
    {"unschedule", NULL, "remove the pg_cron schedule"},
    {"status", NULL, "only print how fresh each view is"},
    {NULL, NULL, NULL},
};

static const cli_opt partitions_opts[] = {
    {"ensure", "N", "create missing partitions through N months ahead (0..120)"},
    {"detach-before", "T", "detach partitions whose range ends at or before T (RFC 3339)"},
    {"attach", "NAME", "re-attach the detached partition NAME"},
    {NULL, NULL, NULL},
};

static const cli_opt dash_changes_opts[] = {
    {"from", "T", "transaction times from T (RFC 3339, \"now\" or \"any\"; required)"},
    {"to", "T", "up to T, exclusive (RFC 3339, \"now\" or \"any\"; required)"},
    {"source", "TYPE", "only this source type"},
    {NULL, NULL, NULL},
};

static const cli_opt dash_corrections_opts[] = {
    {"from", "T", "transaction times from T (RFC 3339, \"now\" or \"any\"; required)"},
    {"to", "T", "up to T, exclusive (RFC 3339, \"now\" or \"any\"; required)"},
    {NULL, NULL, NULL},
};

static const cli_opt rollup_opts[] = {
    {"follow", NULL, "keep stepping until SIGINT or SIGTERM"},
    {"interval-ms", "N", "with --follow, pause between steps (default 1000)"},
    {NULL, NULL, NULL},
};

static const cli_opt seal_opts[] = {
    {"key", "FILE", "the Ed25519 private key (PEM, as openssl genpkey writes it)"},
    {"origin", "NAME", "the log's name in checkpoints (fixed by the first seal)"},
    {"follow", NULL, "keep sealing until SIGINT or SIGTERM"},
    {"interval-ms", "N", "with --follow, pause between seals (default 250)"},
    {NULL, NULL, NULL},
};

static const cli_opt checkpoint_opts[] = {
    {"verifier-key", NULL, "print the C2SP verifier key of --pub instead"},
    {"pub", "FILE", "the Ed25519 public key (PEM)"},
    {"origin", "NAME", "the key name (default: the log's origin)"},
    {NULL, NULL, NULL},
};

static const cli_opt verify_opts[] = {
    {"pub", "FILE", "the pinned Ed25519 public key (PEM); required"},
    {"checkpoint", "FILE", "a checkpoint note you kept: the log must extend it"},
    {"export", "DIR", "verify this export instead of the database"},
    {NULL, NULL, NULL},
};

static const cli_opt prove_opts[] = {
    {"consistency", "SIZE", "a consistency proof from the tree of SIZE leaves"},
    {"checkpoint", "FILE", "prove against this checkpoint's tree (default: the latest)"},
    {NULL, NULL, NULL},
};

static const cli_opt erase_opts[] = {
    {"entity", "ID", "the entity whose values are erased; required"},
    {"reason", "TEXT", "why (kept in the log)"},
    {NULL, NULL, NULL},
};

static const cli_opt export_opts[] = {
    {"out", "DIR", "the directory to write (created if missing); required"},
    {NULL, NULL, NULL},
};

const cli_cmd cli_commands[] = {
    {"migrate", {NULL}, 0, NULL, "create or upgrade the ledger schema",
     "Creates the ledger's schema or upgrades it to the version this library\n"
     "needs (idempotent, safe to run from many processes at once), with the\n"
     "monthly partitions from this month to three months ahead. Prints the\n"
     "schema version before and after.",
     cmd_migrate},
    {"insert", {NULL}, 0, insert_opts, "append one change, or JSON lines from stdin",
     "Appends one change given by options, or every change read from standard\n"
     "input: with --stdin, or without --entity when standard input is not a\n"
     "terminal. Input is one JSON object per line with the keys entity_id,\n"
     "field_name, new_value (required, any JSON value), source_type\n"
     "(required), old_value (any JSON; null: none), valid_from, valid_to\n"
     "(RFC 3339 strings or null), change_reason, metadata (an object) and\n"
     "idempotency_key; a UTF-8 byte order mark before the first line is\n"
     "skipped. JSON values (--value, --old, --metadata, and the values of a\n"
     "line) go to the library exactly as written, and the library decides\n"
     "what is valid (1e400 is). Every line is checked before anything is\n"
     "written: one bad line writes nothing and is reported with its line\n"
     "number and column (1-based, in characters). Changes are written in\n"
     "transactions of --batch changes, each all or nothing. Prints one receipt\n"
     "per change (id and transaction time), or the count.",
     cmd_insert},
    {"current", {"ENTITY", "FIELD"}, 2, current_opts, "the current value of one field",
     "Prints the record that answers for FIELD of ENTITY now: the latest\n"
     "recorded value whose valid interval covers the present.",
     cmd_current},
    {"as-of", {"ENTITY", "FIELD"}, 2, as_of_opts, "the value of one field at (tx, valid)",
     "Prints the record that answers for FIELD of ENTITY at transaction time\n"
     "--tx and valid time --valid: what the ledger knew at --tx about --valid.\n"
     "\"any\" drops the condition on that axis.",
     cmd_as_of},
    {"snapshot", {"ENTITY"}, 1, snapshot_opts, "every field of an entity at (tx, valid)",
     "Prints, for every field of ENTITY, the record that answers at --tx and\n"
     "--valid, ordered by field name.",
     cmd_snapshot},
    {"range", {"ENTITY", "FIELD"}, 1, range_opts, "records with transaction time in [from, to)",
     "Prints the records of ENTITY (or of its FIELD) whose transaction time\n"
     "lies in [--from, --to), oldest first (--newest-first: newest first),\n"
     "streamed from a server-side cursor. With --limit (or --cursor), prints\n"
     "one page and then the cursor of the next: in JSON, a last line\n"
     "{\"next_cursor\": \"...\"}, null on the last page.",
     cmd_range},
    {"history", {"ENTITY", "FIELD"}, 1, history_opts, "every record of an entity or field",
     "Prints every record of ENTITY (or of its FIELD), oldest first\n"
     "(--newest-first: newest first), streamed from a server-side cursor.\n"
     "With --limit (or --cursor), prints one page and then the cursor of the\n"
     "next: in JSON, a last line {\"next_cursor\": \"...\"}, null on the last\n"
     "page.",
     cmd_history},
    {"search", {"JSON"}, 1, search_opts, "records whose metadata contains JSON",
     "Prints one page of the records whose metadata contains the JSON object\n"
     "given (JSON containment), newest first, and the cursor of the next page\n"
     "(null on the last page). The query is compacted and its keys sorted\n"
     "(numbers and strings kept as written) before it goes to the library, so\n"
     "a cursor does not depend on the query's whitespace or key order.",
     cmd_search},
    {"audit", {NULL}, 0, audit_opts, "stream every record of a period or source",
     "Streams every record with transaction time in [--from, --to), optionally\n"
     "of one source type, oldest first, from a server-side cursor: a report of\n"
     "millions of records never sits in memory.",
     cmd_audit},
    {"stats", {NULL}, 0, NULL, "this process's library counters",
     "Connects, reads the schema version, and prints the library's counters\n"
     "for this invocation (pl_stats) with the database's schema version.",
     cmd_stats},
    {"refresh", {NULL}, 0, refresh_opts, "refresh the materialized views",
     "Refreshes the materialized views provenance_latest and\n"
     "provenance_daily_stats concurrently (readers are never blocked), then\n"
     "prints how fresh each view is. --schedule and --unschedule manage a\n"
     "pg_cron job instead; --status only prints the freshness.",
     cmd_refresh},
    {"partitions", {NULL}, 0, partitions_opts, "list, create, detach or attach partitions",
     "Without options, lists the monthly partitions, attached and detached,\n"
     "with their sizes. --ensure creates partitions ahead; --detach-before\n"
     "detaches (never drops) old partitions, keeping their data in standalone\n"
     "tables; --attach brings one back.",
     cmd_partitions},
    {"health", {NULL}, 0, NULL, "the ledger's health report, as JSON",
     "Prints the health report: view staleness and last refresh, partitions and\n"
     "sizes, index usage, slow statements (with pg_stat_statements), counters,\n"
     "and the alerts that fire.",
     cmd_health},
    {"dashboard changes", {NULL}, 0, dash_changes_opts, "changes per day and source type",
     "Prints the number of changes and of distinct entities per UTC day and\n"
     "source type with transaction time in [--from, --to). With --allow-stale\n"
     "the materialized view may answer; the staleness is reported on stderr.",
     cmd_dashboard_changes},
    {"dashboard corrections", {NULL}, 0, dash_corrections_opts,
     "retroactive changes by entity type and field",
     "Prints the number of corrections (records valid from before their\n"
     "transaction time) per entity type and field with transaction time in\n"
     "[--from, --to), most first.",
     cmd_dashboard_corrections},
    {"rollup", {NULL}, 0, rollup_opts, "advance the exact dashboards' rollup",
     "Adds every record committed since the last step to the rollup that the\n"
     "dashboards read (they add the records after it from the base table, so\n"
     "they are exact whenever this runs) and prints {\"rolled\": N}. With\n"
     "--follow, steps every --interval-ms and prints each step that added\n"
     "records.",
     cmd_rollup},
    {"seal", {NULL}, 0, seal_opts, "seal committed records into the log, sign a checkpoint",
     "Appends every committed record (and erasure) not yet sealed to the\n"
     "transparency log and prints the new checkpoint note, signed with --key.\n"
     "Records whose transaction time is not after the last sealed record of\n"
     "their entity are refused (reported, exit status 4). With --follow, keeps\n"
     "sealing every --interval-ms and prints each checkpoint as the tree grows.",
     cmd_seal},
    {"checkpoint", {NULL}, 0, checkpoint_opts, "print the latest checkpoint note",
     "Prints the latest signed checkpoint note, as C2SP tlog-checkpoint. With\n"
     "--verifier-key --pub FILE, prints the C2SP verifier key string of that\n"
     "public key for the log's origin (name+hash+key) instead.",
     cmd_checkpoint},
    {"verify", {NULL}, 0, verify_opts, "check the ledger against its log and signatures",
     "Recomputes every leaf from the rows, rebuilds the tree, checks every\n"
     "checkpoint's signature with --pub and that the log extends --checkpoint.\n"
     "Prints one JSON object per finding, then a summary object; exit status 0\n"
     "when the only findings are ERASED, 4 when any other exists. With\n"
     "--export DIR it checks an export and needs no database.",
     cmd_verify},
    {"prove", {"ID"}, 0, prove_opts, "an inclusion or consistency proof",
     "Prints the RFC 9162 inclusion proof of record ID against the latest\n"
     "checkpoint (or --checkpoint's tree), or with --consistency SIZE the\n"
     "consistency proof from the tree of SIZE leaves to it. Hashes are\n"
     "lower-case hex.",
     cmd_prove},
    {"erase", {NULL}, 0, erase_opts, "erase every value of one entity (legal erasure)",
     "Removes every value of ENTITY's records (new and old value, metadata,\n"
     "change reason); the records, their times and the log stay, and every\n"
     "checkpoint still verifies (verify reports ERASED).",
     cmd_erase},
    {"export", {NULL}, 0, export_opts, "write the ledger and its log for offline checks",
     "Writes the records, the log's leaves, the checkpoints and the commitment\n"
     "keys to --out as JSON lines (README \"Export format\"), for verify --export.",
     cmd_export},
    {"version", {NULL}, 0, NULL, "print the versions of the tool, library and schema",
     "Prints the version of this tool, of the library it runs with, and the\n"
     "schema version the library creates. Needs no database.",
     cmd_version},
    {NULL, {NULL}, 0, NULL, NULL, NULL, NULL},
};

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

/* Writes S with every control character (newlines too) as a space, so
 * that a message stays one line. */
static void put_oneline(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, f);
}

static void vmessage(const char *cmd, const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    fputs("provledger: ", stderr);
    if (cmd) {
        put_oneline(stderr, cmd);
        fputs(": ", stderr);
    }
    put_oneline(stderr, buf);
    fputc('\n', stderr);
}

/* (cli_bad): not the analyzer's macro of cli.h */
int (cli_bad)(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(c && c->cmd ? c->cmd->name : NULL, fmt, ap);
    va_end(ap);
    return CLI_USAGE;
}

void cli_note(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(c && c->cmd ? c->cmd->name : NULL, fmt, ap);
    va_end(ap);
}

int cli_fail(const cli *c, int rc, const char *context)
{
    const char *msg = pl_errmsg();
    if (rc == PL_NOT_FOUND) {
        cli_note(c, "%s%s%s", pl_strerror(rc), context ? ": " : "", context ? context : "");
        return CLI_NOT_FOUND;
    }
    if (msg && *msg)
        cli_note(c, "%s: %s%s%s", pl_strerror(rc), msg, context ? " " : "", context ? context : "");
    else
        cli_note(c, "%s%s%s", pl_strerror(rc), context ? " " : "", context ? context : "");
    return rc == PL_EINVAL ? CLI_USAGE : CLI_ERROR;
}

/* ------------------------------------------------------------------------ */
/* Argument parsing helpers                                                 */
/* ------------------------------------------------------------------------ */

const char *cli_get(const cli *c, const char *name)
{
    if (!c->cmd->opts)
        return NULL;
    for (size_t i = 0; c->cmd->opts[i].name; i++)
        if (strcmp(c->cmd->opts[i].name, name) == 0)
            return c->val[i];
    return NULL;
}

int cli_parse_time(const cli *c, const char *opt, const char *text, int allow_now,
                   int allow_any, int allow_inf, pl_time *out)
{
    if (allow_now && strcmp(text, "now") == 0) {
        *out = PL_TIME_NOW;
        return CLI_OK;
    }
    if (allow_any && strcmp(text, "any") == 0) {
        *out = PL_TIME_ANY;
        return CLI_OK;
    }
    pl_time t;
    if (pl_time_parse(&t, text) == PL_OK && (allow_inf || t != PL_TIME_INFINITY)) {
        *out = t;
        return CLI_OK;
    }
    char also[64] = "";
    const char *words[3];
    int n = 0;
    if (allow_now)
        words[n++] = "\"now\"";
    if (allow_any)
        words[n++] = "\"any\"";
    if (allow_inf)
        words[n++] = "\"infinity\"";
    for (int i = 0; i < n; i++) {
        size_t at = strlen(also);
        snprintf(also + at, sizeof also - at, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                 words[i]);
    }
    return cli_bad(c, "%s: expected an RFC 3339 time such as 2025-01-31T12:00:00Z%s%s, got '%s'",
                   opt, n ? ", " : "", also, text);
}

int cli_parse_int(const cli *c, const char *opt, const char *text, long long min,
                  long long max, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno || v < min || v > max || (text[0] == ' '))
        return cli_bad(c, "%s: expected an integer from %lld to %lld, got '%s'", opt, min, max,
                       text);
    *out = v;
    return CLI_OK;
}

static volatile sig_atomic_t follow_stopped;

static void on_follow_stop(int sig)
{
    (void)sig;
    follow_stopped = 1;
}

int cli_follow_options(const cli *c, long long default_ms, int *follow, long long *interval_ms)
{
    *interval_ms = default_ms;
    *follow = cli_get(c, "follow") != NULL;
    const char *iv = cli_get(c, "interval-ms");
    if (iv && !*follow)
        return cli_bad(c, "--interval-ms needs --follow");
    if (iv && cli_parse_int(c, "--interval-ms", iv, 1, 3600000, interval_ms) != CLI_OK)
        return CLI_USAGE;
    if (*follow) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_follow_stop;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    return CLI_OK;
}

int cli_follow_wait(long long interval_ms)
{
    for (long long waited = 0; !follow_stopped && waited < interval_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return !follow_stopped;
}

/* ------------------------------------------------------------------------ */
/* The ledger                                                               */
/* ------------------------------------------------------------------------ */

int cli_open(cli *c)
{
    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = c->pg;
    cfg.schema = c->schema;
    cfg.redis_url = c->redis;
    if (c->cache_prefix)
        cfg.cache_key_prefix = c->cache_prefix;
    cfg.replica_conninfo = c->replica;
    /* One statement at a time, plus the connection an audit iterator holds. */
    cfg.pool_size = 2;
    int rc = pl_open(&c->l, &cfg);
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    return CLI_OK;
}

int cli_finish(const cli *c, int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_note(c, "cannot write the output: %s", strerror(errno));
        return CLI_ERROR;
    }
    return status;
}

/* ------------------------------------------------------------------------ */
/* Help                                                                     */
/* ------------------------------------------------------------------------ */

static void print_opts(FILE *f, const cli_opt *opts)
{
    for (size_t i = 0; opts && opts[i].name; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-24s %s\n", left, opts[i].help);
    }
}

static void print_synopsis(FILE *f, const cli_cmd *cmd)
{
    fprintf(f, "Usage: provledger [GLOBAL OPTIONS] %s", cmd->name);
    for (size_t i = 0; i < CLI_MAX_POS && cmd->pos[i]; i++)
        fprintf(f, i < cmd->min_pos ? " %s" : " [%s]", cmd->pos[i]);
    if (cmd->opts)
        fputs(" [OPTIONS]", f);
    fputc('\n', f);
}

static void print_cmd_help(FILE *f, const cli_cmd *cmd)
{
    print_synopsis(f, cmd);
    fprintf(f, "\n%s\n", cmd->description);
    if (cmd->opts) {
        fputs("\nOptions:\n", f);
        print_opts(f, cmd->opts);
    }
    fputs("\nGlobal options (before or after the command):\n", f);
    print_opts(f, global_opts);
    fputs("\nExit status: 0 success, 1 error, 2 bad usage or input, 3 not found.\n"
          "See provledger(1).\n",
          f);
}

static void print_help(FILE *f)
{
    fputs("Usage: provledger [GLOBAL OPTIONS] COMMAND [ARGUMENTS] [OPTIONS]\n"
          "\n"
          "Drives a provledger bitemporal provenance ledger in PostgreSQL.\n"
          "\n"
          "Commands:\n",
          f);
    for (const cli_cmd *cmd = cli_commands; cmd->name; cmd++)
        fprintf(f, "  %-22s %s\n", cmd->name, cmd->summary);
    fputs("  help [COMMAND]         print help for a command\n"
          "\nGlobal options:\n",
          f);
    print_opts(f, global_opts);
    fputs("\n"
          "Times are RFC 3339 (2025-01-31T12:00:00Z, 2025-01-31T13:00:00+01:00);\n"
          "where the help says so, \"now\" (the server's time) and \"any\" (no\n"
          "condition) are accepted too. Values, old values and metadata are JSON,\n"
          "passed to the library as written; the library judges them. An option\n"
          "given twice is an error. ENTITY and FIELD arguments may also be given\n"
          "as --entity and --field.\n"
          "\n"
          "Environment: PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD and the other\n"
          "libpq variables; PROVLEDGER_REDIS_URL, PROVLEDGER_SCHEMA,\n"
          "PROVLEDGER_CACHE_PREFIX, PROVLEDGER_REPLICA.\n"
          "\n"
          "Exit status: 0 success, 1 error, 2 bad usage or input, 3 not found.\n"
          "Run 'provledger COMMAND --help' for a command's options; see provledger(1).\n",
          f);
}

static void print_version(void)
{
    printf("provledger %s (libprovledger %s, schema version %d)\n", PL_VERSION_STRING,
           pl_version(), PL_SCHEMA_VERSION);
}

/* ------------------------------------------------------------------------ */
/* The command line                                                         */
/* ------------------------------------------------------------------------ */

static const cli_cmd *find_cmd(const char *name)
{
    for (const cli_cmd *cmd = cli_commands; cmd->name; cmd++)
        if (strcmp(cmd->name, name) == 0)
            return cmd;
    return NULL;
}

/* Finds option NAME (NLEN bytes) in OPTS; returns its index or -1. */
static int find_opt(const cli_opt *opts, const char *name, size_t nlen)
{
    for (int i = 0; opts && opts[i].name; i++)
        if (strlen(opts[i].name) == nlen && memcmp(opts[i].name, name, nlen) == 0)
            return i;
    return -1;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* The parse of one command line; the first error is kept (and reported
 * only when --help was not asked for). */
typedef struct parse_state {
    char err[1024];
    int has_err;
    int help, version;
    const char *global_val[sizeof global_opts / sizeof global_opts[0]];
} parse_state;

static void parse_error(parse_state *ps, const cli_cmd *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void parse_error(parse_state *ps, const cli_cmd *cmd, const char *fmt, ...)
{
    if (ps->has_err)
        return;
    ps->has_err = 1;
    size_t off = 0;
    if (cmd)
        off = (size_t)snprintf(ps->err, sizeof ps->err, "%s: ", cmd->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err + off, sizeof ps->err - off, fmt, ap);
    va_end(ap);
}

/* Parses the option at argv[*i] (it starts with '-'); advances *i past
 * its argument. */
static void parse_option(parse_state *ps, cli *c, const cli_cmd *cmd, int argc, char **argv,
                         int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "-h") == 0) {
        ps->help = 1;
        return;
    }
    if (a[1] != '-') {
        parse_error(ps, cmd, "unknown option '%s'", a);
        return;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const cli_opt *opt;
    const char **slot;
    int k = cmd ? find_opt(cmd->opts, name, nlen) : -1;
    if (k >= 0) {
        opt = &cmd->opts[k];
        slot = &c->val[k];
    } else if ((k = find_opt(global_opts, name, nlen)) >= 0) {
        opt = &global_opts[k];
        slot = &ps->global_val[k];
    } else {
        parse_error(ps, cmd, "unknown option '--%.*s'", (int)nlen, name);
        return;
    }
    /* Twice is a mistake (a script that sets a default and a user who
     * overrides it should not depend on which one wins). */
    if (*slot) {
        parse_error(ps, cmd, "option '--%s' given twice", opt->name);
        if (opt->arg && !eq && *i + 1 < argc)
            ++*i; /* its argument is no command word */
        return;
    }
    if (!opt->arg) {
        if (eq) {
            parse_error(ps, cmd, "option '--%s' takes no argument", opt->name);
            return;
        }
        if (strcmp(opt->name, "help") == 0)
            ps->help = 1;
        else if (strcmp(opt->name, "version") == 0)
            ps->version = 1;
        *slot = "";
        return;
    }
    if (eq) {
        *slot = eq + 1;
    } else if (*i + 1 < argc) {
        *slot = argv[++*i];
    } else {
        parse_error(ps, cmd, "option '--%s' needs an argument %s", opt->name, opt->arg);
    }
}

static const char *global(const parse_state *ps, const char *name)
{
    int k = find_opt(global_opts, name, strlen(name));
    return k >= 0 ? ps->global_val[k] : NULL;
}

/* The option that stands for positional argument I of the command (its
 * name in lower case: ENTITY -> --entity), in NAME; returns its value or
 * NULL when it is not given (or the command has no such option). */
static const char *pos_option(const cli *c, size_t i, char *name, size_t len)
{
    const char *p = c->cmd->pos[i];
    size_t k = 0;
    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): i < min_pos <= the names in pos[] */
    for (; p[k] && k + 1 < len; k++)
        name[k] = (char)(p[k] >= 'A' && p[k] <= 'Z' ? p[k] - 'A' + 'a' : p[k]);
    name[k] = '\0';
    return cli_get(c, name);
}

int main(int argc, char **argv)
{
    cli c;
    memset(&c, 0, sizeof c);
    parse_state ps;
    memset(&ps, 0, sizeof ps);

    const cli_cmd *cmd = NULL;
    int help_cmd = 0;        /* "provledger help [COMMAND]" */
    int dashboard_only = 0;  /* "provledger dashboard" without a subcommand */
    int bad_cmd = 0;         /* a command word names no command */
    int opts_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && strcmp(a, "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (!opts_done && a[0] == '-' && a[1]) {
            parse_option(&ps, &c, cmd, argc, argv, &i);
            continue;
        }
        if (cmd || dashboard_only) {
            if (dashboard_only && !cmd) {
                char name[64];
                snprintf(name, sizeof name, "dashboard %s", a);
                if (!(cmd = find_cmd(name)) || strchr(a, ' ')) {
                    cmd = NULL;
                    bad_cmd = 1;
                    parse_error(&ps, NULL,
                                "dashboard: unknown subcommand '%s' (changes or corrections)", a);
                    break;
                }
                dashboard_only = 0;
                continue;
            }
            if (c.npos < CLI_MAX_POS && cmd->pos[c.npos])
                c.pos[c.npos++] = a;
            else
                parse_error(&ps, cmd, "unexpected argument '%s'", a);
            continue;
        }
        if (help_cmd) {
            /* help COMMAND [SUBCOMMAND] */
            if (strcmp(a, "dashboard") == 0) {
                dashboard_only = 1;
            } else if (!(cmd = find_cmd(a)) || strchr(a, ' ')) {
                cmd = NULL;
                bad_cmd = 1;
                parse_error(&ps, NULL, "help: unknown command '%s'", a);
                break;
            }
            continue;
        }
        if (strcmp(a, "help") == 0) {
            help_cmd = 1;
            ps.help = 1;
        } else if (strcmp(a, "dashboard") == 0) {
            dashboard_only = 1;
        } else if (!(cmd = find_cmd(a)) || strchr(a, ' ')) {
            cmd = NULL;
            bad_cmd = 1;
            parse_error(&ps, NULL, "%s: unknown command (try 'provledger --help')", a);
            break;
        }
    }
    c.cmd = cmd;

    if (ps.help && !bad_cmd) {
        if (cmd) {
            print_cmd_help(stdout, cmd);
        } else if (dashboard_only) {
            printf("Usage: provledger [GLOBAL OPTIONS] dashboard changes|corrections [OPTIONS]\n\n");
            for (const cli_cmd *d = cli_commands; d->name; d++)
                if (strncmp(d->name, "dashboard ", 10) == 0)
                    printf("  %-22s %s\n", d->name, d->summary);
            printf("\nRun 'provledger dashboard SUBCOMMAND --help' for its options.\n");
        } else {
            print_help(stdout);
        }
        return cli_finish(&c, CLI_OK);
    }
    if (ps.version && !bad_cmd) {
        print_version();
        return cli_finish(&c, CLI_OK);
    }
    if (ps.has_err) {
        fputs("provledger: ", stderr);
        put_oneline(stderr, ps.err);
        fputc('\n', stderr);
        return CLI_USAGE;
    }
    if (dashboard_only && !cmd) {
        fputs("provledger: dashboard: missing subcommand (changes or corrections)\n", stderr);
        return CLI_USAGE;
    }
    if (!cmd) {
        fputs("provledger: missing command (try 'provledger --help')\n", stderr);
        return CLI_USAGE;
    }
    /* ENTITY and FIELD may be given as --entity and --field too. Positional
     * arguments keep their places (the first is ENTITY, the second FIELD),
     * so an option and a positional argument for one place must agree. */
    for (size_t i = 0; i < CLI_MAX_POS && cmd->pos[i]; i++) {
        char name[32];
        const char *v = pos_option(&c, i, name, sizeof name);
        if (!v)
            continue;
        if (c.pos[i] && strcmp(c.pos[i], v) != 0)
            return cli_bad(&c, "%s given twice: '%s' (argument %zu) and --%s '%s'", cmd->pos[i],
                           c.pos[i], i + 1, name, v);
        c.pos[i] = v;
    }
    for (size_t i = 0; i < cmd->min_pos; i++) {
        char name[32];
        if (c.pos[i])
            continue;
        pos_option(&c, i, name, sizeof name);
        if (find_opt(cmd->opts, name, strlen(name)) >= 0)
            return cli_bad(&c, "missing argument %s or --%s (try 'provledger %s --help')",
                           cmd->pos[i], name, cmd->name);
        return cli_bad(&c, "missing argument %s (try 'provledger %s --help')", cmd->pos[i],
                       cmd->name);
    }

    /* Global settings: options, then environment, then defaults. */
    c.stdout_tty = isatty(STDOUT_FILENO);
    c.stderr_tty = isatty(STDERR_FILENO);
    const char *fmt = global(&ps, "format");
    if (!fmt)
        c.format = c.stdout_tty ? CLI_FORMAT_TABLE : CLI_FORMAT_JSON;
    else if (strcmp(fmt, "json") == 0)
        c.format = CLI_FORMAT_JSON;
    else if (strcmp(fmt, "table") == 0)
        c.format = CLI_FORMAT_TABLE;
    else
        return cli_bad(&c, "--format: expected json or table, got '%s'", fmt);
    if (global(&ps, "realtime"))
        c.flags |= PL_REALTIME;
    if (global(&ps, "allow-stale")) {
        if (c.flags & PL_REALTIME)
            return cli_bad(&c, "--realtime and --allow-stale exclude each other");
        c.flags |= PL_ALLOW_STALE;
    }
    c.pg = global(&ps, "pg") ? global(&ps, "pg") : "";
    c.redis = global(&ps, "redis") ? global(&ps, "redis") : env_or("PROVLEDGER_REDIS_URL", NULL);
    if (c.redis && !*c.redis)
        c.redis = NULL; /* --redis "" turns the cache off */
    c.schema = global(&ps, "schema") ? global(&ps, "schema")
                                     : env_or("PROVLEDGER_SCHEMA", "provledger");
    c.cache_prefix = global(&ps, "cache-prefix") ? global(&ps, "cache-prefix")
                                                 : env_or("PROVLEDGER_CACHE_PREFIX", NULL);
    c.replica = global(&ps, "replica") ? global(&ps, "replica")
                                       : env_or("PROVLEDGER_REPLICA", NULL);
    if (c.replica && !*c.replica)
        c.replica = NULL;

    int status = cmd->run(&c);
    status = cli_finish(&c, status);
    pl_close(c.l);
    return status;
}
