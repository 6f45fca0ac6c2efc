/* A TCP proxy between the library and PostgreSQL for the tests (issue 12,
 * part 3) that cuts or stalls a connection in the middle of a statement.
 * It follows the protocol's messages: a request is a simple Query or the
 * extended messages up to Sync, classified by its SQL as a write (the
 * append), a read (the ledger's tables) or other. Armed, it fires at
 * each of the next requests of a chosen kind, at a chosen point:
 *   PP_AT_REQUEST   part of the request reached the server (never runs);
 *   PP_AT_EXECUTE   all of it did, no byte of the answer came back: for a
 *                   write this is mid-commit, it commits unseen;
 *   PP_AT_RESPONSE  part of the answer came back, not its ReadyForQuery;
 *   PP_AT_STARTUP   (the next new connection) part of the server's
 *                   answer to the startup packet came back;
 * and then either closes both sides (PP_CUT) or goes silent until the
 * client hangs up (PP_STALL). Byte offsets come from a seeded generator.
 * Cancel requests pass through untouched. Needs sslmode=disable. Runs as
 * threads of the test process.
 *
 * SPDX-License-Identifier: MIT */
#ifndef PL_PG_PROXY_H
#define PL_PG_PROXY_H

#include <stdint.h>

typedef enum pp_action { PP_CUT = 0, PP_STALL, PP_NACTIONS } pp_action;
typedef enum pp_phase {
    PP_AT_REQUEST = 0,
    PP_AT_EXECUTE,
    PP_AT_RESPONSE,
    PP_AT_STARTUP, /* a new connection, inside the server's startup answer (kind: PP_OTHER) */
    PP_NPHASES
} pp_phase;
typedef enum pp_kind { PP_WRITE = 0, PP_READ, PP_OTHER, PP_NKINDS } pp_kind;

typedef struct pg_proxy pg_proxy;

/* Listens on 127.0.0.1 (an ephemeral port) in front of upstream_port. */
pg_proxy *pp_start(int upstream_port, uint64_t seed);
int pp_port(const pg_proxy *p);
/* Fires at each of the next count requests of kind. */
void pp_arm(pg_proxy *p, pp_action action, pp_phase phase, pp_kind kind, int count);
void pp_disarm(pg_proxy *p);
/* Non-zero while armed and not yet fired. */
int pp_armed(pg_proxy *p);
unsigned long pp_fired(pg_proxy *p, pp_action action, pp_phase phase, pp_kind kind);
unsigned long pp_requests(pg_proxy *p, pp_kind kind);
/* Connections open through the proxy now. */
int pp_live(pg_proxy *p);
/* Closes every connection and joins every thread. NULL is fine. */
void pp_stop(pg_proxy *p);

const char *pp_action_name(pp_action a);
const char *pp_phase_name(pp_phase ph);
const char *pp_kind_name(pp_kind k);

#endif
