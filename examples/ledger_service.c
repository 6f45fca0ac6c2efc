/*
 * ledger_service: a small JSON-over-HTTP service on libmicrohttpd, with
 * ONE pl_ledger shared by all of its threads.
 *
 * Why one handle: a pl_ledger owns a pool of PostgreSQL connections (and of
 * Redis connections when a cache is configured), and every call on it is
 * thread-safe (the header's "Threads"). Opening a handle per thread or per
 * request would pay a connection each time and lose the shared cache
 * state. pl_errmsg() is per thread, so each request reads its own error.
 *
 * Endpoints:
 *   GET  /entities/{id}/fields/{field}[?as_of=T&valid_at=V]
 *        The current value (pl_current), or with as_of and/or valid_at
 *        the answer at (T, V) (pl_as_of): T, V are RFC 3339 instants,
 *        "now" (the default) or "any". as_of alone: what we believed at T
 *        about now; valid_at alone: what is true at V as we know it now.
 *   GET  /entities/{id}/history[?limit=N&cursor=C]
 *        One page of the entity's history, oldest first (pl_history_page),
 *        {"records": [...], "next_cursor": C or null}; pass C back as
 *        ?cursor=C for the next page. N: 1..10000 (default 100).
 *   POST /changes   with header Idempotency-Key: K
 *        Body: JSON lines, one change per line, with the members of
 *        examples/bulk_import.c's JSON lines. All lines are appended in one
 *        transaction (pl_insert_batch: all or nothing). Line L gets the
 *        idempotency key "K:L", so a client that retries the same request
 *        with the same key (after a timeout, a 503) lands every change
 *        once and gets the original receipts back.
 *        {"receipts": [{"line": L, "id": N, "transaction_time": T}, ...]}
 *
 * Errors are JSON, {"error": pl_strerror(code), "code": code, "message":
 * pl_errmsg()}, with the library's codes mapped to HTTP statuses:
 *   PL_EINVAL 400, PL_NOT_FOUND 404, PL_ECONFLICT 409 (an idempotency key
 *   reused for a different change), PL_ECONNECT, PL_ETIMEOUT and
 *   PL_EUNKNOWN 503 (retry: with the same Idempotency-Key a retry of a
 *   write is safe), anything else 500.
 *
 * Usage: ledger_service PORT [PG_CONNINFO [REDIS_URL]]
 *   PORT 0 picks a free port. The service listens on 127.0.0.1 only: put a
 *   TLS-terminating proxy with authentication in front before exposing it.
 *   PG_CONNINFO, REDIS_URL: as merchant_story ($PROVLEDGER_PG,
 *   $PROVLEDGER_REDIS; the cache is optional); $PROVLEDGER_SCHEMA picks the
 *   schema; $THREADS the number of HTTP threads (default 4).
 * Prints "listening on http://127.0.0.1:PORT" once ready; SIGINT or
 * SIGTERM stops it cleanly (exit status 0).
 *
 * SPDX-License-Identifier: MIT
 */
#define _POSIX_C_SOURCE 200809L /* sigwait, struct sockaddr_in */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>
#include <provledger.h>

#define MAX_BODY (16u * 1024 * 1024) /* a POST larger than this is 413 */

static pl_ledger *ledger; /* the one handle, shared by every MHD thread */

/* ---- a growable string for response bodies ---------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} str;

static void put(str *s, const char *p, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *d = realloc(s->data, cap);
        if (!d) {
            s->oom = 1;
            return;
        }
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
    s->data[s->len] = '\0';
}

static void puts_(str *s, const char *p) { put(s, p, strlen(p)); }

/* A JSON string. The library hands out valid UTF-8, so only quotes,
 * backslashes and control characters need escaping. */
static void put_jstr(str *s, const char *p)
{
    if (!p) {
        puts_(s, "null");
        return;
    }
    puts_(s, "\"");
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(s, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(s, esc, 6);
        } else {
            put(s, (const char *)p, 1);
        }
    }
    puts_(s, "\"");
}

