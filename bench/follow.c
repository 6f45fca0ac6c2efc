/* Background maintenance steps beside write runs (see follow.h). */
#include "follow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phases.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *follower_main(void *arg)
{
    follower *f = arg;
    while (!atomic_load(&f->stop)) {
        int64_t done = 0;
        double a = bench_now();
        int rc = f->step(f->arg, f->l, &done);
        double b = bench_now();
        if (rc) {
            if (!f->errors++)
                snprintf(f->first_error, sizeof f->first_error, "%s: %s", pl_strerror(rc), pl_errmsg());
        } else {
            f->steps++;
            f->done += done;
            hist_record(&f->hist, (uint64_t)((b - a) * 1e9));
        }
        for (int waited = 0; waited < f->interval_ms && !atomic_load(&f->stop); waited += 10)
            sleep_ms(10);
    }
    return NULL;
}

int follower_start(follower *f, const bench_opts *o, const char *what, follow_step_fn step, void *arg,
                   int interval_ms)
{
    memset(f, 0, sizeof *f);
    hist_reset(&f->hist);
    f->step = step;
    f->arg = arg;
    f->interval_ms = interval_ms;
    if (!(f->l = bench_open(o, 0, 1, 1, 0)))
        return -1;
    int rc = PL_OK;
    for (int64_t done = 1; rc == PL_OK && done > 0;) {
        done = 0;
        rc = step(arg, f->l, &done);
    }
    if (rc != PL_OK || pthread_create(&f->th, NULL, follower_main, f) != 0) {
        report_note("%s: could not start: %s", what, pl_errmsg());
        pl_close(f->l);
        f->l = NULL;
        return -1;
    }
    return 0;
}

void follower_stop(follower *f, const char *what)
{
    if (!f->l)
        return;
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
    if (f->errors)
        report_note("%s: %" PRIu64 " steps failed, first: %s", what, f->errors, f->first_error);
    pl_close(f->l);
    f->l = NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void follow_ab_writes(const bench_opts *o, const bench_dataset *ds, const char *phase, const char *what,
                      follow_step_fn step, void *arg, int interval_ms, const char *run_name,
                      const char *value_key, int clients, int batch, int rounds)
{
    double off[9], on[9];
    if (rounds > 9)
        rounds = 9;
    char name[96];
    int64_t done = 0;
    int n = 0;
    for (; n < rounds; n++) {
        snprintf(name, sizeof name, "%s, no %s", run_name, what);
        off[n] = write_run(o, ds, phase, name, clients, 0, batch, 0, NULL);
        follower f;
        if (follower_start(&f, o, what, step, arg, interval_ms) < 0)
            break;
        snprintf(name, sizeof name, "%s, %s following", run_name, what);
        on[n] = write_run(o, ds, phase, name, clients, 0, batch, 0, NULL);
        follower_stop(&f, what);
        done += f.done;
    }
    if (n == 0)
        return;
    qsort(off, (size_t)n, sizeof off[0], cmp_double);
    qsort(on, (size_t)n, sizeof on[0], cmp_double);
    double a = off[n / 2], b = on[n / 2];
    char k[128];
    snprintf(k, sizeof k, "%s_records_per_s_no_%s", value_key, what);
    report_value(phase, k, a, "rec/s");
    snprintf(k, sizeof k, "%s_records_per_s_%s", value_key, what);
    report_value(phase, k, b, "rec/s");
    snprintf(k, sizeof k, "%s_loss", value_key);
    report_value(phase, k, a > 0 ? 1.0 - b / a : -1, "x");
    snprintf(k, sizeof k, "%s_done_while_following", value_key);
    report_value(phase, k, (double)done, "");
}
