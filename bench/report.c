/* The report: rows of measured figures grouped by phase, printed as tables
 * on stdout; named values and texts; targets with MET/MISSED; all of it
 * written to OUT/results.json; and a p95 latency chart OUT/latency.png drawn
 * by gnuplot. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct kv {
    char phase[32], key[64], unit[16];
    double value;
    char *text; /* NULL for numbers */
} kv;

typedef struct target {
    char id[32], desc[160], unit[16];
    double measured, threshold;
    int higher, met;
} target;

static bench_row *rows;
static size_t nrows, caprows;
static kv *kvs;
static size_t nkvs, capkvs;
static target targets[128];
static size_t ntargets;
static char *notes[64];
static size_t nnotes;

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    size_t c = *cap ? *cap * 2 : 64;
    void *q = realloc(p, c * size);
    if (!q) {
        bench_log("out of memory in the report");
        exit(1);
    }
    *cap = c;
    return q;
}

void report_init(const bench_opts *o)
{
    (void)o;
    nrows = nkvs = ntargets = nnotes = 0;
}

bench_row *report_row(const char *phase, const char *name, int clients, int cache)
{
    rows = grow(rows, &caprows, nrows, sizeof *rows);
    bench_row *r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->phase, sizeof r->phase, "%s", phase);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->clients = clients;
    r->cache = cache;
    r->p50 = r->p95 = r->p99 = -1;
    r->pg_ops = -1;
    r->met = -1;
    return r;
}

void report_fill(bench_row *r, const bench_hist *h, uint64_t errors, double elapsed)
{
    r->count = h->n;
    r->errors = errors;
    r->ops = elapsed > 0 ? (double)h->n / elapsed : 0;
    if (h->n) {
        r->p50 = hist_ms(h, 0.50);
        r->p95 = hist_ms(h, 0.95);
        r->p99 = hist_ms(h, 0.99);
    }
}

const bench_row *report_find(const char *phase, const char *name, int clients, int cache)
{
    for (size_t i = 0; i < nrows; i++)
        if (!strcmp(rows[i].phase, phase) && !strcmp(rows[i].name, name) &&
            rows[i].clients == clients && rows[i].cache == cache)
            return &rows[i];
    return NULL;
}

void report_value(const char *phase, const char *key, double value, const char *unit)
{
    kvs = grow(kvs, &capkvs, nkvs, sizeof *kvs);
    kv *k = &kvs[nkvs++];
    memset(k, 0, sizeof *k);
    snprintf(k->phase, sizeof k->phase, "%s", phase);
    snprintf(k->key, sizeof k->key, "%s", key);
    snprintf(k->unit, sizeof k->unit, "%s", unit ? unit : "");
    k->value = value;
}

double report_get_value(const char *phase, const char *key)
{
    for (size_t i = nkvs; i-- > 0;)
        if (!kvs[i].text && !strcmp(kvs[i].phase, phase) && !strcmp(kvs[i].key, key))
            return kvs[i].value;
    return NAN;
}

void report_text(const char *phase, const char *key, const char *value)
{
    kvs = grow(kvs, &capkvs, nkvs, sizeof *kvs);
    kv *k = &kvs[nkvs++];
    memset(k, 0, sizeof *k);
    snprintf(k->phase, sizeof k->phase, "%s", phase);
    snprintf(k->key, sizeof k->key, "%s", key);
    k->text = strdup(value ? value : "");
}

void report_target(const char *id, const char *desc, double measured, double threshold,
                   int higher, const char *unit)
{
    if (ntargets >= sizeof targets / sizeof targets[0])
        return;
    target *t = &targets[ntargets++];
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->desc, sizeof t->desc, "%s", desc);
    snprintf(t->unit, sizeof t->unit, "%s", unit ? unit : "");
    t->measured = measured;
    t->threshold = threshold;
    t->higher = higher;
    t->met = isnan(measured) ? -1 : higher ? measured >= threshold : measured < threshold;
}