static void put_time(str *s, pl_time t)
{
    char b[PL_TIME_BUFSIZE];
    pl_time_format(b, sizeof b, t);
    put_jstr(s, b);
}

static void put_int(str *s, int64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, v);
    puts_(s, b);
}

/* A record: values are JSON texts already (jsonb normal form), so they go
 * in as they are, not as strings; that also keeps numbers such as 1e400
 * that no double holds. */
static void put_record(str *s, const pl_record *r)
{
    puts_(s, "{\"id\":");
    put_int(s, r->id);
    puts_(s, ",\"entity_id\":");
    put_jstr(s, r->entity_id);
    puts_(s, ",\"field_name\":");
    put_jstr(s, r->field_name);
    puts_(s, ",\"new_value\":");
    puts_(s, r->new_value);
    puts_(s, ",\"old_value\":");
    puts_(s, r->old_value ? r->old_value : "null");
    puts_(s, ",\"transaction_time\":");
    put_time(s, r->transaction_time);
    puts_(s, ",\"valid_from\":");
    put_time(s, r->valid_from);
    puts_(s, ",\"valid_to\":");
    put_time(s, r->valid_to);
    puts_(s, ",\"source_type\":");
    put_jstr(s, r->source_type);
    puts_(s, ",\"change_reason\":");
    put_jstr(s, r->change_reason);
    puts_(s, ",\"metadata\":");
    puts_(s, r->metadata);
    puts_(s, "}");
}

/* ---- responses ---------------------------------------------------------- */

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, str *body)
{
    if (body->oom) {
        free(body->data);
        return MHD_NO; /* MHD closes the connection */
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body->data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The library's status codes as HTTP statuses: the client can act on the
 * class (fix the request, retry later) without parsing the message. */
static unsigned http_status(int rc)
{
    switch (rc) {
    case PL_EINVAL:
        return MHD_HTTP_BAD_REQUEST;
    case PL_NOT_FOUND:
        return MHD_HTTP_NOT_FOUND;
    case PL_ECONFLICT:
        return MHD_HTTP_CONFLICT;
    case PL_ECONNECT:
    case PL_ETIMEOUT:
    case PL_EUNKNOWN: /* a write may or may not have landed: retry it */
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* An error body. `message` defaults to pl_errmsg(), this thread's detail. */
static enum MHD_Result send_error(struct MHD_Connection *c, int rc, const char *message)
{
    str s = {0};
    puts_(&s, "{\"error\":");
    put_jstr(&s, pl_strerror(rc));
    puts_(&s, ",\"code\":");
    put_int(&s, rc);
    puts_(&s, ",\"message\":");
    put_jstr(&s, message ? message : pl_errmsg());
    puts_(&s, "}\n");
    return send_json(c, http_status(rc), &s);
}

/* ---- GET ----------------------------------------------------------------- */

static int parse_time_arg(pl_time *t, const char *s)
{
    if (!s || strcmp(s, "now") == 0)
        *t = PL_TIME_NOW;
    else if (strcmp(s, "any") == 0)
        *t = PL_TIME_ANY;
    else
        return pl_time_parse(t, s);
    return PL_OK;
}

static enum MHD_Result get_field(struct MHD_Connection *c, const char *entity, const char *field)
{
    const char *as_of = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "as_of");
    const char *valid_at = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "valid_at");
    pl_result *r = NULL;
    int rc;
    if (!as_of && !valid_at) {
        rc = pl_current(&r, ledger, entity, field, 0);
    } else {
        pl_time t, v;
        if (parse_time_arg(&t, as_of) || parse_time_arg(&v, valid_at))
            return send_error(c, PL_EINVAL, "as_of, valid_at: RFC 3339 with an offset, now or any");
        rc = pl_as_of(&r, ledger, entity, field, t, v, 0);
    }
    if (rc == PL_NOT_FOUND)
        return send_error(c, rc, "no record answers for this entity and field");
    if (rc)
        return send_error(c, rc, NULL);
    str s = {0};
    put_record(&s, pl_result_get(r, 0));
    puts_(&s, "\n");
    pl_result_free(r);
    return send_json(c, MHD_HTTP_OK, &s);
}

static enum MHD_Result get_history(struct MHD_Connection *c, const char *entity)
{
    const char *limit_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    const char *cursor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
    size_t limit = 100;
    if (limit_s) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(limit_s, &end, 10);
        if (errno || *end || !*limit_s || v < 1 || v > PL_MAX_PAGE)
            return send_error(c, PL_EINVAL, "limit: 1..10000");
        limit = v;
    }
    pl_result *r = NULL;
    char *next = NULL;
    /* A cursor is opaque and carries a MAC: a forged or foreign one is
     * PL_EINVAL (400), so it is safe to take it from the client. */
    int rc = pl_history_page(&r, &next, ledger, entity, NULL, cursor, limit, 0);
    if (rc)
        return send_error(c, rc, NULL);
    if (!cursor && pl_result_count(r) == 0) {
        pl_result_free(r);
        return send_error(c, PL_NOT_FOUND, "the entity has no records");
    }
    str s = {0};
    puts_(&s, "{\"records\":[");
    for (size_t i = 0; i < pl_result_count(r); i++) {
        if (i)
            puts_(&s, ",");
        put_record(&s, pl_result_get(r, i));
    }
    puts_(&s, "],\"next_cursor\":");
    put_jstr(&s, next);
    puts_(&s, "}\n");
    pl_free(next);
    pl_result_free(r);
    return send_json(c, MHD_HTTP_OK, &s);
}

/* ---- POST /changes ------------------------------------------------------ */

/* What the request owns while its changes are built: the parsed lines
 * (their strings are borrowed by the pl_change array) and the values
 * re-serialised as JSON text. */
typedef struct {
    size_t n;
    json_t **obj;
    char **texts; /* 3 per line: new_value, old_value, metadata */
    char **keys;
    long *lines;
    pl_change *ch;
} batch;

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        json_decref(b->obj[i]);
        free(b->texts[3 * i]);
        free(b->texts[3 * i + 1]);
        free(b->texts[3 * i + 2]);
        free(b->keys[i]);
    }
    free(b->obj);
    free(b->texts);
    free(b->keys);
    free(b->lines);
    free(b->ch);
}

