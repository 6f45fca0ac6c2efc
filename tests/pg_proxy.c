/* The cutting PostgreSQL proxy (see pg_proxy.h). On a thread per
 * connection (tests/proxy_server.c), serve() pumps both directions. The client's typed messages
 * are held until their request is whole (Query, or up to Sync), so that
 * the proxy knows what the request is before any of it reaches the
 * server; the server's bytes pass as they come, except after a request the
 * armed fault picked at PP_AT_RESPONSE, whose answer is held up to its
 * ReadyForQuery and then only partly passed on.
 *
 * SPDX-License-Identifier: MIT */
#include "pg_proxy.h"

#include "proxy_server.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CONNS 128
#define MAX_NAMES 256
#define STALL_MAX_MS 15000

struct pg_proxy {
    tp_server *srv;
    int upstream_port;
    pthread_mutex_t mu;
    int armed;
    pp_action action;
    pp_phase phase;
    pp_kind kind;
    uint64_t rng;
    unsigned long fired[PP_NACTIONS][PP_NPHASES][PP_NKINDS];
    unsigned long requests[PP_NKINDS];
};

/* Prepared statement names of one connection and the kind of their SQL. */
typedef struct names {
    char *name[MAX_NAMES];
    pp_kind kind[MAX_NAMES];
    int n;
    pp_kind unnamed;
} names;

static const char *const action_names[] = {"cut", "stall"};
static const char *const phase_names[] = {"mid-request", "mid-commit/execute", "mid-response",
                                          "mid-startup"};
static const char *const kind_names[] = {"write", "read", "other"};

const char *pp_action_name(pp_action a)
{
    return a >= 0 && a < PP_NACTIONS ? action_names[a] : "?";
}

const char *pp_phase_name(pp_phase ph)
{
    return ph >= 0 && ph < PP_NPHASES ? phase_names[ph] : "?";
}

const char *pp_kind_name(pp_kind k)
{
    return k >= 0 && k < PP_NKINDS ? kind_names[k] : "?";
}

static uint32_t be32(const char *q)
{
    const unsigned char *u = (const unsigned char *)q;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Length of the typed message at the start of b (type byte included), 0
 * when incomplete. */
static size_t typed_len(const tp_buf *b)
{
    if (b->len < 5)
        return 0;
    size_t n = 1 + (size_t)be32(b->p + 1);
    return b->len >= n ? n : 0;
}

static pp_kind sql_kind(const char *sql, size_t n)
{
    if (tp_contains(sql, n, "pl_append("))
        return PP_WRITE;
    if (tp_contains(sql, n, "provenance_") || tp_contains(sql, n, "pl_read_asof"))
        return PP_READ;
    return PP_OTHER;
}

static void names_free(names *nm)
{
    for (int i = 0; i < nm->n; i++)
        free(nm->name[i]);
    nm->n = 0;
}

/* Parse: name\0 sql\0 ...; Bind: portal\0 name\0 ... */
static void note_parse(names *nm, const char *body, size_t n)
{
    size_t nl = strnlen(body, n);
    if (nl >= n)
        return;
    const char *sql = body + nl + 1;
    pp_kind k = sql_kind(sql, strnlen(sql, n - nl - 1));
    if (nl == 0) {
        nm->unnamed = k;
        return;
    }
    for (int i = 0; i < nm->n; i++)
        if (strcmp(nm->name[i], body) == 0) {
            nm->kind[i] = k;
            return;
        }
    if (nm->n < MAX_NAMES && (nm->name[nm->n] = strndup(body, nl)))
        nm->kind[nm->n++] = k;
}

static pp_kind bind_kind(const names *nm, const char *body, size_t n)
{
    size_t pl = strnlen(body, n);
    if (pl >= n)
        return PP_OTHER;
    const char *name = body + pl + 1;
    if (!*name)
        return nm->unnamed;
    for (int i = 0; i < nm->n; i++)
        if (strcmp(nm->name[i], name) == 0)
            return nm->kind[i];
    return PP_OTHER;
}

/* What a whole request (its messages back to back) is, and whether it
 * runs anything (Parse alone does not). */
static pp_kind request_kind(names *nm, const tp_buf *req, int *runs)
{
    pp_kind k = PP_OTHER;
    *runs = 0;
    for (size_t off = 0; off + 5 <= req->len;) {
        char t = req->p[off];
        size_t len = be32(req->p + off + 1);
        const char *body = req->p + off + 5;
        size_t bl = len - 4;
        if (t == 'P')
            note_parse(nm, body, bl);
        else if (t == 'B')
            k = bind_kind(nm, body, bl);
        else if (t == 'Q')
            k = sql_kind(body, bl);
        if (t == 'E' || t == 'Q')
            *runs = 1;
        off += 1 + len;
    }
    return k;
}

/* Silence until the client hangs up (its bytes are read and dropped). */
static void stall(tp_server *srv, int cfd)
{
    double end = tp_now_ms() + STALL_MAX_MS;
    tp_buf junk = {0};
    while (!tp_server_stopping(srv) && tp_now_ms() < end) {
        struct pollfd pfd = {cfd, POLLIN, 0};
        int n = poll(&pfd, 1, 50);
        if (n > 0) {
            if (tp_read_into(cfd, &junk) < 0)
                break;
            junk.len = 0;
        }
    }
    free(junk.p);
}

/* Reads from fd into b until it holds n bytes; -1 on close. */
static int read_n(tp_server *srv, int fd, tp_buf *b, size_t n)
{
    while (b->len < n) {
        if (tp_server_stopping(srv))
            return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, 100);
        if (r > 0 && tp_read_into(fd, b) < 0)
            return -1;
    }
    return 0;
}

