/*
 * provledger: operations and analytics: stats, refresh, partitions,
 * health, dashboard changes, dashboard corrections, rollup and version.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_stats(cli *c)
{
    int st = cli_open(c);
    if (st != CLI_OK)
        return st;
    int db = 0;
    int rc = pl_schema_version(&db, c->l);
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    pl_stats_info s;
    memset(&s, 0, sizeof s);
    if ((rc = pl_stats(&s, c->l, sizeof s)) != PL_OK)
        return cli_fail(c, rc, NULL);

    /* Every value as text, so that one list serves both formats. */
    enum { N = 20 };
    char v[N][32];
    const char *keys[N];
    int k = 0;
#define U(name)                                                               \
    do {                                                                      \
        keys[k] = #name;                                                      \
        snprintf(v[k++], sizeof v[0], "%llu", (unsigned long long)s.name);    \
    } while (0)
    keys[k] = "schema_version";
    snprintf(v[k++], sizeof v[0], "%d", db);
    U(cache_hits);
    U(cache_misses);
    U(cache_fills);
    U(cache_fills_refused);
    U(cache_invalidations);
    U(cache_bypassed);
    U(redis_errors);
    U(cache_degraded_us);
    keys[k] = "cache_degraded";
    snprintf(v[k++], sizeof v[0], "%s", s.cache_degraded ? "true" : "false");
    keys[k] = "cache_hit_rate";
    {
        /* The shortest text that reads back as the same double. */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(v[k], sizeof v[0], "%.*g", prec, s.cache_hit_rate);
            if (strtod(v[k], NULL) == s.cache_hit_rate)
                break;
        }
        k++;
    }
    U(queries);
    U(inserts);
    U(pool_waits);
    U(pool_wait_us);
    U(reconnects);
    U(pool_size);
    U(pool_open);
    U(replica_reads);
#undef U
    cli_kv kv[N];
    for (int i = 0; i < k; i++) {
        kv[i].key = keys[i];
        kv[i].value = v[i];
        kv[i].raw = 1;
    }
    return cli_print_kv(c, kv, (size_t)k);
}

/* Prints a table answer (or reports RC) and frees T. */
static int table_answer(cli *c, int rc, pl_table *t, const char *context)
{
    int st = rc == PL_OK ? cli_print_pltable(c, t) : cli_fail(c, rc, context);
    pl_table_free(t);
    return st;
}

static int only_one(const cli *c, const char *const *opts, size_t n)
{
    const char *seen = NULL;
    for (size_t i = 0; i < n; i++)
        if (cli_get(c, opts[i])) {
            if (seen)
                return cli_bad(c, "--%s and --%s exclude each other", seen, opts[i]);
            seen = opts[i];
        }
    return CLI_OK;
}

int cmd_refresh(cli *c)
{
    static const char *const modes[] = {"schedule", "unschedule", "status"};
    int st = only_one(c, modes, 3);
    if (st != CLI_OK)
        return st;
    const char *cron = cli_get(c, "schedule");
    if (cron && !*cron)
        return cli_bad(c, "--schedule: expected a cron expression such as \"0 * * * *\"");
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    int rc;
    if (cron || cli_get(c, "unschedule")) {
        if ((rc = pl_refresh_schedule(c->l, cron)) != PL_OK)
            return cli_fail(c, rc, NULL);
        cli_kv kv[] = {{"schedule", cron, 0}};
        return cli_print_kv(c, kv, 1);
    }
    if (!cli_get(c, "status") && (rc = pl_refresh_views(c->l)) != PL_OK)
        return cli_fail(c, rc, NULL);
    pl_table *t = NULL;
    rc = pl_view_freshness(&t, c->l);
    return table_answer(c, rc, t, NULL);
}

int cmd_partitions(cli *c)
{
    static const char *const modes[] = {"ensure", "detach-before", "attach"};
    int st = only_one(c, modes, 3);
    if (st != CLI_OK)
        return st;
    const char *v;
    long long months = 0;
    pl_time before = 0;
    if ((v = cli_get(c, "ensure")) && (st = cli_parse_int(c, "--ensure", v, 0, 120, &months)) != CLI_OK)
        return st;
    if ((v = cli_get(c, "detach-before")) &&
        (st = cli_parse_time(c, "--detach-before", v, 0, 0, 0, &before)) != CLI_OK)
        return st;
    const char *name = cli_get(c, "attach");
    if (name && !*name)
        return cli_bad(c, "--attach: expected a partition name such as provenance_ledger_2025_01");
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    int rc, n = 0;
    char num[32];
    if (cli_get(c, "ensure")) {
        if ((rc = pl_partitions_ensure(&n, c->l, (int)months)) != PL_OK)
            return cli_fail(c, rc, NULL);
        snprintf(num, sizeof num, "%d", n);
        cli_kv kv[] = {{"created", num, 1}};
        return cli_print_kv(c, kv, 1);
    }
    if (cli_get(c, "detach-before")) {
        if ((rc = pl_partitions_detach(&n, c->l, before)) != PL_OK)
            return cli_fail(c, rc, NULL);
        snprintf(num, sizeof num, "%d", n);
        cli_kv kv[] = {{"detached", num, 1}};
        return cli_print_kv(c, kv, 1);
    }
    if (name) {
        char ctx[300];
        snprintf(ctx, sizeof ctx, "no detached partition named '%.200s'", name);
        if ((rc = pl_partition_attach(c->l, name)) != PL_OK)
            return cli_fail(c, rc, rc == PL_NOT_FOUND ? ctx : NULL);
        cli_kv kv[] = {{"attached", name, 0}};
        return cli_print_kv(c, kv, 1);
    }
    pl_table *t = NULL;
    rc = pl_partitions_list(&t, c->l);
    return table_answer(c, rc, t, NULL);
}

