/* The hostile Redis (see hostile_redis.h). One thread accepts; one thread
 * per client connection reads a whole command, passes it to the real
 * Redis, reads the whole reply and decides whether to damage it. The
 * library pipelines commands; replies still go back one per command, in
 * order, so hiredis stays in step until a damaged reply breaks it.
 *
 * SPDX-License-Identifier: MIT */
#include "hostile_redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define MAX_SHAS 16
#define MAX_CAPTURED 8
#define STALL_MAX_MS 10000 /* a stalled reply is closed after this at the latest */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

typedef struct captured {
    char *entry;
    size_t len;
    char key[128]; /* the command's key and field, to replay elsewhere */
    size_t key_len;
} captured;

struct hostile_redis {
    int listen_fd;
    int port;
    int upstream_port;
    atomic_int stopping;
    pthread_t acceptor;
    pthread_mutex_t mu;
    struct slot {
        pthread_t th;
        atomic_int used;
        atomic_int done;
    } slots[MAX_CONNS];
    /* armed fault, under mu */
    hr_mode mode;
    unsigned mask;
    unsigned permille;
    unsigned trickle_ms;
    const char *lookup_reply;
    uint64_t rng;
    unsigned long fired[HR_NMODES][HR_NTARGETS];
    unsigned long seen[HR_NTARGETS];
    /* EVALSHA sha -> script kind, learnt from SCRIPT LOAD */
    char sha[MAX_SHAS][41];
    hr_target sha_kind[MAX_SHAS];
    int nsha;
    captured cap[MAX_CAPTURED];
    int ncap;
};

typedef struct conn_arg {
    hostile_redis *h;
    int fd;
    int slot;
} conn_arg;

static const char *const mode_names[HR_NMODES] = {"none", "garbage", "wrong_type", "truncate",
                                                  "huge_bulk", "stall", "trickle", "forge"};
static const char *const target_names[HR_NTARGETS] = {
    "LOOKUP", "FILL", "INTENT", "CLEAR", "INVALIDATE", "DROP", "INFO", "SCRIPT_LOAD", "other"};

const char *hr_mode_name(hr_mode m)
{
    return m >= 0 && m < HR_NMODES ? mode_names[m] : "?";
}

const char *hr_target_name(hr_target t)
{
    return t >= 0 && t < HR_NTARGETS ? target_names[t] : "?";
}

