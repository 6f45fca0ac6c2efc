/* A hostile Redis for the tests (issue 12, part 3): a RESP proxy in front of
 * the real Redis of tests/servers.sh that passes every command through and,
 * while armed, damages the reply to chosen commands: garbage bytes, a reply
 * of the wrong type, a reply cut short and the connection closed, an
 * enormous bulk length, a stall mid-reply, a reply trickled a byte at a
 * time, or (LOOKUP only) a forged cached entry. Runs as threads of the test
 * process, so the ASan and valgrind phases see it too.
 *
 * SPDX-License-Identifier: MIT */
#ifndef PL_HOSTILE_REDIS_H
#define PL_HOSTILE_REDIS_H

#include <stdint.h>

typedef enum hr_mode {
    HR_NONE = 0,
    HR_GARBAGE,    /* bytes that are no RESP at all, then close */
    HR_WRONG_TYPE, /* a well-formed reply of another type or shape */
    HR_TRUNCATE,   /* a prefix of the genuine reply, then close */
    HR_HUGE_BULK,  /* $999999999999 and a few bytes, then silence */
    HR_STALL,      /* a prefix of the genuine reply, then silence */
    HR_TRICKLE,    /* a huge bulk sent a byte at a time, never ending */
    HR_FORGE,      /* LOOKUP: a forged or replayed entry, well-formed */
    HR_NMODES
} hr_mode;

/* What a command is, as the proxy classifies it (scripts by their text). */
typedef enum hr_target {
    HR_T_LOOKUP = 0,
    HR_T_FILL,
    HR_T_INTENT,
    HR_T_CLEAR,
    HR_T_INVALIDATE,
    HR_T_DROP,
    HR_T_INFO,
    HR_T_SCRIPT_LOAD,
    HR_T_OTHER, /* EXISTS, SET, AUTH, SELECT, unknown scripts */
    HR_NTARGETS
} hr_target;

#define HR_BIT(t) (1u << (t))

typedef struct hostile_redis hostile_redis;

/* Listens on 127.0.0.1 (an ephemeral port) in front of upstream_port. */
hostile_redis *hr_start(int upstream_port, uint64_t seed);
int hr_port(const hostile_redis *h);
/* Damages each reply to a command in target_mask with probability
 * permille/1000 (HR_NONE: passes everything). trickle_ms is the gap
 * between the bytes of HR_TRICKLE. */
void hr_arm(hostile_redis *h, hr_mode mode, unsigned target_mask, unsigned permille);
void hr_set_trickle_ms(hostile_redis *h, unsigned ms);
/* HR_WRONG_TYPE answers LOOKUP with this reply (RESP text, borrowed)
 * instead of one chosen at random; NULL: at random again. */
void hr_set_lookup_reply(hostile_redis *h, const char *reply);
void hr_disarm(hostile_redis *h);
/* How many replies were damaged in mode to commands of target. */
unsigned long hr_fired(hostile_redis *h, hr_mode mode, hr_target target);
unsigned long hr_fired_mode(hostile_redis *h, hr_mode mode);
/* Commands seen per target (damaged or not). */
unsigned long hr_seen(hostile_redis *h, hr_target target);
/* Closes every connection and joins every thread. NULL is fine. */
void hr_stop(hostile_redis *h);

const char *hr_mode_name(hr_mode m);
const char *hr_target_name(hr_target t);

#endif
