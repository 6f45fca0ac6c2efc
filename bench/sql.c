/* Small libpq helpers for the bench's own SQL (schema setup, VACUUM,
 * dataset bookkeeping, versions). The measured reads never go through here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "bench.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs such as "schema does not exist, skipping" */
}

static PGconn *connect_or_log(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        bench_log("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

int sql_exec(const char *conninfo, const char *sql)
{
    PGconn *c = connect_or_log(conninfo);
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        bench_log("SQL failed: %s(%.200s)", PQerrorMessage(c), sql);
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

char *sql_scalar(const char *conninfo, const char *sql)
{
    PGconn *c = connect_or_log(conninfo);
    if (!c)
        return NULL;
    PGresult *r = PQexec(c, sql);
    char *out = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        out = strdup(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        bench_log("SQL failed: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return out;
}

char *run_capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    char line[512];
    char *out = NULL;
    if (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = '\0';
        out = strdup(line);
    }
    while (fgets(line, sizeof line, p)) {
    }
    pclose(p);
    return out;
}
