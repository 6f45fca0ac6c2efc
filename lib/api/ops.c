/* Operations: partitions (ensure, list, detach, attach) and materialized
 * views (refresh, pg_cron schedule, freshness). SQL in lib/sql/statements/
 * (schema_ops.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "schema_ops.h"
#include "table.h"
#include "validate.h"

/* The deadline of maintenance statements, as for migrations. */
#define PL_OPS_SLOW_MS (3600u * 1000u)

int pl_ops_exec(pl_ledger *l, const char *tmpl, int nparams, const char *const *values, unsigned how,
                PGresult **out)
{
    *out = NULL;
    char *sql = pl_sql_expand(tmpl, l->cfg.schema);
    if (!sql)
        return pl_fail(PL_ENOMEM, "out of memory");
    int rc = PL_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        pl_conn *c;
        rc = how & (PL_OPS_SLOW | PL_OPS_HEAVY) ? pl_pool_acquire_heavy(l->pool, &c)
                                                : pl_pool_acquire(l->pool, &c);
        if (rc)
            break;
        int phase = PL_PHASE_NONE;
        if (how & PL_OPS_SLOW)
            pl_conn_set_timeout(c, PL_OPS_SLOW_MS);
        rc = pl_exec_text(l->pool, c, sql, nparams, values, out, &phase);
        if (how & PL_OPS_SLOW)
            pl_conn_set_timeout(c, 0);
        pl_pool_release(l->pool, c);
        if (rc != PL_ECONNECT || !((how & PL_OPS_READ) || phase == PL_PHASE_SEND))
            break;
    }
    free(sql);
    return rc;
}

int pl_ops_table(pl_table **out, pl_ledger *l, const char *tmpl, int nparams,
                 const char *const *values, const char *kinds, unsigned how)
{
    PGresult *res;
    int rc = pl_ops_exec(l, tmpl, nparams, values, how | PL_OPS_READ, &res);
    if (rc)
        return rc;
    *out = pl_table_from_pg(res, kinds, 0);
    PQclear(res);
    return *out ? PL_OK : pl_fail(PL_ENOMEM, "out of memory reading the answer");
}

/* The single value of a one-row answer, or NULL. */
static const char *scalar(const PGresult *res)
{
    if (PQntuples(res) < 1 || PQnfields(res) < 1 || PQgetisnull(res, 0, 0))
        return NULL;
    return PQgetvalue(res, 0, 0);
}

/* ------------------------------------------------------------------------ */
/* Partitions                                                                */
/* ------------------------------------------------------------------------ */

static int partitions_ensure_call(int *created, pl_ledger *l, int months_ahead)
{
    if (created)
        *created = 0;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    if (months_ahead < 0 || months_ahead > 120)
        return pl_fail(PL_EINVAL, "months_ahead: %d is outside 0..120", months_ahead);
    char months[16];
    snprintf(months, sizeof months, "%d", months_ahead + 1);
    const char *values[1] = {months};
    PGresult *res;
    int rc = pl_ops_exec(l, pl_sql_partitions_ensure, 1, values, PL_OPS_SLOW, &res);
    if (rc)
        return rc;
    const char *v = scalar(res);
    if (created && v)
        *created = atoi(v);
    PQclear(res);
    return PL_OK;
}

int pl_partitions_ensure(int *created, pl_ledger *l, int months_ahead)
{
    PL_GUARD(l, partitions_ensure_call(created, l, months_ahead));
}

static int partitions_list_call(pl_table **out, pl_ledger *l)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    return pl_ops_table(out, l, pl_sql_partitions_list, 0, NULL, "sttbii", PL_OPS_READ);
}

int pl_partitions_list(pl_table **out, pl_ledger *l)
{
    PL_GUARD(l, partitions_list_call(out, l));
}

static int partitions_detach_call(int *detached, pl_ledger *l, pl_time older_than)
{
    if (detached)
        *detached = 0;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    int rc = pl_check_instant("older_than", older_than);
    if (rc)
        return rc;
    char buf[PL_TIME_BUFSIZE];
    const char *values[1] = {pl_time_param(buf, older_than)};
    PGresult *res;
    if ((rc = pl_ops_exec(l, pl_sql_partitions_detach, 1, values, PL_OPS_SLOW, &res)))
        return rc;
    const char *v = scalar(res);
    if (detached && v)
        *detached = atoi(v);
    PQclear(res);
    return PL_OK;
}

