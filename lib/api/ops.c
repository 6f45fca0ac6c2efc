/* Operations: partitions (ensure, list, detach, attach) and materialized
 * views (refresh, pg_cron schedule, freshness). SQL in lib/sql/statements/
 * (the registry, schema.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ledger.h"
#include "table.h"
#include "validate.h"
#include "wire.h"

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
    int rc = pl_db_run(l->db, PL_SQL_PARTITIONS_ENSURE, values, NULL, 0, &res);
    if (rc)
        return rc;
    const char *v = scalar(res);
    if (created && v)
        *created = atoi(v); /* NOLINT(cert-err34-c): the server's int4 text */
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
    return pl_db_table(out, l->db, PL_SQL_PARTITIONS_LIST, NULL, "sttbii");
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
    if ((rc = pl_db_run(l->db, PL_SQL_PARTITIONS_DETACH, values, NULL, 0, &res)))
        return rc;
    const char *v = scalar(res);
    if (detached && v)
        *detached = atoi(v); /* NOLINT(cert-err34-c): the server's int4 text */
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
    if ((rc = pl_db_run(l->db, PL_SQL_PARTITION_ATTACH, values, NULL, 0, &res)))
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
    int rc = pl_db_run(l->db, PL_SQL_REFRESH, NULL, NULL, 0, &res);
    if (rc)
        return rc;
    const char *v = scalar(res);
    int ok = v && v[0] == 't';
    PQclear(res);
    if (ok)
        return PL_OK;
    char msg[1024] = "see mv_refresh_log";
    if (pl_db_run(l->db, PL_SQL_REFRESH_ERRORS, NULL, NULL, 0, &res) == PL_OK) {
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
    if ((rc = pl_db_run(l->db, PL_SQL_CRON_PRESENT, NULL, NULL, 0, &res)))
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
        rc = pl_db_run(l->db, PL_SQL_CRON_SCHEDULE, values, NULL, 0, &res);
    } else {
        const char *values[1] = {job};
        rc = pl_db_run(l->db, PL_SQL_CRON_UNSCHEDULE, values, NULL, 0, &res);
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
    return pl_db_table(out, l->db, PL_SQL_FRESHNESS, NULL, "sttbsr");
}

int pl_view_freshness(pl_table **out, pl_ledger *l)
{
    PL_GUARD(l, view_freshness_call(out, l));
}
