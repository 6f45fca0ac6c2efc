/* pgbench on the same data in the same run: script files holding the SQL
 * of the library's own statements (copied from lib/sql/statements/,
 * schema "bench"; keep them in step), with entities drawn with the same recency skew and times drawn
 * from the same entity windows as the library's client threads; and the
 * baselines: a primary-key lookup in provenance_current, the design
 * record's current-state query on the ledger, and that query without
 * indexes. Runs `pgbench -M prepared -n` and parses its summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const char *const script_files[PGB_NSCRIPTS] = {
    "pgb_current.sql", "pgb_range.sql", "pgb_asof.sql",    "pgb_history.sql",
    "pgb_analytics.sql", "pgb_pk.sql",  "pgb_ledger_tt.sql", "pgb_naive.sql",
    "pgb_audit.sql",     "pgb_audit_source.sql"};

#define S "\"" BENCH_SCHEMA "\""
#define COLS                                                                 \
    "id, entity_id, field_name, new_value, old_value, transaction_time, "   \
    "valid_time_start, valid_time_end, source_type, change_reason, metadata"
#define E "('txn_' || :eid)"
#define F "((ARRAY['merchant_name','amount','category','status'])[:f])"

/* $1 = E, $2 = F in the library's PL_STMT_CURRENT. */
static const char sql_current[] =
    "SELECT c.id, c.entity_id, c.field_name, c.new_value, c.old_value, c.transaction_time, "
    "c.valid_time_start, c.valid_time_end, c.source_type, c.change_reason, c.metadata, "
    "least(c.valid_time_end, (SELECT min(p.valid_time_start) FROM " S ".provenance_current p "
    "WHERE p.entity_id = " E " AND p.field_name = " F " AND p.valid_time_start > n.t)) "
    "FROM (SELECT greatest(now(), (SELECT h.last_tt FROM " S ".entity_head h WHERE h.entity_id = " E
    ")) AS t) n LEFT JOIN LATERAL (SELECT * FROM " S ".provenance_current "
    "WHERE entity_id = " E " AND field_name = " F " AND valid_time_start <= n.t "
    "AND valid_time_end > n.t ORDER BY transaction_time DESC, id DESC LIMIT 1) c ON true;\n";

/* PL_STMT_RANGE_ALL: $2, $3 = a one-month window in the entity's life. */
static const char sql_range[] =
    "SELECT " COLS " FROM " S ".pl_read_range(" E ", NULL, to_timestamp(:from), "
    "to_timestamp(:to));\n";

/* PL_STMT_ASOF_T: pl_as_of(T, PL_TIME_ANY). */
static const char sql_asof[] =
    "SELECT " COLS " FROM " S ".pl_read_asof(" E ", " F ", to_timestamp(:ts), NULL, true);\n";

/* PL_STMT_HISTORY_ALL. */
static const char sql_history[] = "SELECT " COLS " FROM " S ".provenance_ledger WHERE entity_id = " E
                                  " ORDER BY transaction_time, id;\n";

static const char sql_pk[] =
    "SELECT * FROM " S ".provenance_current WHERE entity_id = " E " AND field_name = " F " "
    "AND valid_time_start <= now() AND valid_time_end > now() "
    "ORDER BY transaction_time DESC, id DESC LIMIT 1;\n";

/* The design record's Index 1 query ("current state query (uses idx_prov_tt)"). */
static const char sql_ledger_tt[] =
    "SELECT new_value FROM " S ".provenance_ledger WHERE entity_id = " E " AND field_name = " F " "
    "AND transaction_time <= now() ORDER BY transaction_time DESC LIMIT 1;\n";

/* The design record's naive query, with index scans disabled. */
static const char sql_naive[] =
    "SET enable_indexscan = off;\nSET enable_bitmapscan = off;\nSET enable_indexonlyscan = off;\n"
    "SELECT new_value FROM " S ".provenance_ledger WHERE entity_id = " E " AND field_name = " F " "
    "AND transaction_time <= now() AND valid_time_start <= CURRENT_DATE "
    "ORDER BY transaction_time DESC LIMIT 1;\n";

/* lib/sql/statements/pl_audit.sql over [now - 30 days, now); the library
 * streams it through a binary cursor, pgbench receives it in one result. */
#define AUDIT(source)                                                                        \
    "SELECT " COLS " FROM " S ".provenance_ledger WHERE transaction_time >= "                \
    "coalesce(now() - interval '30 days', '-infinity') AND transaction_time < "              \
    "coalesce(now(), 'infinity') AND (" source "::text IS NULL OR source_type = " source     \
    "::text) ORDER BY transaction_time, id;\n"
static const char sql_audit[] = AUDIT("NULL");
static const char sql_audit_source[] = AUDIT("'" BENCH_AUDIT_SOURCE "'");

/* The entity and time draws, mirroring dataset_pick_entity/_time/_month. */
static void write_draws(FILE *f, const bench_dataset *ds)
{
    char hot[96], warm[96], cold[96];
    snprintf(hot, sizeof hot, "random(%ld, %ld)", ds->hot_lo, ds->entities - 1);
    if (ds->warm_lo < ds->hot_lo)
        snprintf(warm, sizeof warm, "random(%ld, %ld)", ds->warm_lo, ds->hot_lo - 1);
    else
        snprintf(warm, sizeof warm, "%s", hot);
    if (ds->warm_lo > 0)
        snprintf(cold, sizeof cold, "random(0, %ld)", ds->warm_lo - 1);
    else
        snprintf(cold, sizeof cold, "%s", warm);
    fprintf(f, "\\set r random(1, 100)\n");
    fprintf(f, "\\set eid case when :r <= 80 then %s when :r <= 95 then %s else %s end\n", hot,
            warm, cold);
    fprintf(f, "\\set f random(1, 4)\n");
    fprintf(f, "\\set c0 %lld + :eid * %lld\n", (long long)ds->t0, (long long)ds->step);
    fprintf(f, "\\set len least(%lld, %lld - :c0)\n", (long long)ds->window, (long long)ds->t_end);
    fprintf(f, "\\set ts :c0 / 1000000 + random(0, :len / 1000000)\n");
    fprintf(f, "\\set from :c0 / 1000000 + random(0, greatest(0, :len / 1000000 - 2592000))\n");
    fprintf(f, "\\set to :from + 2592000\n");
}

