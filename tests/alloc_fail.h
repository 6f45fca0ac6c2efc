/* Allocation-failure injection for check_alloc_fail: tests/alloc_fail.c
 * replaces malloc, calloc, realloc, strdup and strndup for the whole
 * process, counts them, and makes exactly one of them fail. */
#ifndef PL_ALLOC_FAIL_H
#define PL_ALLOC_FAIL_H

/* Allocations fall in two classes, counted apart: those libcrypto asks
 * for itself (its one-time tables, its decoders and providers: thousands
 * per key parse), and every other one (ours, libpq's, hiredis's,
 * jansson's, and libc's on their behalf). */
enum { AF_MAIN = 0, AF_CRYPTO = 1 };

/* Starts counting from zero; allocation number n (1-based) of class cls
 * returns NULL with errno ENOMEM, every other one succeeds. n = 0 only
 * counts. */
void af_arm(int cls, long n);
/* Stops counting and failing. */
void af_disarm(void);
/* Allocations of class cls counted since af_arm (on every thread). */
long af_count(int cls);
/* Whether the allocation chosen by af_arm has failed. */
int af_fired(void);
/* On this thread only: non-zero leaves the following allocations
 * uncounted (the test's own checks), zero counts them again. */
void af_pause(int on);

#endif
