/* Progress of a long step on stderr: a bar redrawn in place when stderr is
 * a terminal, a line every 10 seconds otherwise. */
#ifndef PL_BENCH_PROGRESS_H
#define PL_BENCH_PROGRESS_H

typedef struct progress {
    const char *what;
    long long total;
    double start, last_line;
    int tty;
} progress;

void progress_begin(progress *p, const char *what, long long total);
void progress_update(progress *p, long long done);
void progress_sleep(const progress *p);
void progress_end(progress *p, long long done);

#endif