int pl_partitions_detach(int *detached, pl_ledger *l, pl_time older_than)
{
    PL_GUARD(l, partitions_detach_call(detached, l, older_than));
}

static int partition_attach_call(pl_ledger *l, const char *name)
{
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    int rc = pl_check_text("name", name, 63, 1);
    if (rc)
        return rc;
    const char *values[1] = {name};
    PGresult *res;
    if ((rc = pl_ops_exec(l, pl_sql_partition_attach, 1, values, PL_OPS_SLOW, &res)))
        return rc;
    const char *v = scalar(res);
    int found = v && v[0] == 't';
    PQclear(res);
    if (!found)
        return pl_fail(PL_NOT_FOUND, "no detached partition is named %s", name);
    return PL_OK;
}

int pl_partition_attach(pl_ledger *l, const char *name)
{
    PL_GUARD(l, partition_attach_call(l, name));
}

/* ------------------------------------------------------------------------ */
/* Materialized views                                                        */
/* ------------------------------------------------------------------------ */

static int refresh_views_call(pl_ledger *l)
{
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    PGresult *res;
    int rc = pl_ops_exec(l, pl_sql_refresh, 0, NULL, PL_OPS_SLOW, &res);
    if (rc)
        return rc;
    const char *v = scalar(res);
    int ok = v && v[0] == 't';
    PQclear(res);
    if (ok)
        return PL_OK;
    char msg[1024] = "see mv_refresh_log";
    if (pl_ops_exec(l, pl_sql_refresh_errors, 0, NULL, PL_OPS_READ, &res) == PL_OK) {
        if ((v = scalar(res)))
            snprintf(msg, sizeof msg, "%s", v);
        PQclear(res);
    }
    return pl_fail(PL_EDB, "refresh failed: %s", msg);
}

int pl_refresh_views(pl_ledger *l)
{
    PL_GUARD(l, refresh_views_call(l));
}

static int refresh_schedule_call(pl_ledger *l, const char *cron_schedule)
{
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    int rc;
    if (cron_schedule && (rc = pl_check_text("cron_schedule", cron_schedule, 256, 1)))
        return rc;
    PGresult *res;
    if ((rc = pl_ops_exec(l, pl_sql_cron_present, 0, NULL, PL_OPS_READ, &res)))
        return rc;
    const char *v = scalar(res);
    int present = v && v[0] == 't';
    PQclear(res);
    if (!present)
        return pl_fail(PL_EUNSUPPORTED,
                       "the pg_cron extension is not installed in this database: call pl_refresh_views() "
                       "from your own scheduler");
    /* The schema name is [a-z0-9_] (checked by pl_open): safe to quote. */
    char job[128], command[128];
    snprintf(job, sizeof job, "provledger-refresh-%s", l->cfg.schema);
    snprintf(command, sizeof command, "SELECT \"%s\".pl_refresh_views()", l->cfg.schema);
    if (cron_schedule) {
        const char *values[3] = {job, cron_schedule, command};
        rc = pl_ops_exec(l, pl_sql_cron_schedule, 3, values, PL_OPS_WRITE, &res);
    } else {
        const char *values[1] = {job};
        rc = pl_ops_exec(l, pl_sql_cron_unschedule, 1, values, PL_OPS_WRITE, &res);
    }
    if (rc)
        return rc;
    PQclear(res);
    return PL_OK;
}

int pl_refresh_schedule(pl_ledger *l, const char *cron_schedule)
{
    PL_GUARD(l, refresh_schedule_call(l, cron_schedule));
}

static int view_freshness_call(pl_table **out, pl_ledger *l)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!l)
        return pl_fail(PL_EINVAL, "ledger: NULL");
    return pl_ops_table(out, l, pl_sql_freshness, 0, NULL, "sttbsr", PL_OPS_READ);
}

int pl_view_freshness(pl_table **out, pl_ledger *l)
{
    PL_GUARD(l, view_freshness_call(out, l));
}
