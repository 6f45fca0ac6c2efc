/* Redis connections, URL parsing, the circuit breaker, and running the
 * scripts its user gave (loading them on every new connection, reloading
 * them after NOSCRIPT). Knows no key and no script text (see redis.h). */
#include "redis.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/sds.h>

#include "clock.h"
#include "error.h"
#include "provledger.h"

struct pl_redis_conn {
    redisContext *ctx;
    char run_id[64];
    const char *const *scripts; /* the user's, see pl_redis_set_scripts */
    size_t nscripts;
    int reload; /* a pipelined reply said NOSCRIPT */
    unsigned timeout_ms; /* each command's whole reply within this */
    char sha[][48]; /* per script, as SCRIPT LOAD answered */
};

struct pl_redis {
    pl_redis_config cfg;
    char *host;   /* TCP host, or NULL for a unix socket */
    char *path;   /* unix socket path */
    int port;
    int db;
    char *password;
    const char *const *scripts; /* borrowed; set before the first acquire */
    size_t nscripts;

    pthread_mutex_t mu;
    pl_redis_conn **idle;
    size_t nidle;
    size_t open;
    int breaker_open;        /* failing: callers bypass until retry_at */
    int probing;             /* one caller is trying to reconnect */
    uint64_t retry_at_us;
    uint64_t backoff_ms;
    uint64_t degraded_since; /* mono us, 0 when healthy */
    uint64_t degraded_total;
    uint64_t errors;
};

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int parse_db(const char *s, int *db)
{
    /* Digits only: strtol alone would also take a sign or blanks. */
    char *end;
    long v = strtol(s, &end, 10);
    if (!(*s >= '0' && *s <= '9') || *end != '\0' || v < 0 || v > 1000000)
        return -1;
    *db = (int)v;
    return 0;
}

/* redis://[:password@]host:port[/db]  |  unix:///path/to/sock[?db=N] */
static int parse_url(pl_redis *r, const char *url)
{
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        const char *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);
        if (n == 0 || path[0] != '/')
            return pl_fail(PL_EINVAL, "cfg.redis_url: unix:// needs an absolute socket path");
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, &r->db) < 0)
                return pl_fail(PL_EINVAL, "cfg.redis_url: expected ?db=N after the socket path");
        }
        r->path = dup_range(path, n);
        return r->path ? PL_OK : pl_fail(PL_ENOMEM, "out of memory");
    }
    if (strncmp(url, "redis://", 8) != 0)
        return pl_fail(PL_EINVAL, "cfg.redis_url: must start with redis:// or unix://");
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        if (p[0] != ':')
            return pl_fail(PL_EINVAL, "cfg.redis_url: credentials must be ':password@'");
        r->password = dup_range(p + 1, (size_t)(at - p - 1));
        if (!r->password)
            return pl_fail(PL_ENOMEM, "out of memory");
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostport_end = slash ? slash : p + strlen(p);
    const char *colon = NULL;
    for (const char *c = p; c < hostport_end; c++)
        if (*c == ':')
            colon = c;
    if (!colon || colon == p)
        return pl_fail(PL_EINVAL, "cfg.redis_url: expected host:port");
    char *port = dup_range(colon + 1, (size_t)(hostport_end - colon - 1));
    if (!port)
        return pl_fail(PL_ENOMEM, "out of memory");
    char *end;
    long v = strtol(port, &end, 10);
    int bad = !(*port >= '0' && *port <= '9') || *end != '\0' || v < 1 || v > 65535;
    free(port);
    if (bad)
        return pl_fail(PL_EINVAL, "cfg.redis_url: port must be 1..65535");
    r->port = (int)v;
    r->host = dup_range(p, (size_t)(colon - p));
    if (!r->host)
        return pl_fail(PL_ENOMEM, "out of memory");
    if (slash && slash[1] && parse_db(slash + 1, &r->db) < 0)
        return pl_fail(PL_EINVAL, "cfg.redis_url: database must be a number after '/'");
    return PL_OK;
}

