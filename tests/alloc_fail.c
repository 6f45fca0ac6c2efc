/* A malloc interposer linked into check_alloc_fail (see alloc_fail.h).
 *
 * Defined in the executable, malloc, calloc, realloc and strdup take
 * precedence over libc's for every library of the process: ours, libpq,
 * libgssapi, hiredis, jansson, libcrypto, and libc itself (glibc calls its
 * allocator through the PLT so that it can be replaced; its strdup and
 * strndup reach our malloc). Each forwards to the next definition in
 * lookup order: libc's, valgrind's replacement, or ASan's allocator when
 * libasan comes first in the library list, so the same file works in the
 * plain, valgrind and ASan builds (LD_PRELOAD would not: ASan insists on
 * being first, and then its malloc wins over a preloaded one). free is not
 * wrapped: every pointer handed out came from the next allocator. */
#include "alloc_fail.h"

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <execinfo.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);

static atomic_long counted[2]; /* allocations seen since af_arm, by class */
static atomic_long fail_at;    /* the one to fail (1-based); 0: none */
static atomic_int fail_class;
/* Where libcrypto is mapped: its allocations are class AF_CRYPTO. */
static uintptr_t crypto_lo, crypto_hi;
static atomic_int fired;
static atomic_int armed;
static _Thread_local int paused;

/* dlsym may itself allocate (a dlerror buffer, on failure only): while it
 * runs, calloc answers from this static block, which is never freed. */
static _Thread_local int resolving;
static unsigned char boot[4096];
static size_t boot_used;

#if defined(__SANITIZE_ADDRESS__)
/* ASan's allocator by name: its interceptors run dlsym while it starts,
 * and a failed lookup allocates before any resolution of ours could. */
void *__interceptor_malloc(size_t);
void *__interceptor_calloc(size_t, size_t);
void *__interceptor_realloc(void *, size_t);

static void resolve(void)
{
    next_malloc = __interceptor_malloc;
    next_calloc = __interceptor_calloc;
    next_realloc = __interceptor_realloc;
}
#else
static void resolve(void)
{
    if (next_malloc)
        return;
    resolving = 1;
    /* memcpy: ISO C has no cast from an object pointer to a function's */
    void *p = dlsym(RTLD_NEXT, "calloc");
    memcpy(&next_calloc, &p, sizeof p);
    p = dlsym(RTLD_NEXT, "realloc");
    memcpy(&next_realloc, &p, sizeof p);
    p = dlsym(RTLD_NEXT, "malloc");
    memcpy(&next_malloc, &p, sizeof p);
    resolving = 0;
}
#endif

static int find_crypto(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "/libcrypto.so"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (!crypto_lo || lo < crypto_lo)
            crypto_lo = lo;
        if (hi > crypto_hi)
            crypto_hi = hi;
    }
    return 1;
}

/* PL_ALLOC_FAIL_TRACE=1: where the failing allocation was asked for
 * (addr2line -e ... turns the frames into lines); what backtrace()
 * allocates comes after N, so it cannot fail. A function of its own: a
 * stack array in should_fail() gets ASan's instrumented frame, which
 * crashes when ASan's own start-up allocates before it is ready. */
static __attribute__((noinline)) void trace_here(void)
{
    void *frames[24];
    backtrace_symbols_fd(frames, backtrace(frames, 24), 2);
}

/* Whether this allocation, asked for by code at caller, is the one that
 * fails. */
static int should_fail(const void *caller)
{
    if (!atomic_load_explicit(&armed, memory_order_relaxed) || paused)
        return 0;
    int cls = (uintptr_t)caller >= crypto_lo && (uintptr_t)caller < crypto_hi ? AF_CRYPTO : AF_MAIN;
    long n = atomic_fetch_add(&counted[cls], 1) + 1;
    if (cls == atomic_load(&fail_class) && n == atomic_load(&fail_at)) {
        atomic_store(&fired, 1);
        if (getenv("PL_ALLOC_FAIL_TRACE"))
            trace_here();
        return 1;
    }
    return 0;
}

static void *gated_malloc(size_t n, const void *caller)
{
    resolve();
    if (should_fail(caller)) {
        errno = ENOMEM;
        return NULL;
    }
    return next_malloc(n);
}

void *malloc(size_t n)
{
    return gated_malloc(n, __builtin_return_address(0));
}

void *calloc(size_t n, size_t size)
{
    if (resolving || !next_calloc) {
        if (resolving) {
            size_t need = (n * size + 15) & ~(size_t)15;
            if (boot_used + need > sizeof boot)
                return NULL;
            void *p = boot + boot_used;
            boot_used += need;
            return p; /* zeroed: static storage */
        }
        resolve();
    }
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return next_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return next_realloc(p, n);
}

/* Not left to libc: its strdup may call its own malloc directly in some
 * builds, and the count must see every duplication. */
char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = gated_malloc(n, __builtin_return_address(0));
    if (d)
        memcpy(d, s, n);
    return d;
}

char *strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *d = gated_malloc(n + 1, __builtin_return_address(0));
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void af_arm(int cls, long n)
{
    if (!crypto_hi)
        dl_iterate_phdr(find_crypto, NULL);
    atomic_store(&counted[AF_MAIN], 0);
    atomic_store(&counted[AF_CRYPTO], 0);
    atomic_store(&fired, 0);
    atomic_store(&fail_class, cls);
    atomic_store(&fail_at, n);
    atomic_store(&armed, 1);
}

void af_disarm(void)
{
    atomic_store(&armed, 0);
    atomic_store(&fail_at, 0);
}

long af_count(int cls)
{
    return atomic_load(&counted[cls]);
}

int af_fired(void)
{
    return atomic_load(&fired);
}

void af_pause(int on)
{
    paused = on;
}