static const char *jstr(json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name)); /* NULL unless a string */
}

static char *jtext(json_t *o, const char *name, int null_is_value)
{
    json_t *v = json_object_get(o, name);
    if (!v || (json_is_null(v) && !null_is_value))
        return NULL;
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* Parses the body into b; on a bad line writes why into err. */
static int parse_changes(batch *b, char *body, const char *idem, char *err, size_t errlen)
{
    size_t cap = 1;
    for (const char *p = body; *p; p++)
        cap += *p == '\n';
    if (cap > PL_MAX_BATCH)
        cap = PL_MAX_BATCH + 1;
    b->obj = calloc(cap, sizeof *b->obj);
    b->texts = calloc(3 * cap, sizeof *b->texts);
    b->keys = calloc(cap, sizeof *b->keys);
    b->lines = calloc(cap, sizeof *b->lines);
    b->ch = calloc(cap, sizeof *b->ch);
    if (!b->obj || !b->texts || !b->keys || !b->lines || !b->ch)
        return PL_ENOMEM;
    long line = 0;
    for (char *p = body, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        line++;
        if (strspn(p, " \t\r") == strlen(p))
            continue; /* blank lines are skipped, but counted */
        if (b->n == PL_MAX_BATCH) {
            snprintf(err, errlen, "more than %d changes in one request", PL_MAX_BATCH);
            return PL_EINVAL;
        }
        json_error_t je;
        json_t *o = json_loads(p, 0, &je);
        if (!json_is_object(o)) {
            snprintf(err, errlen, "line %ld: %s", line, o ? "not a JSON object" : je.text);
            json_decref(o);
            return PL_EINVAL;
        }
        size_t i = b->n++;
        b->obj[i] = o;
        b->lines[i] = line;
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = jstr(o, "entity_id");
        c.field_name = jstr(o, "field_name");
        c.source_type = jstr(o, "source_type");
        c.change_reason = jstr(o, "change_reason");
        c.new_value = b->texts[3 * i] = jtext(o, "new_value", 1);
        c.old_value = b->texts[3 * i + 1] = jtext(o, "old_value", 0);
        c.metadata = b->texts[3 * i + 2] = jtext(o, "metadata", 0);
        const char *vf = jstr(o, "valid_from"), *vt = jstr(o, "valid_to");
        if ((vf && pl_time_parse(&c.valid_from, vf)) || (vt && pl_time_parse(&c.valid_to, vt))) {
            snprintf(err, errlen, "line %ld: valid_from/valid_to: %s", line, pl_errmsg());
            return PL_EINVAL;
        }
        /* The request's key and the line number: a retry of the same body
         * derives the same keys, so each line lands once. */
        size_t klen = strlen(idem) + 24;
        if (!(b->keys[i] = malloc(klen)))
            return PL_ENOMEM;
        snprintf(b->keys[i], klen, "%s:%ld", idem, line);
        c.idempotency_key = b->keys[i];
        b->ch[i] = c;
    }
    if (b->n == 0) {
        snprintf(err, errlen, "the body holds no changes");
        return PL_EINVAL;
    }
    return PL_OK;
}

static enum MHD_Result post_changes(struct MHD_Connection *c, str *body)
{
    const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (!idem || !*idem)
        return send_error(c, PL_EINVAL, "the Idempotency-Key header is required");
    if (strlen(idem) > PL_MAX_KEY_BYTES - 24)
        return send_error(c, PL_EINVAL, "Idempotency-Key: too long");
    if (!body->data || strlen(body->data) != body->len)
        return send_error(c, PL_EINVAL, "the body is empty or holds a NUL byte");
    batch b = {0};
    char err[256] = "";
    int rc = parse_changes(&b, body->data, idem, err, sizeof err);
    pl_receipt *rcpt = NULL;
    if (rc == PL_OK && !(rcpt = malloc(b.n * sizeof *rcpt)))
        rc = PL_ENOMEM;
    if (rc == PL_OK)
        rc = pl_insert_batch(rcpt, ledger, b.ch, b.n);
    enum MHD_Result ret;
    long index;
    if (rc == PL_EINVAL && !err[0] && sscanf(pl_errmsg(), "changes[%ld]", &index) == 1 &&
        index >= 0 && (size_t)index < b.n) {
        /* The library names a bad change by its index in the batch; the
         * client wrote lines (blank ones counted), so say which line. */
        snprintf(err, sizeof err, "line %ld: %s", b.lines[index], pl_errmsg());
    }
    if (rc) {
        ret = send_error(c, rc, err[0] ? err : NULL);
    } else {
        str s = {0};
        puts_(&s, "{\"receipts\":[");
        for (size_t i = 0; i < b.n; i++) {
            puts_(&s, i ? ",{\"line\":" : "{\"line\":");
            put_int(&s, b.lines[i]);
            puts_(&s, ",\"id\":");
            put_int(&s, rcpt[i].id);
            puts_(&s, ",\"transaction_time\":");
            put_time(&s, rcpt[i].transaction_time);
            puts_(&s, "}");
        }
        puts_(&s, "]}\n");
        ret = send_json(c, MHD_HTTP_OK, &s);
    }
    free(rcpt);
    batch_free(&b);
    return ret;
}

/* ---- routing -------------------------------------------------------------- */

/* MHD calls this several times per request: once with the headers, then
 * with each piece of the body, then with *upload_size == 0 to answer. The
 * body collects in *req (freed by request_done). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    (void)cls;
    (void)version;
    str *body = *req;
    if (!body) {
        if (!(body = calloc(1, sizeof *body)))
            return MHD_NO;
        *req = body;
        return MHD_YES;
    }
    if (*upload_size) {
        if (body->len + *upload_size > MAX_BODY)
            body->oom = 2; /* remember "too large"; keep draining */
        else
            put(body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (body->oom == 2) {
        str s = {0};
        puts_(&s, "{\"error\":\"request body too large\"}\n");
        return send_json(c, MHD_HTTP_CONTENT_TOO_LARGE, &s);
    }

    /* /entities/{id}/fields/{field}, /entities/{id}/history, /changes.
     * MHD has already percent-decoded the path. */
    char path[2 * PL_MAX_KEY_BYTES + 64];
    if (strlen(url) >= sizeof path)
        return send_error(c, PL_EINVAL, "path too long");
    strcpy(path, url);
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(path, "/changes") == 0) {
        if (!post)
            return send_error(c, PL_EINVAL, "use POST /changes");
        return post_changes(c, body);
    }
    if (strncmp(path, "/entities/", 10) == 0 && get) {
        char *entity = path + 10, *rest = strchr(entity, '/');
        if (rest && rest != entity) {
            *rest++ = '\0';
            if (strcmp(rest, "history") == 0)
                return get_history(c, entity);
            if (strncmp(rest, "fields/", 7) == 0 && rest[7] && !strchr(rest + 7, '/'))
                return get_field(c, entity, rest + 7);
        }
    }
    str s = {0};
    puts_(&s, "{\"error\":\"no such endpoint\"}\n");
    return send_json(c, MHD_HTTP_NOT_FOUND, &s);
}