int pl_redis_check_url(const char *url)
{
    pl_redis r;
    memset(&r, 0, sizeof r);
    int rc = parse_url(&r, url);
    free(r.host);
    free(r.path);
    free(r.password);
    return rc;
}

int pl_redis_create(pl_redis **out, const pl_redis_config *cfg)
{
    *out = NULL;
    pl_redis *r = calloc(1, sizeof *r);
    if (!r)
        return pl_fail(PL_ENOMEM, "out of memory");
    r->cfg = *cfg;
    r->cfg.url = NULL;
    r->idle = calloc(cfg->pool_size, sizeof *r->idle); /* NOLINT(bugprone-sizeof-expression): pointers */
    pthread_mutex_init(&r->mu, NULL);
    int rc = r->idle ? parse_url(r, cfg->url) : pl_fail(PL_ENOMEM, "out of memory");
    if (rc) {
        pl_redis_destroy(r);
        return rc;
    }
    r->backoff_ms = cfg->retry_ms;
    *out = r;
    return PL_OK;
}

void pl_redis_set_scripts(pl_redis *r, const char *const *scripts, size_t n)
{
    r->scripts = scripts;
    r->nscripts = n;
}

static void conn_free(pl_redis_conn *c)
{
    if (!c)
        return;
    if (c->ctx)
        redisFree(c->ctx);
    free(c);
}

void pl_redis_destroy(pl_redis *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->idle && i < r->nidle; i++)
        conn_free(r->idle[i]);
    pthread_mutex_destroy(&r->mu);
    free(r->idle);
    free(r->host);
    free(r->path);
    free(r->password);
    free(r);
}

