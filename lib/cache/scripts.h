/* The cache's Lua scripts: one per atomic step of the protocol argued at
 * the top of cache.c (texts in scripts.c). The Redis client loads them
 * (pl_redis_set_scripts) and runs them by these indexes. */
#ifndef PL_CACHE_SCRIPTS_H
#define PL_CACHE_SCRIPTS_H

enum {
    PL_SCRIPT_LOOKUP,
    PL_SCRIPT_FILL,
    PL_SCRIPT_INTENT,
    PL_SCRIPT_CLEAR,
    PL_SCRIPT_INVALIDATE,
    PL_SCRIPT_DROP,
    PL_SCRIPT_COUNT
};

/* The texts, indexed by PL_SCRIPT_*. */
extern const char *const pl_cache_scripts[PL_SCRIPT_COUNT];

#endif
