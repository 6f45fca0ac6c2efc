/* The cache's Lua scripts, handed to the Redis client (pl_redis_set_scripts)
 * and run by their PL_SCRIPT_* index. What they keep true is argued at the
 * top of cache.c; each is one atomic step of that protocol. "now" is the
 * Redis server's clock in milliseconds (TIME; scripts are replicated by
 * effect). Hash fields: W, n and g describe the write intents (latest
 * deadline, how many are placed, their generation), t is the fill token,
 * any other field an answer.
 *
 * SPDX-License-Identifier: MIT */
#include "scripts.h"

#define NOW_MS "local tm = redis.call('TIME') local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000) "
const char *const pl_cache_scripts[PL_SCRIPT_COUNT] = {
    /* KEYS: hash, epoch marker. ARGV: answer field, fresh token, TTL ms.
     * {1, answer} | {2, token} (miss, fill with it) | {3} (miss, a write
     * is in flight: no fill) | {4} (the epoch marker is missing). */
    [PL_SCRIPT_LOOKUP] =
        "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
        "if v then return {1, v} end "
        "if redis.call('EXISTS', KEYS[2]) == 0 then return {4} end "
        "local s = redis.call('HMGET', KEYS[1], 'W', 't') "
        "if s[1] then " NOW_MS "if tonumber(s[1]) > now then return {3} end end "
        "if s[2] then return {2, s[2]} end "
        "redis.call('HSET', KEYS[1], 't', ARGV[2]) "
        "if not s[1] then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end "
        "return {2, ARGV[2]}",
    /* KEYS: hash. ARGV: token, answer field, entry, TTL ms, field limit.
     * 1 stored | 0 refused (token gone or a write in flight) | 2 entity
     * full | 3 a newer answer is already there. The TTL is set once, so no
     * entry outlives it by much (cache.c checks the age). */
    [PL_SCRIPT_FILL] =
        "local s = redis.call('HMGET', KEYS[1], 't', 'W') "
        "if s[1] ~= ARGV[1] then return 0 end "
        "if s[2] then " NOW_MS "if tonumber(s[2]) > now then return 0 end end "
        "if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return 2 end "
        "local old = redis.call('HGET', KEYS[1], ARGV[2]) "
        "if old and string.sub(old, 1, 32) > string.sub(ARGV[3], 1, 32) then return 3 end "
        "redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) "
        "if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end "
        "return 1",
    /* KEYS: hash. ARGV: intent TTL ms, fresh generation. Drops every
     * answer and the token, records one more intent; the hash has no TTL
     * while it holds one (volatile eviction policies never take it).
     * Returns the generation the intent belongs to. */
    [PL_SCRIPT_INTENT] =
        NOW_MS
        "local s = redis.call('HMGET', KEYS[1], 'W', 'n', 'g') "
        "local w, n, g = tonumber(s[1]), tonumber(s[2]), s[3] "
        "if not w or w <= now or not g or not n then n = 0 g = ARGV[2] end "
        "local d = now + tonumber(ARGV[1]) "
        "if w and w > d then d = w end "
        "redis.call('DEL', KEYS[1]) "
        "redis.call('HSET', KEYS[1], 'W', d, 'n', n + 1, 'g', g) "
        "return g",
    /* KEYS: hash. ARGV: the intent's generation. After the write: 1 our
     * intent removed | 2 it was gone but another write is in flight | 0 it
     * was gone (expired and replaced, or lost): the hash is dropped. */
    [PL_SCRIPT_CLEAR] =
        "local s = redis.call('HMGET', KEYS[1], 'W', 'n', 'g') "
        "if s[3] == ARGV[1] then "
        "  local n = (tonumber(s[2]) or 1) - 1 "
        "  if n > 0 then redis.call('HSET', KEYS[1], 'n', n) else redis.call('DEL', KEYS[1]) end "
        "  return 1 "
        "end "
        "if s[1] then " NOW_MS "if tonumber(s[1]) > now then return 2 end end "
        "redis.call('DEL', KEYS[1]) "
        "return 0",
    /* KEYS: hash. After a write the library did not see coming (plain SQL):
     * drops every answer and the token, keeps intents in flight. */
    [PL_SCRIPT_INVALIDATE] =
        "local s = redis.call('HMGET', KEYS[1], 'W', 'n', 'g') "
        "redis.call('DEL', KEYS[1]) "
        "if s[1] and s[3] then redis.call('HSET', KEYS[1], 'W', s[1], 'n', s[2] or 1, 'g', s[3]) end "
        "return 1",
    /* KEYS: hash. ARGV: field, entry. Drops an entry that failed its check,
     * unless it was replaced meanwhile. */
    [PL_SCRIPT_DROP] =
        "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end "
        "return 0",
};
#undef NOW_MS