/* Holds the server's answer up to its ReadyForQuery: the byte count of
 * that answer in *answer (ReadyForQuery included), -1 on close. */
static int read_answer(tp_server *srv, int ufd, tp_buf *b, size_t *answer)
{
    for (;;) {
        size_t off = 0;
        while (off + 5 <= b->len) {
            size_t n = 1 + (size_t)be32(b->p + off + 1);
            if (off + n > b->len)
                break;
            char t = b->p[off];
            off += n;
            if (t == 'Z') {
                *answer = off;
                return 0;
            }
        }
        if (read_n(srv, ufd, b, b->len + 1) < 0)
            return -1;
    }
}

typedef struct fault {
    int fire;
    pp_action action;
    pp_phase phase;
} fault;

static fault decide(pg_proxy *p, pp_kind k)
{
    fault f = {0, PP_CUT, PP_AT_REQUEST};
    pthread_mutex_lock(&p->mu);
    p->requests[k]++;
    if (p->armed && p->kind == k && p->phase != PP_AT_STARTUP) {
        f.fire = 1;
        f.action = p->action;
        f.phase = p->phase;
        p->armed--;
        p->fired[f.action][f.phase][k]++;
    }
    pthread_mutex_unlock(&p->mu);
    return f;
}

/* Whether a new connection is to be cut or stalled in its startup, and
 * after how many bytes of the server's answer. */
static fault decide_startup(pg_proxy *p, size_t *after)
{
    fault f = {0, PP_CUT, PP_AT_STARTUP};
    pthread_mutex_lock(&p->mu);
    if (p->armed && p->phase == PP_AT_STARTUP) {
        f.fire = 1;
        f.action = p->action;
        p->armed--;
        p->fired[f.action][PP_AT_STARTUP][PP_OTHER]++;
        *after = (size_t)(tp_rand(&p->rng) % 150); /* the answer is some 400 bytes */
    }
    pthread_mutex_unlock(&p->mu);
    return f;
}

static size_t pick(pg_proxy *p, size_t lo, size_t hi)
{
    pthread_mutex_lock(&p->mu);
    size_t v = hi > lo ? lo + (size_t)(tp_rand(&p->rng) % (hi - lo)) : lo;
    pthread_mutex_unlock(&p->mu);
    return v;
}

/* Passes the untyped startup packets (SSL/GSS requests are refused by the
 * server with one byte); returns 1 for a cancel request, which then just
 * passes through; 0 once the startup packet went; -1 on close. */
static int startup(tp_server *srv, int cfd, int ufd, tp_buf *in)
{
    for (;;) {
        if (read_n(srv, cfd, in, 8) < 0)
            return -1;
        size_t len = be32(in->p);
        uint32_t code = be32(in->p + 4);
        if (len < 8 || len > 100000 || read_n(srv, cfd, in, len) < 0)
            return -1;
        if (tp_send_all(ufd, in->p, len) < 0)
            return -1;
        tp_buf_drop(in, len);
        if (code == 80877102u)
            return 1;
        if (code != 80877103u && code != 80877104u)
            return 0;
        tp_buf one = {0};
        int r = read_n(srv, ufd, &one, 1);
        r = r < 0 ? -1 : tp_send_all(cfd, one.p, 1);
        free(one.p);
        if (r < 0)
            return -1;
    }
}