void report_note(const char *fmt, ...)
{
    if (nnotes >= sizeof notes / sizeof notes[0])
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    notes[nnotes++] = strdup(buf);
    printf("note: %s\n", buf);
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                    */
/* ------------------------------------------------------------------------ */

static void num(char *buf, size_t len, double v, int decimals)
{
    if (v < 0 || isnan(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.*f", decimals, v);
}

static const char *met_text(int met)
{
    return met < 0 ? "" : met ? "MET" : "MISSED";
}

void report_print_phase(const char *phase, const char *title)
{
    int any = 0;
    for (size_t i = 0; i < nrows && !any; i++)
        any = !strcmp(rows[i].phase, phase);
    printf("\n== %s ==\n", title);
    if (any) {
        printf("%-26s %7s %5s %9s %9s %9s %10s %7s %11s %6s  %-22s %s\n", "query type", "clients",
               "cache", "p50 ms", "p95 ms", "p99 ms", "ops/s", "errors", "pgbench/s", "ratio",
               "target", "");
        for (size_t i = 0; i < nrows; i++) {
            const bench_row *r = &rows[i];
            if (strcmp(r->phase, phase))
                continue;
            char p50[16], p95[16], p99[16], ops[16], pg[16], ratio[16];
            num(p50, sizeof p50, r->p50, 3);
            num(p95, sizeof p95, r->p95, 3);
            num(p99, sizeof p99, r->p99, 3);
            num(ops, sizeof ops, r->ops, r->ops < 100 ? 2 : 0);
            num(pg, sizeof pg, r->pg_ops, r->pg_ops < 100 ? 2 : 0);
            num(ratio, sizeof ratio, r->pg_ops > 0 ? r->ops / r->pg_ops : -1, 2);
            printf("%-26s %7d %5s %9s %9s %9s %10s %7llu %11s %6s  %-22s %s\n", r->name,
                   r->clients, r->cache < 0 ? "-" : r->cache ? "on" : "off", p50, p95, p99, ops,
                   (unsigned long long)r->errors, pg, ratio, r->target, met_text(r->met));
        }
    }
    for (size_t i = 0; i < nkvs; i++) {
        if (strcmp(kvs[i].phase, phase))
            continue;
        if (kvs[i].text)
            printf("  %-34s %s\n", kvs[i].key, kvs[i].text);
        else
            printf("  %-34s %.3f %s\n", kvs[i].key, kvs[i].value, kvs[i].unit);
    }
    fflush(stdout);
}

static void print_targets(void)
{
    printf("\n== Targets (issues 3, 4, 5, 10, 13, 16 / design record) ==\n");
    printf("%-14s %-64s %12s %12s  %s\n", "id", "target", "measured", "threshold", "");
    for (size_t i = 0; i < ntargets; i++) {
        const target *t = &targets[i];
        char m[32], th[40];
        if (isnan(t->measured))
            snprintf(m, sizeof m, "n/a");
        else if (isinf(t->measured))
            snprintf(m, sizeof m, "all failed");
        else
            snprintf(m, sizeof m, "%.3f", t->measured);
        snprintf(th, sizeof th, "%s %.3f %s", t->higher ? ">=" : "<", t->threshold, t->unit);
        printf("%-14s %-64s %12s %12s  %s\n", t->id, t->desc, m, th,
               t->met < 0 ? "NOT RUN" : t->met ? "MET" : "MISSED");
    }
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isnan(v) || isinf(v) || v < 0)
        fputs("null", f);
    else
        fprintf(f, "%.6g", v);
}

static int write_json(const bench_opts *o, const bench_dataset *ds)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/results.json", o->out_dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        bench_log("cannot write %s", path);
        return -1;
    }
    fprintf(f, "{\n  \"tool\": \"provledger-bench\",\n  \"library_version\": ");
    json_str(f, pl_version());
    fprintf(f, ",\n  \"scale\": ");
    json_str(f, o->scale_name);
    fprintf(f, ",\n  \"duration_s\": %.3f,\n  \"short_duration_s\": %.3f,\n", o->duration,
            o->short_duration);
    fprintf(f, "  \"dataset\": {\"records\": %lld, \"entities\": %ld, \"fields\": %d, "
               "\"t0_us\": %lld, \"t_end_us\": %lld, \"hot_entities\": %ld, "
               "\"warm_entities\": %ld, \"cold_entities\": %ld},\n",
            ds->records, ds->entities, BENCH_NFIELDS, (long long)ds->t0, (long long)ds->t_end,
            ds->entities - ds->hot_lo, ds->hot_lo - ds->warm_lo, ds->warm_lo);
    /* values grouped by phase, in first-seen order */
    fprintf(f, "  \"values\": {");
    int first_phase = 1;
    for (size_t i = 0; i < nkvs; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(kvs[j].phase, kvs[i].phase);
        if (seen)
            continue;
        fprintf(f, "%s\n    ", first_phase ? "" : ",");
        first_phase = 0;
        json_str(f, kvs[i].phase);
        fprintf(f, ": {");
        int first = 1;
        for (size_t j = i; j < nkvs; j++) {
            if (strcmp(kvs[j].phase, kvs[i].phase))
                continue;
            fprintf(f, "%s", first ? "" : ", ");
            first = 0;
            json_str(f, kvs[j].key);
            fputs(": ", f);
            if (kvs[j].text)
                json_str(f, kvs[j].text);
            else
                fprintf(f, "%.6g", kvs[j].value);
        }
        fputc('}', f);
    }
    fprintf(f, "\n  },\n  \"rows\": [");
    for (size_t i = 0; i < nrows; i++) {
        const bench_row *r = &rows[i];
        fprintf(f, "%s\n    {\"phase\": ", i ? "," : "");
        json_str(f, r->phase);
        fprintf(f, ", \"query\": ");
        json_str(f, r->name);
        fprintf(f, ", \"clients\": %d, \"cache\": %s, \"p50_ms\": ", r->clients,
                r->cache < 0 ? "null" : r->cache ? "true" : "false");
        json_num(f, r->p50);
        fprintf(f, ", \"p95_ms\": ");
        json_num(f, r->p95);
        fprintf(f, ", \"p99_ms\": ");
        json_num(f, r->p99);
        fprintf(f, ", \"ops_per_s\": ");
        json_num(f, r->ops);
        fprintf(f, ", \"count\": %llu, \"errors\": %llu, \"pgbench_ops_per_s\": ",
                (unsigned long long)r->count, (unsigned long long)r->errors);
        json_num(f, r->pg_ops);
        fprintf(f, ", \"ratio\": ");
        json_num(f, r->pg_ops > 0 ? r->ops / r->pg_ops : -1);
        fprintf(f, ", \"target\": ");
        json_str(f, r->target);
        fprintf(f, ", \"met\": %s}", r->met < 0 ? "null" : r->met ? "true" : "false");
    }
    fprintf(f, "\n  ],\n  \"targets\": [");
    for (size_t i = 0; i < ntargets; i++) {
        const target *t = &targets[i];
        fprintf(f, "%s\n    {\"id\": ", i ? "," : "");
        json_str(f, t->id);
        fprintf(f, ", \"target\": ");
        json_str(f, t->desc);
        fprintf(f, ", \"measured\": ");
        if (isnan(t->measured) || isinf(t->measured))
            fputs("null", f);
        else
            fprintf(f, "%.6g", t->measured);
        fprintf(f, ", \"threshold\": %.6g, \"higher_is_better\": %s, \"unit\": ", t->threshold,
                t->higher ? "true" : "false");
        json_str(f, t->unit);
        fprintf(f, ", \"met\": %s}", t->met < 0 ? "null" : t->met ? "true" : "false");
    }
    fprintf(f, "\n  ],\n  \"notes\": [");
    for (size_t i = 0; i < nnotes; i++) {
        fprintf(f, "%s\n    ", i ? "," : "");
        json_str(f, notes[i]);
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
    printf("\nwrote %s\n", path);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Chart                                                                     */
/* ------------------------------------------------------------------------ */

static int write_chart(const bench_opts *o)
{
    char dat[1024], gp[1024], png[1024];
    snprintf(dat, sizeof dat, "%s/latency.dat", o->out_dir);
    snprintf(gp, sizeof gp, "%s/latency.gp", o->out_dir);
    snprintf(png, sizeof png, "%s/latency.png", o->out_dir);
    FILE *f = fopen(dat, "w");
    if (!f)
        return -1;
    fprintf(f, "# clients, p95 ms per query type with the cache off (5), then on (5)\n");
    int points = 0;
    for (int c = 0; c < o->nclients; c++) {
        fprintf(f, "%d", o->clients[c]);
        for (int cache = 0; cache < 2; cache++)
            for (int t = 0; t < Q_NTYPES; t++) {
                const bench_row *r = report_find("mix", query_names[t], o->clients[c], cache);
                if (r && r->p95 > 0) {
                    fprintf(f, " %.4f", r->p95);
                    points++;
                } else {
                    fprintf(f, " NaN");
                }
            }
        fputc('\n', f);
    }
    fclose(f);
    if (!points)
        return 0;
    char *term = run_capture("gnuplot -e 'set terminal' 2>&1 | grep -c pngcairo");
    int cairo = term && atoi(term) > 0;
    free(term);
    f = fopen(gp, "w");
    if (!f)
        return -1;
    fprintf(f, "set terminal %s size 1400,560\n", cairo ? "pngcairo enhanced font 'sans,10'"
                                                        : "png size 1400,560");
    fprintf(f, "set output '%s'\n", png);
    fprintf(f, "set datafile missing 'NaN'\n");
    fprintf(f, "set logscale xy\nset grid\nset key top left\n");
    fprintf(f, "set xlabel 'client threads'\nset ylabel 'p95 latency (ms)'\n");
    fprintf(f, "set xtics (");
    for (int c = 0; c < o->nclients; c++)
        fprintf(f, "%s'%d' %d", c ? ", " : "", o->clients[c], o->clients[c]);
    fprintf(f, ")\n");
    fprintf(f, "set multiplot layout 1,2 title 'provledger-bench: design-record query mix, "
               "scale %s'\n",
            o->scale_name);
    for (int cache = 0; cache < 2; cache++) {
        fprintf(f, "set title 'cache %s'\nplot ", cache ? "on" : "off");
        for (int t = 0; t < Q_NTYPES; t++)
            fprintf(f, "%s'%s' using 1:%d with linespoints lw 2 title '%s'", t ? ", " : "", dat,
                    2 + cache * Q_NTYPES + t, query_names[t]);
        fputc('\n', f);
    }
    fprintf(f, "unset multiplot\n");
    fclose(f);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", gp);
    char *err = run_capture(cmd);
    if (err) {
        bench_log("gnuplot: %s", err);
        free(err);
    }
    printf("wrote %s\n", png);
    return 0;
}

void report_finish(const bench_opts *o, const bench_dataset *ds)
{
    print_targets();
    write_json(o, ds);
    write_chart(o);
    fflush(stdout);
}