static void script_path(char *buf, size_t len, const bench_opts *o, int i)
{
    snprintf(buf, len, "%s/%s", o->out_dir, script_files[i]);
}

int pgb_write_scripts(const bench_opts *o, const bench_dataset *ds)
{
    const char *bodies[PGB_NSCRIPTS] = {sql_current, sql_range,     sql_asof,  sql_history,
                                        NULL,        sql_pk,        sql_ledger_tt, sql_naive,
                                        sql_audit,   sql_audit_source};
    for (int i = 0; i < PGB_NSCRIPTS; i++) {
        char path[1024];
        script_path(path, sizeof path, o, i);
        FILE *f = fopen(path, "w");
        if (!f) {
            bench_log("cannot write %s", path);
            return -1;
        }
        fprintf(f, "-- provledger-bench: %s (generated)\n", script_files[i]);
        if (i == PGB_ANALYTICS) {
            fprintf(f, "%s;\n", analytics_sql);
        } else if (i == PGB_AUDIT || i == PGB_AUDIT_SRC) {
            fputs(bodies[i], f);
        } else {
            write_draws(f, ds);
            fputs(bodies[i], f);
        }
        fclose(f);
    }
    return 0;
}

int pgb_available(const bench_opts *o)
{
    if (!o->pg_bin)
        return 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/pgbench", o->pg_bin);
    return access(path, X_OK) == 0;
}

/* Appends s to buf as one single-quoted shell word. */
static void shell_quote(char *buf, size_t len, const char *s)
{
    size_t n = strlen(buf);
    if (n + 1 < len)
        buf[n++] = '\'';
    for (; *s && n + 5 < len; s++) {
        if (*s == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *s;
        }
    }
    if (n + 1 < len)
        buf[n++] = '\'';
    buf[n] = '\0';
}

static void parse_line(const char *line, pgb_result *res, int *cur_script, const int *order)
{
    double v;
    long long ll;
    int idx;
    if (sscanf(line, "tps = %lf", &v) == 1) {
        res->tps = v;
        res->ok = 1;
    } else if (sscanf(line, "latency average = %lf", &v) == 1) {
        res->lat_ms = v;
    } else if (sscanf(line, "number of failed transactions: %lld", &ll) == 1) {
        res->failed = ll;
    } else if (sscanf(line, "SQL script %d:", &idx) == 1) {
        *cur_script = idx >= 1 && idx <= PGB_NSCRIPTS ? order[idx - 1] : -1;
    } else if (*cur_script >= 0) {
        const char *p = strstr(line, "tps = ");
        if (strstr(line, " transactions (") && p && sscanf(p, "tps = %lf", &v) == 1)
            res->script_tps[*cur_script] = v;
        else if (sscanf(line, " - latency average = %lf", &v) == 1)
            res->script_lat_ms[*cur_script] = v;
    }
}

int pgb_run(const bench_opts *o, const double weights[PGB_NSCRIPTS], int clients,
            double seconds, pgb_result *res)
{
    memset(res, 0, sizeof *res);
    if (!pgb_available(o)) {
        snprintf(res->error, sizeof res->error, "pgbench not available (PL_TEST_PG_BIN)");
        return -1;
    }
    int secs = (int)(seconds + 0.5);
    if (secs < 1)
        secs = 1;
    int jobs = clients < 2 ? clients : 2;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s/pgbench' -M prepared -n -c %d -j %d -T %d", o->pg_bin, clients,
             jobs, secs);
    int order[PGB_NSCRIPTS], nscripts = 0;
    for (int i = 0; i < PGB_NSCRIPTS; i++) {
        if (weights[i] <= 0)
            continue;
        char path[1024], arg[1100];
        script_path(path, sizeof path, o, i);
        snprintf(arg, sizeof arg, "%s@%d", path, (int)(weights[i] * 10 + 0.5));
        strncat(cmd, " -f ", sizeof cmd - strlen(cmd) - 1);
        shell_quote(cmd, sizeof cmd, arg);
        order[nscripts++] = i;
    }
    strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
    shell_quote(cmd, sizeof cmd, o->pg);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(res->error, sizeof res->error, "cannot run pgbench");
        return -1;
    }
    char line[1024], last_err[256] = "";
    int cur = -1;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strstr(line, "error") || strstr(line, "ERROR") || strstr(line, "FATAL"))
            snprintf(last_err, sizeof last_err, "%.200s", line);
        parse_line(line, res, &cur, order);
    }
    int st = pclose(p);
    if (nscripts == 1) {
        res->script_tps[order[0]] = res->tps;
        res->script_lat_ms[order[0]] = res->lat_ms;
    }
    if (!res->ok || st != 0) {
        snprintf(res->error, sizeof res->error, "%.200s", last_err[0] ? last_err : "pgbench failed");
        if (!res->ok)
            return -1;
    }
    return 0;
}