static void request_done(void *cls, struct MHD_Connection *c, void **req,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    str *body = *req;
    if (body)
        free(body->data);
    free(body);
    *req = NULL;
}

int main(int argc, char **argv)
{
    const char *pg = argc > 2 ? argv[2] : getenv("PROVLEDGER_PG");
    const char *redis = argc > 3 ? argv[3] : getenv("PROVLEDGER_REDIS");
    const char *schema = getenv("PROVLEDGER_SCHEMA");
    const char *threads_s = getenv("THREADS");
    char *end = NULL;
    long port = argc > 1 ? strtol(argv[1], &end, 10) : -1;
    unsigned threads = threads_s ? (unsigned)atoi(threads_s) : 4;
    if (argc < 2 || argc > 4 || *end || port < 0 || port > 65535 || !pg || !*pg || threads < 1 ||
        threads > 64) {
        fprintf(stderr, "usage: ledger_service PORT [PG_CONNINFO [REDIS_URL]]\n");
        return 2;
    }

    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = pg;
    cfg.redis_url = (redis && *redis) ? redis : NULL;
    if (schema && *schema)
        cfg.schema = schema;
    /* A request makes one library call at a time, and a call holds one
     * pooled connection: as many connections as HTTP threads means no
     * request waits for the pool. More would sit idle. */
    cfg.pool_size = threads;
    int rc = pl_open(&ledger, &cfg);
    if (rc == PL_OK)
        rc = pl_migrate(ledger);
    if (rc) {
        fprintf(stderr, "ledger_service: %s: %s\n", pl_strerror(rc), pl_errmsg());
        pl_close(ledger);
        return 1;
    }

    /* Block SIGINT and SIGTERM before MHD starts its threads (they inherit
     * the mask), so that only sigwait() below receives them: no handler
     * runs inside a request, and shutdown happens on this thread. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, handle,
        NULL, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_SOCK_ADDR, &addr,
        MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "ledger_service: cannot listen on 127.0.0.1:%ld\n", port);
        pl_close(ledger);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("listening on http://127.0.0.1:%u (%u threads, cache %s)\n",
           info ? info->port : (unsigned)port, threads, cfg.redis_url ? "on" : "off");
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "ledger_service: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* MHD_stop_daemon() returns once every request has finished, so no
     * thread is inside a pl_* call when pl_close() runs, as it requires. */
    MHD_stop_daemon(d);
    pl_close(ledger);
    return 0;
}