int cmd_health(cli *c)
{
    int st = cli_open(c);
    if (st != CLI_OK)
        return st;
    char *text = NULL;
    int rc = pl_health(&text, c->l);
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    /* JSON: the library's text as it is when it is one line; people get
     * it indented, key order kept. */
    if (c->format == CLI_FORMAT_JSON && !strchr(text, '\n')) {
        puts(text);
        pl_free(text);
        return CLI_OK;
    }
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
    char *out = NULL;
    if (j)
        out = json_dumps(j, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15) |
                                (c->format == CLI_FORMAT_JSON ? JSON_COMPACT : JSON_INDENT(2)));
    if (out) {
        puts(out);
        st = CLI_OK;
    } else if (j) {
        cli_note(c, "out of memory");
        st = CLI_ERROR;
    } else {
        cli_note(c, "the library's health report is not JSON: %s", err.text);
        st = CLI_ERROR;
    }
    free(out);
    json_decref(j);
    pl_free(text);
    return st;
}

static int window(const cli *c, pl_time *from, pl_time *to)
{
    const char *f = cli_get(c, "from"), *t = cli_get(c, "to");
    if (!f)
        return cli_bad(c, "missing --from");
    if (!t)
        return cli_bad(c, "missing --to");
    int st;
    if ((st = cli_parse_time(c, "--from", f, 1, 1, 0, from)) != CLI_OK ||
        (st = cli_parse_time(c, "--to", t, 1, 1, 0, to)) != CLI_OK)
        return st;
    if (*from != PL_TIME_ANY && *to != PL_TIME_ANY && *from != PL_TIME_NOW && *to != PL_TIME_NOW &&
        *from > *to)
        return cli_bad(c, "--from is after --to");
    return CLI_OK;
}

int cmd_dashboard_changes(cli *c)
{
    pl_time from, to;
    int st = window(c, &from, &to);
    if (st != CLI_OK)
        return st;
    const char *source = cli_get(c, "source");
    if (source && !*source)
        return cli_bad(c, "--source: must not be empty");
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    pl_table *t = NULL;
    int rc = pl_dashboard_changes(&t, c->l, from, to, source, c->flags);
    return table_answer(c, rc, t, NULL);
}

int cmd_dashboard_corrections(cli *c)
{
    pl_time from, to;
    int st = window(c, &from, &to);
    if (st != CLI_OK)
        return st;
    if ((st = cli_open(c)) != CLI_OK)
        return st;
    pl_table *t = NULL;
    int rc = pl_dashboard_corrections(&t, c->l, from, to, c->flags);
    return table_answer(c, rc, t, NULL);
}

int cmd_rollup(cli *c)
{
    long long interval;
    int follow;
    int st = cli_follow_options(c, 1000, &follow, &interval);
    if (st != CLI_OK || (st = cli_open(c)) != CLI_OK)
        return st;
    int first = 1;
    do {
        int64_t rolled = 0;
        int rc = pl_rollup_advance(&rolled, c->l);
        if (rc != PL_OK) {
            st = cli_fail(c, rc, NULL);
            /* Following, a passing failure (a restart) is reported and
             * retried. */
            if (!follow)
                break;
        } else if (first || rolled > 0) {
            char n[24];
            snprintf(n, sizeof n, "%lld", (long long)rolled);
            cli_kv kv[] = {{"rolled", n, 1}};
            if ((st = cli_print_kv(c, kv, 1)) != CLI_OK || fflush(stdout) != 0)
                break;
            first = 0;
        }
    } while (follow && cli_follow_wait(interval));
    return cli_finish(c, st);
}

int cmd_version(cli *c)
{
    char schema[16];
    snprintf(schema, sizeof schema, "%d", PL_SCHEMA_VERSION);
    cli_kv kv[] = {
        {"provledger", PL_VERSION_STRING, 0},
        {"library", pl_version(), 0},
        {"schema_version", schema, 1},
    };
    return cli_print_kv(c, kv, 3);
}
