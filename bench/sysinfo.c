/* The machine the figures were taken on: cores, memory, server versions,
 * date. Recorded in results.json and printed once at the start. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

void sysinfo_loadavg(const char *phase, const char *key)
{
    char *v = run_capture("cut -d' ' -f1-3 /proc/loadavg");
    report_text(phase, key, v ? v : "unknown");
    free(v);
}

void sysinfo_collect(const bench_opts *o)
{
    sysinfo_loadavg("machine", "loadavg_at_start");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    report_value("machine", "nproc", (double)cpus, "");
    report_value("machine", "memory_gib", mem / (1024.0 * 1024 * 1024), "GiB");

    char *cpu = run_capture("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'");
    report_text("machine", "cpu", cpu ? cpu : "unknown");
    free(cpu);
    char *kernel = run_capture("uname -sr");
    report_text("machine", "kernel", kernel ? kernel : "unknown");
    free(kernel);

    char *pgv = sql_scalar(o->pg, "SELECT version()");
    report_text("machine", "postgresql", pgv ? pgv : "unknown");
    free(pgv);
    char *sb = sql_scalar(o->pg, "SELECT current_setting('shared_buffers') || ', fsync=' || "
                                 "current_setting('fsync') || ', synchronous_commit=' || "
                                 "current_setting('synchronous_commit')");
    report_text("machine", "postgresql_settings", sb ? sb : "unknown");
    free(sb);
    if (o->redis_port) {
        char cmd[128];
        snprintf(cmd, sizeof cmd,
                 "redis-cli -p %s INFO server 2>/dev/null | grep '^redis_version:' | cut -d: -f2",
                 o->redis_port);
        char *rv = run_capture(cmd);
        report_text("machine", "redis", rv ? rv : "unknown");
        free(rv);
    } else {
        report_text("machine", "redis", "not configured");
    }
    report_text("machine", "library", pl_version());

    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    report_text("machine", "date", date);
}