static struct timeval tv_ms(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Whether c's context may be used again. hiredis says a context with err
 * set must be discarded; and hiredis 0.14 (Debian 12) leaves obuf NULL,
 * err unset, when the sdsempty() after a complete write fails, so that
 * the next command dereferences it. Either way: not one more call. */
static int ctx_usable(const redisContext *ctx)
{
    return ctx && !ctx->err && ctx->obuf;
}

int pl_redis_usable(pl_redis_conn *c)
{
    return ctx_usable(c->ctx);
}

/* Waits until fd is ready for events or the deadline (mono us) passes:
 * 0 ready (or an error for the next call to report), -1 timed out. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = pl_mono_us();
        if (now >= deadline)
            return -1;
        struct pollfd pfd = {fd, events, 0};
        int n = poll(&pfd, 1, (int)((deadline - now + 999) / 1000));
        if (n > 0 || (n < 0 && errno != EINTR))
            return 0;
        if (n == 0)
            return -1;
    }
}

static redisReply *timed_out(redisContext *ctx, unsigned timeout_ms)
{
    ctx->err = REDIS_ERR_IO;
    snprintf(ctx->errstr, sizeof ctx->errstr, "no complete reply within %u ms", timeout_ms);
    return NULL;
}

/* Writes what is queued, then reads one reply, all within one command
 * timeout. hiredis's blocking read bounds each recv() alone (SO_RCVTIMEO),
 * so a server that sends a byte now and then, or an enormous bulk slowly,
 * held a call for as long as it liked (issue 12, hostile servers: a read
 * took 10 s with a 100 ms timeout). Here the socket is polled against one
 * deadline and hiredis only reads what is there and parses it.
 * hiredis 0.14 (Debian 12) also frees its output buffer after a complete
 * write and allocates an empty one with sdsempty(), unchecked: when that
 * allocation fails, redisBufferWrite dereferences NULL right away. So the
 * bytes are written here, and the buffer is emptied in place (sdsrange
 * allocates nothing). */
static redisReply *reply_of(redisContext *ctx, unsigned timeout_ms)
{
    uint64_t deadline = pl_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (sdslen(ctx->obuf) > 0) {
        if (wait_fd(ctx->fd, POLLOUT, deadline) < 0)
            return timed_out(ctx, timeout_ms);
        ssize_t n = send(ctx->fd, ctx->obuf, sdslen(ctx->obuf), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n <= 0) {
            ctx->err = REDIS_ERR_IO;
            snprintf(ctx->errstr, sizeof ctx->errstr, "%s", n < 0 ? strerror(errno) : "write returned 0");
            return NULL;
        }
        sdsrange(ctx->obuf, (int)n, -1);
    }
    for (;;) {
        void *rep = NULL;
        if (redisGetReplyFromReader(ctx, &rep) != REDIS_OK)
            return NULL;
        if (rep)
            return rep;
        if (wait_fd(ctx->fd, POLLIN, deadline) < 0)
            return timed_out(ctx, timeout_ms);
        if (redisBufferRead(ctx) != REDIS_OK)
            return NULL;
    }
}

redisReply *pl_redis_command(pl_redis_conn *c, int argc, const char **argv, const size_t *argvlen)
{
    if (!ctx_usable(c->ctx) || redisAppendCommandArgv(c->ctx, argc, argv, argvlen) != REDIS_OK)
        return NULL;
    return reply_of(c->ctx, c->timeout_ms);
}

/* Runs one command during connection set-up; 0 when the reply is sane. */
static redisReply *setup_cmd(pl_redis_conn *c, int argc, const char **argv)
{
    redisReply *rep = pl_redis_command(c, argc, argv, NULL);
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static int load_scripts(pl_redis_conn *c)
{
    for (size_t i = 0; i < c->nscripts; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", c->scripts[i]};
        redisReply *rep = setup_cmd(c, 3, argv);
        if (!rep || rep->type != REDIS_REPLY_STRING || rep->len >= sizeof c->sha[i]) {
            if (rep)
                freeReplyObject(rep);
            return -1;
        }
        memcpy(c->sha[i], rep->str, rep->len);
        c->sha[i][rep->len] = '\0';
        freeReplyObject(rep);
    }
    return 0;
}

/* A connected socket to r's server within timeout_ms, or -1. Connecting
 * is done here and the socket handed to redisConnectFd because hiredis
 * 0.14's own connect aborts the process when an allocation in its error
 * path fails (issue 12); redisConnectFd only allocates the context, and
 * reports that failure as NULL. */
static int dial(const pl_redis *r, unsigned timeout_ms)
{
    int fd = -1;
    struct addrinfo *ai = NULL, *a;
    if (r->path) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        if (strlen(r->path) >= sizeof sun.sun_path)
            return -1;
        memcpy(sun.sun_path, r->path, strlen(r->path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0 || errno == EINPROGRESS ||
            errno == EAGAIN)
            goto wait;
        close(fd);
        return -1;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", r->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(r->host, port, &hints, &ai) != 0)
        return -1;
    for (a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return -1;
wait:;
    struct pollfd pfd = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&pfd, 1, (int)timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
        err != 0) {
        close(fd);
        return -1;
    }
    /* hiredis's blocking calls expect a blocking socket (timeouts are
     * SO_RCVTIMEO/SO_SNDTIMEO, set by redisSetTimeout). */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        close(fd);
        return -1;
    }
    if (!r->path) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static pl_redis_conn *conn_new(pl_redis *r)
{
    pl_redis_conn *c = calloc(1, sizeof *c + r->nscripts * sizeof c->sha[0]);
    if (!c)
        return NULL;
    c->scripts = r->scripts;
    c->nscripts = r->nscripts;
    c->timeout_ms = r->cfg.command_timeout_ms;
    int fd = dial(r, r->cfg.connect_timeout_ms);
    if (fd < 0)
        goto fail;
    c->ctx = redisConnectFd(fd);
    if (!c->ctx) {
        close(fd);
        goto fail;
    }
    if (c->ctx->err || redisSetTimeout(c->ctx, tv_ms(r->cfg.command_timeout_ms)) != REDIS_OK)
        goto fail;
    if (!r->path)
        redisEnableKeepAlive(c->ctx);
    redisReply *rep;
    if (r->password) {
        const char *argv[2] = {"AUTH", r->password};
        if (!(rep = setup_cmd(c, 2, argv)))
            goto fail;
        freeReplyObject(rep);
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *argv[2] = {"SELECT", db};
        if (!(rep = setup_cmd(c, 2, argv)))
            goto fail;
        freeReplyObject(rep);
    }
    const char *info[2] = {"INFO", "server"};
    if (!(rep = setup_cmd(c, 2, info)) || rep->type != REDIS_REPLY_STRING) {
        if (rep)
            freeReplyObject(rep);
        goto fail;
    }
    const char *id = strstr(rep->str, "run_id:");
    if (id) {
        id += 7;
        size_t n = strcspn(id, "\r\n");
        if (n >= sizeof c->run_id)
            n = sizeof c->run_id - 1;
        memcpy(c->run_id, id, n);
    }
    freeReplyObject(rep);
    if (!c->run_id[0] || load_scripts(c) < 0)
        goto fail;
    return c;
fail:
    conn_free(c);
    return NULL;
}

static void breaker_trip(pl_redis *r, uint64_t now)
{
    if (!r->breaker_open) {
        r->breaker_open = 1;
        r->backoff_ms = r->cfg.retry_ms;
        if (!r->degraded_since)
            r->degraded_since = now;
    } else {
        /* Capped low: the recovery bound of the cache (README) includes it. */
        uint64_t cap = r->cfg.retry_ms > PL_REDIS_MAX_BACKOFF_MS ? r->cfg.retry_ms : PL_REDIS_MAX_BACKOFF_MS;
        r->backoff_ms = r->backoff_ms * 2 > cap ? cap : r->backoff_ms * 2;
    }
    r->retry_at_us = now + r->backoff_ms * 1000u;
}

pl_redis_conn *pl_redis_acquire(pl_redis *r)
{
    uint64_t now = pl_mono_us();
    pthread_mutex_lock(&r->mu);
    if (r->breaker_open && (now < r->retry_at_us || r->probing)) {
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    if (!r->breaker_open && r->nidle > 0) {
        pl_redis_conn *c = r->idle[--r->nidle];
        pthread_mutex_unlock(&r->mu);
        return c;
    }
    int probe = r->breaker_open;
    if (probe)
        r->probing = 1;
    pthread_mutex_unlock(&r->mu);

    pl_redis_conn *c = conn_new(r);

    pthread_mutex_lock(&r->mu);
    if (probe)
        r->probing = 0;
    if (!c) {
        r->errors++;
        breaker_trip(r, pl_mono_us());
    } else {
        r->open++;
        if (r->breaker_open) {
            r->breaker_open = 0;
            r->degraded_total += pl_mono_us() - r->degraded_since;
            r->degraded_since = 0;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return c;
}

void pl_redis_release(pl_redis *r, pl_redis_conn *c, int failed)
{
    if (!c)
        return;
    pthread_mutex_lock(&r->mu);
    /* hiredis: a context with err set (out of memory, or a broken
     * connection the caller did not notice) is unusable: never pooled.
     * Alone, it says nothing about the other connections. */
    if (!failed && !ctx_usable(c->ctx)) {
        r->errors++;
        r->open--;
        pthread_mutex_unlock(&r->mu);
        conn_free(c);
        return;
    }
    if (failed) {
        r->errors++;
        breaker_trip(r, pl_mono_us());
        /* Every idle connection shares the fate of the one that failed. */
        for (size_t i = 0; i < r->nidle; i++)
            conn_free(r->idle[i]);
        r->open -= r->nidle + 1;
        r->nidle = 0;
        pthread_mutex_unlock(&r->mu);
        conn_free(c);
        return;
    }
    if (r->nidle < r->cfg.pool_size) {
        r->idle[r->nidle++] = c;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    r->open--;
    pthread_mutex_unlock(&r->mu);
    conn_free(c);
}

int pl_redis_db(const pl_redis *r)
{
    return r->db;
}

void pl_redis_endpoint(const pl_redis *r, const char **host, int *port, const char **path,
                       const char **password)
{
    if (host)
        *host = r->host;
    if (port)
        *port = r->port;
    if (path)
        *path = r->path;
    if (password)
        *password = r->password;
}

const char *pl_redis_run_id(const pl_redis_conn *c)
{
    return c->run_id;
}

redisContext *pl_redis_ctx(pl_redis_conn *c)
{
    return c->ctx;
}

enum { MAX_SCRIPT_ARGS = 12 };

/* EVALSHA's arguments for one script call; -1 when there are too many. */
static int script_args(pl_redis_conn *c, int script, int nkeys, int argc, const char **argv,
                       const size_t *argvlen, const char **av, size_t *al, char nk[8])
{
    if (argc + 3 > MAX_SCRIPT_ARGS || script < 0 || (size_t)script >= c->nscripts)
        return -1;
    snprintf(nk, 8, "%d", nkeys);
    av[0] = "EVALSHA", al[0] = 7;
    av[1] = c->sha[script], al[1] = strlen(c->sha[script]);
    av[2] = nk, al[2] = strlen(nk);
    for (int i = 0; i < argc; i++)
        av[i + 3] = argv[i], al[i + 3] = argvlen[i];
    return argc + 3;
}

static int is_noscript(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

redisReply *pl_redis_script(pl_redis_conn *c, int script, int nkeys, int argc, const char **argv,
                            const size_t *argvlen)
{
    const char *av[MAX_SCRIPT_ARGS];
    size_t al[MAX_SCRIPT_ARGS];
    char nk[8];
    int n = script_args(c, script, nkeys, argc, argv, argvlen, av, al, nk);
    if (n < 0)
        return NULL;
    redisReply *rep = pl_redis_command(c, n, av, al);
    if (is_noscript(rep)) {
        freeReplyObject(rep);
        if (load_scripts(c) < 0)
            return NULL;
        av[1] = c->sha[script], al[1] = strlen(c->sha[script]);
        rep = pl_redis_command(c, n, av, al);
    }
    return rep;
}

int pl_redis_script_append(pl_redis_conn *c, int script, int nkeys, int argc, const char **argv,
                           const size_t *argvlen)
{
    const char *av[MAX_SCRIPT_ARGS];
    size_t al[MAX_SCRIPT_ARGS];
    char nk[8];
    int n = script_args(c, script, nkeys, argc, argv, argvlen, av, al, nk);
    if (n < 0 || !ctx_usable(c->ctx) || redisAppendCommandArgv(c->ctx, n, av, al) != REDIS_OK)
        return -1;
    return 0;
}

redisReply *pl_redis_script_reply(pl_redis_conn *c)
{
    redisReply *rep = ctx_usable(c->ctx) ? reply_of(c->ctx, c->timeout_ms) : NULL;
    if (!rep)
        return NULL;
    if (is_noscript(rep))
        c->reload = 1;
    return rep;
}

int pl_redis_reload_if_needed(pl_redis_conn *c)
{
    if (!c->reload)
        return 0;
    c->reload = 0;
    return load_scripts(c);
}

void pl_redis_counters_get(pl_redis *r, pl_redis_counters *out)
{
    pthread_mutex_lock(&r->mu);
    out->errors = r->errors;
    out->degraded = r->breaker_open;
    out->degraded_us = r->degraded_total + (r->degraded_since ? pl_mono_us() - r->degraded_since : 0);
    pthread_mutex_unlock(&r->mu);
}

void pl_redis_count_error(pl_redis *r)
{
    pthread_mutex_lock(&r->mu);
    r->errors++;
    pthread_mutex_unlock(&r->mu);
}
