/* A loopback TCP server running one thread per accepted connection, and the
 * byte-buffer and socket helpers both test proxies use (hostile_redis.c,
 * pg_proxy.c). The proxies differ only in what they do with a connection's
 * bytes; how they listen, accept, bound their threads and shut down is the
 * same, and lives here so that a fix to it reaches both.
 *
 * SPDX-License-Identifier: MIT */
#ifndef PL_PROXY_SERVER_H
#define PL_PROXY_SERVER_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer; {0} is an empty one, free(b.p) releases it. */
typedef struct tp_buf {
    char *p;
    size_t len, cap;
} tp_buf;

/* Appends n bytes (aborts when out of memory: a test proxy has no better
 * answer). */
void tp_buf_put(tp_buf *b, const void *p, size_t n);
/* Removes the first n bytes (n <= b->len). */
void tp_buf_drop(tp_buf *b, size_t n);

/* Whether the n bytes at p hold the string s (not NUL-terminated: both
 * proxies tell requests apart by text in their binary messages). */
int tp_contains(const char *p, size_t n, const char *s);

/* Sends all n bytes, retrying on EINTR and never raising SIGPIPE: 0, or -1
 * once the peer is gone. */
int tp_send_all(int fd, const char *p, size_t n);
/* One recv from fd appended to b (blocks until something comes): 1 read,
 * -1 closed or failed. */
int tp_read_into(int fd, tp_buf *b);
/* A TCP connection to 127.0.0.1:port with Nagle off (the proxies pass
 * small requests whose latency the tests time), or -1. */
int tp_connect_loopback(int port);

/* The next value of a splitmix64 sequence: the proxies' faults come from a
 * seeded generator so that a failing run can be repeated. Not thread-safe:
 * the caller serializes calls on one state. */
uint64_t tp_rand(uint64_t *state);
/* Milliseconds of CLOCK_MONOTONIC. */
double tp_now_ms(void);

typedef struct tp_server tp_server;

/* Serves one accepted connection fd, on a thread of its own; the server
 * closes fd when this returns. It should return soon after
 * tp_server_stopping() turns non-zero, since tp_server_stop waits for it. */
typedef void (*tp_serve_fn)(tp_server *srv, int fd, void *ctx);

/* Listens on 127.0.0.1 (an ephemeral port) and serves each connection
 * with serve(srv, fd, ctx), at most max_conns at a time (one more is
 * closed at once). NULL on failure. */
tp_server *tp_server_start(tp_serve_fn serve, void *ctx, int max_conns);
int tp_server_port(const tp_server *srv);
/* Non-zero once tp_server_stop has begun. */
int tp_server_stopping(tp_server *srv);
/* Connections being served now. */
int tp_server_live(tp_server *srv);
/* Stops accepting, waits for every connection's thread and frees srv.
 * NULL is fine. */
void tp_server_stop(tp_server *srv);

#endif