static uint64_t rnd(hostile_redis *h)
{
    /* splitmix64, under h->mu */
    uint64_t z = (h->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void buf_put(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
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

static void buf_drop(buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* Reads what fd has into b, waiting up to 100 ms. 1 read, 0 nothing yet,
 * -1 closed or failed. */
static int fill(int fd, buf *b)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    int n = poll(&pfd, 1, 100);
    if (n == 0 || (n < 0 && errno == EINTR))
        return 0;
    if (n < 0)
        return -1;
    char tmp[65536];
    ssize_t r = recv(fd, tmp, sizeof tmp, 0);
    if (r <= 0)
        return r < 0 && errno == EINTR ? 0 : -1;
    buf_put(b, tmp, (size_t)r);
    return 1;
}

static int send_all(int fd, const char *p, size_t n)
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

/* The line at p (up to CRLF): its length without CRLF, or -1 incomplete. */
static long line_len(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n')
            return (long)i;
    return -1;
}

/* The length of one complete RESP2 value at p: >0, 0 incomplete, -1 bad. */
static long resp_len(const char *p, size_t n)
{
    if (n < 1)
        return 0;
    long l = line_len(p, n);
    if (l < 0)
        return 0;
    long head = l + 2;
    switch (p[0]) {
    case '+':
    case '-':
    case ':':
        return head;
    case '$': {
        long long len = strtoll(p + 1, NULL, 10);
        if (len < 0)
            return head;
        if ((size_t)head + (size_t)len + 2 > n)
            return 0;
        return head + (long)len + 2;
    }
    case '*': {
        long long cnt = strtoll(p + 1, NULL, 10);
        size_t off = (size_t)head;
        for (long long i = 0; i < cnt; i++) {
            long e = resp_len(p + off, n - off);
            if (e <= 0)
                return e;
            off += (size_t)e;
        }
        return (long)off;
    }
    default:
        return -1;
    }
}

/* The arguments of a command (an array of bulk strings) at p. */
static int command_args(const char *p, size_t n, const char **av, size_t *al, int max)
{
    if (n < 1 || p[0] != '*')
        return -1;
    long l = line_len(p, n);
    int cnt = atoi(p + 1);
    size_t off = (size_t)l + 2;
    int k = 0;
    for (int i = 0; i < cnt; i++) {
        long hl = line_len(p + off, n - off);
        long long len = strtoll(p + off + 1, NULL, 10);
        off += (size_t)hl + 2;
        if (k < max) {
            av[k] = p + off;
            al[k] = (size_t)len;
            k++;
        }
        off += (size_t)len + 2;
    }
    return k;
}

static int arg_is(const char *a, size_t n, const char *s)
{
    return n == strlen(s) && strncasecmp(a, s, n) == 0;
}

static int contains(const char *p, size_t n, const char *s)
{
    size_t m = strlen(s);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, s, m) == 0)
            return 1;
    return 0;
}

/* Which of lib/cache/scripts.c a script body is, by text it alone has. */
static hr_target script_kind(const char *body, size_t n)
{
    if (contains(body, n, "return {4}"))
        return HR_T_LOOKUP;
    if (contains(body, n, "'HLEN'"))
        return HR_T_FILL;
    if (contains(body, n, "'W', d,"))
        return HR_T_INTENT;
    if (contains(body, n, "if s[3] == ARGV[1]"))
        return HR_T_CLEAR;
    if (contains(body, n, "if s[1] and s[3] then"))
        return HR_T_INVALIDATE;
    if (contains(body, n, "'HDEL'"))
        return HR_T_DROP;
    return HR_T_OTHER;
}

static hr_target classify(hostile_redis *h, const char **av, const size_t *al, int ac)
{
    if (ac < 1)
        return HR_T_OTHER;
    if (arg_is(av[0], al[0], "INFO"))
        return HR_T_INFO;
    if (arg_is(av[0], al[0], "SCRIPT"))
        return HR_T_SCRIPT_LOAD;
    if (arg_is(av[0], al[0], "EVALSHA") && ac >= 2) {
        hr_target t = HR_T_OTHER;
        pthread_mutex_lock(&h->mu);
        for (int i = 0; i < h->nsha; i++)
            if (al[1] == strlen(h->sha[i]) && memcmp(av[1], h->sha[i], al[1]) == 0)
                t = h->sha_kind[i];
        pthread_mutex_unlock(&h->mu);
        return t;
    }
    return HR_T_OTHER;
}

/* SCRIPT LOAD's reply names the script's sha: learn its kind. */
static void learn_sha(hostile_redis *h, const char **av, const size_t *al, int ac, const char *rep,
                      size_t rn)
{
    if (ac < 3 || rn < 5 || rep[0] != '$')
        return;
    long l = line_len(rep, rn);
    const char *sha = rep + l + 2;
    if (rn < (size_t)l + 2 + 40)
        return;
    hr_target kind = script_kind(av[2], al[2]);
    pthread_mutex_lock(&h->mu);
    int found = 0;
    for (int i = 0; i < h->nsha; i++)
        if (memcmp(h->sha[i], sha, 40) == 0)
            found = 1;
    if (!found && h->nsha < MAX_SHAS) {
        memcpy(h->sha[h->nsha], sha, 40);
        h->sha[h->nsha][40] = '\0';
        h->sha_kind[h->nsha++] = kind;
    }
    pthread_mutex_unlock(&h->mu);
}

/* A LOOKUP hit is *2 :1 $len entry: where its entry is. */
static int lookup_entry(const char *rep, size_t rn, const char **entry, size_t *len)
{
    if (rn < 12 || memcmp(rep, "*2\r\n:1\r\n$", 9) != 0)
        return -1;
    long l = line_len(rep + 8, rn - 8);
    long long n = strtoll(rep + 9, NULL, 10);
    if (l < 0 || n < 0 || (size_t)(8 + l + 2 + n) > rn)
        return -1;
    *entry = rep + 8 + l + 2;
    *len = (size_t)n;
    return 0;
}

/* The key and field of a LOOKUP command (EVALSHA sha 2 key marker field ...). */
static void lookup_question(const char **av, const size_t *al, int ac, char *out, size_t *n,
                            size_t cap)
{
    *n = 0;
    if (ac < 6)
        return;
    size_t a = al[3] < cap / 2 ? al[3] : cap / 2, b = al[5] < cap / 2 ? al[5] : cap / 2;
    memcpy(out, av[3], a);
    memcpy(out + a, av[5], b);
    *n = a + b;
}

static void capture(hostile_redis *h, const char *q, size_t qn, const char *entry, size_t len)
{
    pthread_mutex_lock(&h->mu);
    int slot = h->ncap < MAX_CAPTURED ? h->ncap++ : (int)(rnd(h) % MAX_CAPTURED);
    captured *c = &h->cap[slot];
    free(c->entry);
    c->entry = malloc(len ? len : 1);
    if (c->entry) {
        memcpy(c->entry, entry, len);
        c->len = len;
        memcpy(c->key, q, qn);
        c->key_len = qn;
    } else {
        c->len = 0;
    }
    pthread_mutex_unlock(&h->mu);
}

static void put_bulk(buf *out, const char *p, size_t n)
{
    char head[32];
    int hl = snprintf(head, sizeof head, "$%zu\r\n", n);
    buf_put(out, head, (size_t)hl);
    buf_put(out, p, n);
    buf_put(out, "\r\n", 2);
}

/* A well-formed LOOKUP hit whose entry is not the genuine answer to this
 * question: one of its bytes changed, cut short, random bytes, or a
 * genuine entry captured for another question (a replay). Under h->mu. */
static void forge(hostile_redis *h, const char *q, size_t qn, const char *rep, size_t rn, buf *out)
{
    const char *entry = NULL;
    size_t len = 0;
    int hit = lookup_entry(rep, rn, &entry, &len) == 0;
    buf_put(out, "*2\r\n:1\r\n", 8);
    int kind = (int)(rnd(h) % 4);
    if (kind == 3) {
        for (int i = 0; i < h->ncap; i++) {
            const captured *c = &h->cap[(i + (int)(rnd(h) % MAX_CAPTURED)) % h->ncap];
            if (c->len && (c->key_len != qn || memcmp(c->key, q, qn) != 0)) {
                put_bulk(out, c->entry, c->len);
                return;
            }
        }
        kind = hit ? 0 : 2; /* nothing to replay yet */
    }
    if ((kind == 0 || kind == 1) && !hit)
        kind = 2;
    if (kind == 0) { /* one byte of the entry changed */
        char *e = malloc(len);
        if (!e)
            abort();
        memcpy(e, entry, len);
        e[rnd(h) % len] ^= (char)(1 + rnd(h) % 255);
        put_bulk(out, e, len);
        free(e);
    } else if (kind == 1) { /* cut short */
        put_bulk(out, entry, rnd(h) % len);
    } else { /* random bytes of an entry's size */
        size_t n = 72 + rnd(h) % 200;
        char *e = malloc(n);
        if (!e)
            abort();
        for (size_t i = 0; i < n; i++)
            e[i] = (char)rnd(h);
        put_bulk(out, e, n);
        free(e);
    }
}

static const char *const wrong_replies[] = {
    ":42\r\n",
    "+OK\r\n",
    "-ERR hostile server\r\n",
    "-NOSCRIPT No matching script. Please use EVAL.\r\n",
    "$-1\r\n",
    "*-1\r\n",
    "*0\r\n",
    "$3\r\nabc\r\n",
    "*1\r\n:1\r\n",          /* a hit without its entry */
    "*2\r\n:1\r\n:7\r\n",     /* a hit whose entry is a number */
    "*2\r\n:2\r\n*1\r\n:1\r\n", /* a token that is an array */
    "*2\r\n:9\r\n$1\r\nx\r\n", /* an unknown status */
    "*1\r\n:4\r\n",          /* "the epoch marker is missing" */
    "*2\r\n$1\r\n1\r\n$3\r\nabc\r\n",
    "*3\r\n:1\r\n:2\r\n:3\r\n",
};

static const char *const garbage_replies[] = {
    "hello there\r\n",
    "\x00\x01\x02\x03\xff\xfe\r\n",
    "$abc\r\n",
    "$-5\r\n",
    "*x\r\n",
    "?\r\n",
    "{\"json\":true}\r\n",
};

typedef struct decision {
    hr_mode mode;
    unsigned trickle_ms;
} decision;

static decision decide(hostile_redis *h, hr_target t)
{
    decision d = {HR_NONE, 0};
    pthread_mutex_lock(&h->mu);
    h->seen[t]++;
    if (h->mode != HR_NONE && (h->mask & HR_BIT(t)) && rnd(h) % 1000 < h->permille &&
        (h->mode != HR_FORGE || t == HR_T_LOOKUP)) {
        d.mode = h->mode;
        d.trickle_ms = h->trickle_ms;
        h->fired[h->mode][t]++;
    }
    pthread_mutex_unlock(&h->mu);
    return d;
}

/* Silence until the client hangs up (or STALL_MAX_MS), sending one byte of
 * bulk every trickle_ms when trickle_ms > 0. */
static void stall(hostile_redis *h, int fd, unsigned trickle_ms)
{
    double end = now_ms() + STALL_MAX_MS, next = now_ms() + trickle_ms;
    buf junk = {0};
    while (!atomic_load(&h->stopping) && now_ms() < end) {
        if (trickle_ms && now_ms() >= next) {
            if (send_all(fd, "x", 1) < 0)
                break;
            next += trickle_ms;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int n = poll(&pfd, 1, trickle_ms ? (int)trickle_ms / 2 + 1 : 50);
        if (n > 0) {
            if (fill(fd, &junk) < 0)
                break;
            junk.len = 0;
        }
    }
    free(junk.p);
}

static int connect_upstream(int port)
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
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void *conn_main(void *arg)
{
    conn_arg *ca = arg;
    hostile_redis *h = ca->h;
    int cfd = ca->fd, slot = ca->slot;
    free(ca);
    int ufd = connect_upstream(h->upstream_port);
    buf in = {0}, up = {0}, out = {0};
    while (ufd >= 0 && !atomic_load(&h->stopping)) {
        long clen;
        while ((clen = resp_len(in.p, in.len)) == 0) {
            int f = fill(cfd, &in);
            if (f < 0 || atomic_load(&h->stopping))
                goto done;
        }
        if (clen < 0)
            goto done;
        const char *av[8];
        size_t al[8];
        int ac = command_args(in.p, (size_t)clen, av, al, 8);
        hr_target t = classify(h, av, al, ac);
        if (send_all(ufd, in.p, (size_t)clen) < 0)
            goto done;
        long rlen;
        while ((rlen = resp_len(up.p, up.len)) == 0) {
            int f = fill(ufd, &up);
            if (f < 0 || atomic_load(&h->stopping))
                goto done;
        }
        if (rlen < 0)
            goto done;
        if (t == HR_T_SCRIPT_LOAD)
            learn_sha(h, av, al, ac, up.p, (size_t)rlen);
        char q[128];
        size_t qn = 0;
        if (t == HR_T_LOOKUP) {
            lookup_question(av, al, ac, q, &qn, sizeof q);
            const char *e;
            size_t el;
            if (lookup_entry(up.p, (size_t)rlen, &e, &el) == 0)
                capture(h, q, qn, e, el);
        }
        decision d = decide(h, t);
        out.len = 0;
        int close_after = 0;
        switch (d.mode) {
        case HR_NONE:
            buf_put(&out, up.p, (size_t)rlen);
            break;
        case HR_GARBAGE: {
            pthread_mutex_lock(&h->mu);
            size_t i = rnd(h) % (sizeof garbage_replies / sizeof *garbage_replies);
            pthread_mutex_unlock(&h->mu);
            const char *g = garbage_replies[i];
            buf_put(&out, g, i == 1 ? 8 : strlen(g));
            close_after = 1;
            break;
        }
        case HR_WRONG_TYPE: {
            pthread_mutex_lock(&h->mu);
            const char *w = wrong_replies[rnd(h) % (sizeof wrong_replies / sizeof *wrong_replies)];
            if (t == HR_T_LOOKUP && h->lookup_reply)
                w = h->lookup_reply;
            pthread_mutex_unlock(&h->mu);
            buf_put(&out, w, strlen(w));
            break;
        }
        case HR_TRUNCATE: {
            pthread_mutex_lock(&h->mu);
            size_t k = 1 + rnd(h) % (size_t)(rlen - 1);
            pthread_mutex_unlock(&h->mu);
            buf_put(&out, up.p, k);
            close_after = 1;
            break;
        }
        case HR_HUGE_BULK:
            if (t == HR_T_LOOKUP)
                buf_put(&out, "*2\r\n:1\r\n$999999999999\r\nabc", 27);
            else
                buf_put(&out, "$999999999999\r\nabc", 18);
            close_after = 2;
            break;
        case HR_STALL: {
            pthread_mutex_lock(&h->mu);
            size_t k = rnd(h) % (size_t)rlen;
            pthread_mutex_unlock(&h->mu);
            buf_put(&out, up.p, k);
            close_after = 2;
            break;
        }
        case HR_TRICKLE:
            buf_put(&out, "$999999999999\r\n", 15);
            close_after = 3;
            break;
        case HR_FORGE:
            pthread_mutex_lock(&h->mu);
            forge(h, q, qn, up.p, (size_t)rlen, &out);
            pthread_mutex_unlock(&h->mu);
            break;
        default:
            break;
        }
        buf_drop(&in, (size_t)clen);
        buf_drop(&up, (size_t)rlen);
        if (send_all(cfd, out.p, out.len) < 0)
            goto done;
        if (close_after >= 2)
            stall(h, cfd, close_after == 3 ? d.trickle_ms : 0);
        if (close_after)
            goto done;
    }
done:
    if (ufd >= 0)
        close(ufd);
    close(cfd);
    free(in.p);
    free(up.p);
    free(out.p);
    atomic_store(&h->slots[slot].done, 1);
    return NULL;
}

/* A free thread slot (joining the threads that ended), or -1. */
static int free_slot(hostile_redis *h)
{
    int found = -1;
    for (int i = 0; i < MAX_CONNS; i++) {
        struct slot *s = &h->slots[i];
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
    hostile_redis *h = arg;
    while (!atomic_load(&h->stopping)) {
        struct pollfd pfd = {h->listen_fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_arg *ca = malloc(sizeof *ca);
        int slot = free_slot(h);
        if (!ca || slot < 0) {
            free(ca);
            close(fd);
            continue;
        }
        ca->h = h;
        ca->fd = fd;
        ca->slot = slot;
        atomic_store(&h->slots[slot].done, 0);
        if (pthread_create(&h->slots[slot].th, NULL, conn_main, ca) != 0) {
            free(ca);
            close(fd);
            continue;
        }
        h->slots[slot].used = 1;
    }
    return NULL;
}

hostile_redis *hr_start(int upstream_port, uint64_t seed)
{
    hostile_redis *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->upstream_port = upstream_port;
    h->rng = seed;
    h->trickle_ms = 50;
    pthread_mutex_init(&h->mu, NULL);
    h->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (h->listen_fd < 0 || bind(h->listen_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(h->listen_fd, 64) < 0 || getsockname(h->listen_fd, (struct sockaddr *)&a, &al) < 0) {
        if (h->listen_fd >= 0)
            close(h->listen_fd);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    h->port = ntohs(a.sin_port);
    if (pthread_create(&h->acceptor, NULL, accept_main, h) != 0) {
        close(h->listen_fd);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

int hr_port(const hostile_redis *h)
{
    return h->port;
}

void hr_arm(hostile_redis *h, hr_mode mode, unsigned target_mask, unsigned permille)
{
    pthread_mutex_lock(&h->mu);
    h->mode = mode;
    h->mask = target_mask;
    h->permille = permille;
    pthread_mutex_unlock(&h->mu);
}

void hr_set_trickle_ms(hostile_redis *h, unsigned ms)
{
    pthread_mutex_lock(&h->mu);
    h->trickle_ms = ms ? ms : 1;
    pthread_mutex_unlock(&h->mu);
}

void hr_set_lookup_reply(hostile_redis *h, const char *reply)
{
    pthread_mutex_lock(&h->mu);
    h->lookup_reply = reply;
    pthread_mutex_unlock(&h->mu);
}

void hr_disarm(hostile_redis *h)
{
    hr_arm(h, HR_NONE, 0, 0);
}

unsigned long hr_fired(hostile_redis *h, hr_mode mode, hr_target target)
{
    pthread_mutex_lock(&h->mu);
    unsigned long n = h->fired[mode][target];
    pthread_mutex_unlock(&h->mu);
    return n;
}

unsigned long hr_fired_mode(hostile_redis *h, hr_mode mode)
{
    unsigned long n = 0;
    for (int t = 0; t < HR_NTARGETS; t++)
        n += hr_fired(h, mode, (hr_target)t);
    return n;
}

unsigned long hr_seen(hostile_redis *h, hr_target target)
{
    pthread_mutex_lock(&h->mu);
    unsigned long n = h->seen[target];
    pthread_mutex_unlock(&h->mu);
    return n;
}

void hr_stop(hostile_redis *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    pthread_join(h->acceptor, NULL);
    for (int i = 0; i < MAX_CONNS; i++)
        if (h->slots[i].used)
            pthread_join(h->slots[i].th, NULL);
    close(h->listen_fd);
    for (int i = 0; i < h->ncap; i++)
        free(h->cap[i].entry);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
