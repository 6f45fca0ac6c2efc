/* The loader's progress display (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

void progress_begin(progress *p, const char *what, long long total)
{
    p->what = what;
    p->total = total > 0 ? total : 1;
    p->start = bench_now();
    p->last_line = p->start;
    p->tty = isatty(STDERR_FILENO);
}

static void eta_text(char *buf, size_t len, double secs)
{
    if (secs < 0 || secs > 359999)
        snprintf(buf, len, "--:--");
    else if (secs >= 3600)
        snprintf(buf, len, "%d:%02d:%02d", (int)secs / 3600, (int)secs / 60 % 60, (int)secs % 60);
    else
        snprintf(buf, len, "%d:%02d", (int)secs / 60, (int)secs % 60);
}

void progress_update(progress *p, long long done)
{
    double now = bench_now(), el = now - p->start;
    double rate = el > 0 ? (double)done / el : 0;
    double frac = (double)done / (double)p->total;
    char eta[16];
    eta_text(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %5.1f%% %lld/%lld  %.0f rec/s  ETA %s   ", p->what, bar,
                frac * 100, done, p->total, rate, eta);
        fflush(stderr);
    } else if (now - p->last_line >= 10) {
        p->last_line = now;
        fprintf(stderr, "bench: %s %5.1f%% %lld/%lld %.0f rec/s ETA %s\n", p->what, frac * 100,
                done, p->total, rate, eta);
    }
}

void progress_sleep(const progress *p)
{
    struct timespec ts = {0, p->tty ? 200000000L : 500000000L};
    nanosleep(&ts, NULL);
}

void progress_end(progress *p, long long done)
{
    if (p->tty) {
        progress_update(p, done);
        fputc('\n', stderr);
    }
}