static void serve(tp_server *srv, int cfd, void *ctx)
{
    pg_proxy *p = ctx;
    int ufd = tp_connect_loopback(p->upstream_port);
    tp_buf in = {0}, up = {0}, req = {0};
    names nm = {.n = 0, .unnamed = PP_OTHER};
    int cancel = ufd < 0 ? -1 : startup(srv, cfd, ufd, &in);
    if (cancel < 0)
        goto done;
    size_t cut_after = 0, passed = 0;
    fault sf = cancel ? (fault){0, PP_CUT, PP_AT_STARTUP} : decide_startup(p, &cut_after);
    if (sf.fire && cut_after == 0)
        goto startup_fault;
    while (!tp_server_stopping(srv)) {
        struct pollfd pfd[2] = {{cfd, POLLIN, 0}, {ufd, POLLIN, 0}};
        if (poll(pfd, 2, 100) <= 0)
            continue;
        if (pfd[1].revents) {
            if (tp_read_into(ufd, &up) < 0)
                goto done;
            if (sf.fire && passed + up.len >= cut_after) {
                tp_send_all(cfd, up.p, cut_after - passed);
                goto startup_fault;
            }
            passed += up.len;
            if (tp_send_all(cfd, up.p, up.len) < 0)
                goto done;
            up.len = 0;
        }
        if (!pfd[0].revents)
            continue;
        if (tp_read_into(cfd, &in) < 0)
            goto done;
        if (cancel) {
            if (tp_send_all(ufd, in.p, in.len) < 0)
                goto done;
            in.len = 0;
            continue;
        }
        size_t n;
        while ((n = typed_len(&in)) > 0) {
            char t = in.p[0];
            tp_buf_put(&req, in.p, n);
            tp_buf_drop(&in, n);
            /* Extended-protocol parts wait for their Sync; the rest
             * (Query, password, Terminate, ...) is a request of its own. */
            if (t == 'P' || t == 'B' || t == 'D' || t == 'E' || t == 'C' || t == 'H')
                continue;
            int runs;
            pp_kind k = request_kind(&nm, &req, &runs);
            fault f = runs ? decide(p, k) : (fault){0, PP_CUT, PP_AT_REQUEST};
            if (!f.fire) {
                if (tp_send_all(ufd, req.p, req.len) < 0)
                    goto done;
                req.len = 0;
                continue;
            }
            if (f.phase == PP_AT_REQUEST) {
                size_t k2 = pick(p, 1, req.len);
                tp_send_all(ufd, req.p, k2);
            } else {
                if (tp_send_all(ufd, req.p, req.len) < 0)
                    goto done;
                if (f.phase == PP_AT_RESPONSE) {
                    size_t answer;
                    if (read_answer(srv, ufd, &up, &answer) < 0)
                        goto done;
                    tp_send_all(cfd, up.p, pick(p, 1, answer));
                }
            }
            if (f.action == PP_STALL)
                stall(srv, cfd);
            goto done;
        }
    }
    goto done;
startup_fault:
    if (sf.action == PP_STALL)
        stall(srv, cfd);
done:
    if (ufd >= 0)
        close(ufd);
    free(in.p);
    free(up.p);
    free(req.p);
    names_free(&nm);
}

pg_proxy *pp_start(int upstream_port, uint64_t seed)
{
    pg_proxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->upstream_port = upstream_port;
    p->rng = seed;
    pthread_mutex_init(&p->mu, NULL);
    p->srv = tp_server_start(serve, p, MAX_CONNS);
    if (!p->srv) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    return p;
}

int pp_port(const pg_proxy *p)
{
    return tp_server_port(p->srv);
}

void pp_arm(pg_proxy *p, pp_action action, pp_phase phase, pp_kind kind, int count)
{
    pthread_mutex_lock(&p->mu);
    p->armed = count;
    p->action = action;
    p->phase = phase;
    p->kind = kind;
    pthread_mutex_unlock(&p->mu);
}

void pp_disarm(pg_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->armed = 0;
    pthread_mutex_unlock(&p->mu);
}

int pp_armed(pg_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    int a = p->armed;
    pthread_mutex_unlock(&p->mu);
    return a;
}

unsigned long pp_fired(pg_proxy *p, pp_action action, pp_phase phase, pp_kind kind)
{
    pthread_mutex_lock(&p->mu);
    unsigned long n = p->fired[action][phase][kind];
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned long pp_requests(pg_proxy *p, pp_kind kind)
{
    pthread_mutex_lock(&p->mu);
    unsigned long n = p->requests[kind];
    pthread_mutex_unlock(&p->mu);
    return n;
}

int pp_live(pg_proxy *p)
{
    return tp_server_live(p->srv);
}

void pp_stop(pg_proxy *p)
{
    if (!p)
        return;
    tp_server_stop(p->srv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
