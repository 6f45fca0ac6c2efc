/* Per-thread error messages: every failing call records why. */
#ifndef PL_ERROR_H
#define PL_ERROR_H

#include "provledger.h"

/* Records a formatted message for the calling thread and returns code, so a
 * failure path reads `return pl_fail(PL_EINVAL, "entity_id: empty");`. */
int pl_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
#ifdef __clang_analyzer__
/* For the static analyzer only (clang-tidy in `./dev.sh lint`), which cannot
 * see into error.c: pl_fail returns its code, so a path that failed is not
 * taken for one that returned 0 with its outputs unset. */
#define pl_fail(code, ...) (pl_fail((code), __VA_ARGS__), (code))
#endif

/* The calling thread's message, kept aside while cleanup work that may
 * fail (a ROLLBACK, a cache detail) runs, then put back: the caller learns
 * why its call failed, not why the cleanup did. */
typedef struct pl_errsave {
    char text[1024];
} pl_errsave;

void pl_error_save(pl_errsave *s);
void pl_error_restore(const pl_errsave *s);

#endif
