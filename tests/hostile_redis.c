/* The hostile Redis (see hostile_redis.h). On a thread per client
 * connection (tests/proxy_server.c), serve() reads a whole command,
 * passes it to the real Redis, reads the whole reply and decides whether
 * to damage it. The library pipelines commands; replies still go back one per command, in
 * order, so hiredis stays in step until a damaged reply breaks it.
 *
 * SPDX-License-Identifier: MIT */
#include "hostile_redis.h"

#include "proxy_server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_CONNS 256
#define MAX_SHAS 16
#define MAX_CAPTURED 8
#define STALL_MAX_MS 10000 /* a stalled reply is closed after this at the latest */

typedef struct captured {
    char *entry;
    size_t len;
    char key[128]; /* the command's key and field, to replay elsewhere */
    size_t key_len;
} captured;

struct hostile_redis {
    tp_server *srv;
    int upstream_port;
    pthread_mutex_t mu;
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

/* Reads what fd has into b, waiting up to 100 ms. 1 read, 0 nothing yet,
 * -1 closed or failed. */
static int fill(int fd, tp_buf *b)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    int n = poll(&pfd, 1, 100);
    if (n == 0 || (n < 0 && errno == EINTR))
        return 0;
    if (n < 0)
        return -1;
    return tp_read_into(fd, b);
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

/* Which of lib/cache/scripts.c a script body is, by text it alone has. */
static hr_target script_kind(const char *body, size_t n)
{
    if (tp_contains(body, n, "return {4}"))
        return HR_T_LOOKUP;
    if (tp_contains(body, n, "'HLEN'"))
        return HR_T_FILL;
    if (tp_contains(body, n, "'W', d,"))
        return HR_T_INTENT;
    if (tp_contains(body, n, "if s[3] == ARGV[1]"))
        return HR_T_CLEAR;
    if (tp_contains(body, n, "if s[1] and s[3] then"))
        return HR_T_INVALIDATE;
    if (tp_contains(body, n, "'HDEL'"))
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
    int slot = h->ncap < MAX_CAPTURED ? h->ncap++ : (int)(tp_rand(&h->rng) % MAX_CAPTURED);
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

static void put_bulk(tp_buf *out, const char *p, size_t n)
{
    char head[32];
    int hl = snprintf(head, sizeof head, "$%zu\r\n", n);
    tp_buf_put(out, head, (size_t)hl);
    tp_buf_put(out, p, n);
    tp_buf_put(out, "\r\n", 2);
}

/* A well-formed LOOKUP hit whose entry is not the genuine answer to this
 * question: one of its bytes changed, cut short, random bytes, or a
 * genuine entry captured for another question (a replay). Under h->mu. */
static void forge(hostile_redis *h, const char *q, size_t qn, const char *rep, size_t rn, tp_buf *out)
{
    const char *entry = NULL;
    size_t len = 0;
    int hit = lookup_entry(rep, rn, &entry, &len) == 0;
    tp_buf_put(out, "*2\r\n:1\r\n", 8);
    int kind = (int)(tp_rand(&h->rng) % 4);
    if (kind == 3) {
        for (int i = 0; i < h->ncap; i++) {
            const captured *c = &h->cap[(i + (int)(tp_rand(&h->rng) % MAX_CAPTURED)) % h->ncap];
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
        e[tp_rand(&h->rng) % len] ^= (char)(1 + tp_rand(&h->rng) % 255);
        put_bulk(out, e, len);
        free(e);
    } else if (kind == 1) { /* cut short */
        put_bulk(out, entry, tp_rand(&h->rng) % len);
    } else { /* random bytes of an entry's size */
        size_t n = 72 + tp_rand(&h->rng) % 200;
        char *e = malloc(n);
        if (!e)
            abort();
        for (size_t i = 0; i < n; i++)
            e[i] = (char)tp_rand(&h->rng);
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
    if (h->mode != HR_NONE && (h->mask & HR_BIT(t)) && tp_rand(&h->rng) % 1000 < h->permille &&
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
static void stall(tp_server *srv, int fd, unsigned trickle_ms)
{
    double end = tp_now_ms() + STALL_MAX_MS, next = tp_now_ms() + trickle_ms;
    tp_buf junk = {0};
    while (!tp_server_stopping(srv) && tp_now_ms() < end) {
        if (trickle_ms && tp_now_ms() >= next) {
            if (tp_send_all(fd, "x", 1) < 0)
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

static void serve(tp_server *srv, int cfd, void *ctx)
{
    hostile_redis *h = ctx;
    int ufd = tp_connect_loopback(h->upstream_port);
    tp_buf in = {0}, up = {0}, out = {0};
    while (ufd >= 0 && !tp_server_stopping(srv)) {
        long clen;
        while ((clen = resp_len(in.p, in.len)) == 0) {
            int f = fill(cfd, &in);
            if (f < 0 || tp_server_stopping(srv))
                goto done;
        }
        if (clen < 0)
            goto done;
        const char *av[8];
        size_t al[8];
        int ac = command_args(in.p, (size_t)clen, av, al, 8);
        hr_target t = classify(h, av, al, ac);
        if (tp_send_all(ufd, in.p, (size_t)clen) < 0)
            goto done;
        long rlen;
        while ((rlen = resp_len(up.p, up.len)) == 0) {
            int f = fill(ufd, &up);
            if (f < 0 || tp_server_stopping(srv))
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
            tp_buf_put(&out, up.p, (size_t)rlen);
            break;
        case HR_GARBAGE: {
            pthread_mutex_lock(&h->mu);
            size_t i = tp_rand(&h->rng) % (sizeof garbage_replies / sizeof *garbage_replies);
            pthread_mutex_unlock(&h->mu);
            const char *g = garbage_replies[i];
            tp_buf_put(&out, g, i == 1 ? 8 : strlen(g));
            close_after = 1;
            break;
        }
        case HR_WRONG_TYPE: {
            pthread_mutex_lock(&h->mu);
            const char *w = wrong_replies[tp_rand(&h->rng) % (sizeof wrong_replies / sizeof *wrong_replies)];
            if (t == HR_T_LOOKUP && h->lookup_reply)
                w = h->lookup_reply;
            pthread_mutex_unlock(&h->mu);
            tp_buf_put(&out, w, strlen(w));
            break;
        }
        case HR_TRUNCATE: {
            pthread_mutex_lock(&h->mu);
            size_t k = 1 + tp_rand(&h->rng) % (size_t)(rlen - 1);
            pthread_mutex_unlock(&h->mu);
            tp_buf_put(&out, up.p, k);
            close_after = 1;
            break;
        }
        case HR_HUGE_BULK:
            if (t == HR_T_LOOKUP)
                tp_buf_put(&out, "*2\r\n:1\r\n$999999999999\r\nabc", 27);
            else
                tp_buf_put(&out, "$999999999999\r\nabc", 18);
            close_after = 2;
            break;
        case HR_STALL: {
            pthread_mutex_lock(&h->mu);
            size_t k = tp_rand(&h->rng) % (size_t)rlen;
            pthread_mutex_unlock(&h->mu);
            tp_buf_put(&out, up.p, k);
            close_after = 2;
            break;
        }
        case HR_TRICKLE:
            tp_buf_put(&out, "$999999999999\r\n", 15);
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
        tp_buf_drop(&in, (size_t)clen);
        tp_buf_drop(&up, (size_t)rlen);
        if (tp_send_all(cfd, out.p, out.len) < 0)
            goto done;
        if (close_after >= 2)
            stall(srv, cfd, close_after == 3 ? d.trickle_ms : 0);
        if (close_after)
            goto done;
    }
done:
    if (ufd >= 0)
        close(ufd);
    free(in.p);
    free(up.p);
    free(out.p);
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
    h->srv = tp_server_start(serve, h, MAX_CONNS);
    if (!h->srv) {
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

int hr_port(const hostile_redis *h)
{
    return tp_server_port(h->srv);
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
    tp_server_stop(h->srv);
    for (int i = 0; i < h->ncap; i++)
        free(h->cap[i].entry);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
