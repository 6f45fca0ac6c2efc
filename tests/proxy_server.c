/* The test proxies' loopback server and helpers (see proxy_server.h). One
 * thread accepts; each connection gets a thread in a fixed table of slots,
 * so that stopping can join every thread without a list shared under a
 * lock: a connection's thread marks its slot done, and the acceptor joins
 * done threads when it needs a slot.
 *
 * SPDX-License-Identifier: MIT */
#include "proxy_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void tp_buf_put(tp_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 8192;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            abort();
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void tp_buf_drop(tp_buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

int tp_contains(const char *p, size_t n, const char *s)
{
    size_t m = strlen(s);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, s, m) == 0)
            return 1;
    return 0;
}

int tp_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int tp_read_into(int fd, tp_buf *b)
{
    char tmp[65536];
    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r > 0) {
            tp_buf_put(b, tmp, (size_t)r);
            return 1;
        }
        if (r < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int tp_connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    set_nodelay(fd);
    return fd;
}

uint64_t tp_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

double tp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct slot {
    pthread_t th;
    atomic_int used; /* th is a thread not yet joined (read by tp_server_live) */
    atomic_int done; /* that thread has finished serving */
} slot;

struct tp_server {
    tp_serve_fn serve;
    void *ctx;
    int listen_fd;
    int port;
    atomic_int stopping;
    pthread_t acceptor;
    int nslots;
    slot *slots;
};

typedef struct conn_arg {
    tp_server *srv;
    int fd;
    int slot;
} conn_arg;

static void *conn_main(void *arg)
{
    conn_arg *ca = arg;
    tp_server *srv = ca->srv;
    int fd = ca->fd, i = ca->slot;
    free(ca);
    srv->serve(srv, fd, srv->ctx);
    close(fd);
    atomic_store(&srv->slots[i].done, 1);
    return NULL;
}

/* A free slot (joining the threads that ended), or -1. Acceptor only. */
static int free_slot(tp_server *srv)
{
    int found = -1;
    for (int i = 0; i < srv->nslots; i++) {
        slot *s = &srv->slots[i];
        if (s->used && atomic_load(&s->done)) {
            pthread_join(s->th, NULL);
            s->used = 0;
        }
        if (!s->used && found < 0)
            found = i;
    }
    return found;
}

static void *accept_main(void *arg)
{
    tp_server *srv = arg;
    /* Polls rather than blocks in accept so that it sees stopping within
     * 100 ms. */
    while (!atomic_load(&srv->stopping)) {
        struct pollfd pfd = {srv->listen_fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        set_nodelay(fd);
        conn_arg *ca = malloc(sizeof *ca);
        int i = free_slot(srv);
        if (!ca || i < 0) {
            free(ca);
            close(fd);
            continue;
        }
        ca->srv = srv;
        ca->fd = fd;
        ca->slot = i;
        atomic_store(&srv->slots[i].done, 0);
        if (pthread_create(&srv->slots[i].th, NULL, conn_main, ca) != 0) {
            free(ca);
            close(fd);
            continue;
        }
        srv->slots[i].used = 1;
    }
    return NULL;
}

tp_server *tp_server_start(tp_serve_fn serve, void *ctx, int max_conns)
{
    tp_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->serve = serve;
    srv->ctx = ctx;
    srv->nslots = max_conns;
    srv->slots = calloc((size_t)max_conns, sizeof *srv->slots);
    srv->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (!srv->slots || srv->listen_fd < 0 || bind(srv->listen_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(srv->listen_fd, 64) < 0 ||
        getsockname(srv->listen_fd, (struct sockaddr *)&a, &al) < 0) {
        if (srv->listen_fd >= 0)
            close(srv->listen_fd);
        free(srv->slots);
        free(srv);
        return NULL;
    }
    srv->port = ntohs(a.sin_port);
    if (pthread_create(&srv->acceptor, NULL, accept_main, srv) != 0) {
        close(srv->listen_fd);
        free(srv->slots);
        free(srv);
        return NULL;
    }
    return srv;
}

int tp_server_port(const tp_server *srv)
{
    return srv->port;
}

int tp_server_stopping(tp_server *srv)
{
    return atomic_load(&srv->stopping);
}

int tp_server_live(tp_server *srv)
{
    int n = 0;
    for (int i = 0; i < srv->nslots; i++)
        n += srv->slots[i].used && !atomic_load(&srv->slots[i].done);
    return n;
}

void tp_server_stop(tp_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, 1);
    /* The acceptor first, so that no thread starts while the slots are
     * joined. */
    pthread_join(srv->acceptor, NULL);
    for (int i = 0; i < srv->nslots; i++)
        if (srv->slots[i].used)
            pthread_join(srv->slots[i].th, NULL);
    close(srv->listen_fd);
    free(srv->slots);
    free(srv);
}
