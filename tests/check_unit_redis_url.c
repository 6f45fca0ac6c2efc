/* Unit tests of the Redis URL parser (lib/redis/redis.c): what pl_open accepts
 * as cfg.redis_url, and where it then connects. Needs no server:
 * pl_redis_create only parses, it connects lazily.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "redis.h"

/* Parses url with pl_redis_create (which must succeed) and checks every
 * part of the endpoint it found. */
static void endpoint_is(const char *url, const char *host, int port, const char *path, int db,
                        const char *password)
{
    ck_assert_msg(pl_redis_check_url(url) == PL_OK, "%s: %s", url, pl_errmsg());
    pl_redis_config cfg = {url, 100, 100, 1, 1000};
    pl_redis *r = NULL;
    int rc = pl_redis_create(&r, &cfg);
    ck_assert_msg(rc == PL_OK, "%s -> %d: %s", url, rc, pl_errmsg());
    const char *h = "unset", *p = "unset", *pw = "unset";
    int pt = -1;
    pl_redis_endpoint(r, &h, &pt, &p, &pw);
    if (host)
        ck_assert_msg(h && strcmp(h, host) == 0, "%s: host \"%s\", want \"%s\"", url, h ? h : "(null)", host);
    else
        ck_assert_msg(h == NULL, "%s: host \"%s\", want none", url, h);
    ck_assert_msg(pt == port, "%s: port %d, want %d", url, pt, port);
    if (path)
        ck_assert_msg(p && strcmp(p, path) == 0, "%s: path \"%s\", want \"%s\"", url, p ? p : "(null)", path);
    else
        ck_assert_msg(p == NULL, "%s: path \"%s\", want none", url, p);
    if (password)
        ck_assert_msg(pw && strcmp(pw, password) == 0, "%s: password \"%s\", want \"%s\"", url,
                      pw ? pw : "(null)", password);
    else
        ck_assert_msg(pw == NULL, "%s: password \"%s\", want none", url, pw);
    ck_assert_msg(pl_redis_db(r) == db, "%s: db %d, want %d", url, pl_redis_db(r), db);
    pl_redis_destroy(r);
}

/* Both entry points refuse url with PL_EINVAL and exactly this message
 * (which names the configuration field, as pl_open's callers see it). */
static void refused(const char *url, const char *message)
{
    pl_fail(PL_OK, "%s", "");
    int rc = pl_redis_check_url(url);
    ck_assert_msg(rc == PL_EINVAL, "check_url(%s) -> %d, want PL_EINVAL", url, rc);
    ck_assert_msg(strcmp(pl_errmsg(), message) == 0, "check_url(%s): \"%s\", want \"%s\"", url,
                  pl_errmsg(), message);
    pl_redis_config cfg = {url, 100, 100, 1, 1000};
    pl_redis *r = (pl_redis *)&cfg; /* must be reset to NULL */
    pl_fail(PL_OK, "%s", "");
    rc = pl_redis_create(&r, &cfg);
    ck_assert_msg(rc == PL_EINVAL, "create(%s) -> %d, want PL_EINVAL", url, rc);
    ck_assert_ptr_null(r);
    ck_assert_msg(strcmp(pl_errmsg(), message) == 0, "create(%s): \"%s\", want \"%s\"", url,
                  pl_errmsg(), message);
}

#define E_SCHEME "cfg.redis_url: must start with redis:// or unix://"
#define E_HOSTPORT "cfg.redis_url: expected host:port"
#define E_PORT "cfg.redis_url: port must be 1..65535"
#define E_DB "cfg.redis_url: database must be a number after '/'"
#define E_CRED "cfg.redis_url: credentials must be ':password@'"
#define E_UNIX_PATH "cfg.redis_url: unix:// needs an absolute socket path"
#define E_UNIX_DB "cfg.redis_url: expected ?db=N after the socket path"

START_TEST(tcp_forms)
{
    endpoint_is("redis://localhost:6379", "localhost", 6379, NULL, 0, NULL);
    endpoint_is("redis://127.0.0.1:1", "127.0.0.1", 1, NULL, 0, NULL);
    endpoint_is("redis://h:65535", "h", 65535, NULL, 0, NULL);
    endpoint_is("redis://h:6379/0", "h", 6379, NULL, 0, NULL);
    endpoint_is("redis://h:6379/15", "h", 6379, NULL, 15, NULL);
    endpoint_is("redis://h:6379/1000000", "h", 6379, NULL, 1000000, NULL);
    /* A trailing slash selects nothing: database 0. */
    endpoint_is("redis://h:6379/", "h", 6379, NULL, 0, NULL);
}
END_TEST

START_TEST(tcp_password)
{
    endpoint_is("redis://:secret@h:6379", "h", 6379, NULL, 0, "secret");
    endpoint_is("redis://:secret@h:6379/3", "h", 6379, NULL, 3, "secret");
    /* The last '@' ends the password: it may hold '@', ':' and '/'. */
    endpoint_is("redis://:p@ss:w/rd@h:7000/2", "h", 7000, NULL, 2, "p@ss:w/rd");
}
END_TEST

START_TEST(unix_forms)
{
    endpoint_is("unix:///tmp/redis.sock", NULL, 0, "/tmp/redis.sock", 0, NULL);
    endpoint_is("unix:///r.sock?db=0", NULL, 0, "/r.sock", 0, NULL);
    endpoint_is("unix:///var/run/redis/redis.sock?db=7", NULL, 0, "/var/run/redis/redis.sock", 7,
                NULL);
}
END_TEST

START_TEST(bad_scheme)
{
    refused("", E_SCHEME);
    refused("localhost:6379", E_SCHEME);
    refused("http://h:6379", E_SCHEME);
    refused("rediss://h:6379", E_SCHEME);
    refused("REDIS://h:6379", E_SCHEME);
    refused("redis:/h:6379", E_SCHEME);
    refused("unix:/tmp/s", E_SCHEME);
}
END_TEST

START_TEST(bad_host_port)
{
    refused("redis://", E_HOSTPORT);
    refused("redis://h", E_HOSTPORT);
    refused("redis://h/0", E_HOSTPORT);
    refused("redis://:6379", E_HOSTPORT);
    refused("redis://:pw@:6379", E_HOSTPORT);
    refused("redis://h:", E_PORT);
    refused("redis://h:/1", E_PORT);
    refused("redis://h:0", E_PORT);
    refused("redis://h:65536", E_PORT);
    refused("redis://h:-1", E_PORT);
    /* Digits only (strtol would take a sign or leading blanks). */
    refused("redis://h:+1", E_PORT);
    refused("redis://h: 1", E_PORT);
    refused("redis://h:63 79", E_PORT);
    refused("redis://h:6379x", E_PORT);
    refused("redis://h:99999999999999999999", E_PORT);
}
END_TEST

START_TEST(bad_database)
{
    refused("redis://h:6379/x", E_DB);
    refused("redis://h:6379/-1", E_DB);
    refused("redis://h:6379/1000001", E_DB);
    refused("redis://h:6379/1/", E_DB);
    refused("redis://h:6379/1 ", E_DB);
    refused("redis://h:6379/0x1", E_DB);
    refused("redis://h:6379/+1", E_DB);
    refused("redis://h:6379/ 1", E_DB);
}
END_TEST

START_TEST(bad_credentials)
{
    refused("redis://user:pw@h:6379", E_CRED);
    refused("redis://pw@h:6379", E_CRED);
    refused("redis://@h:6379", E_CRED);
}
END_TEST

START_TEST(bad_unix)
{
    refused("unix://", E_UNIX_PATH);
    refused("unix://tmp/redis.sock", E_UNIX_PATH);
    refused("unix://?db=1", E_UNIX_PATH);
    refused("unix:///s?db=", E_UNIX_DB);
    refused("unix:///s?db=x", E_UNIX_DB);
    refused("unix:///s?db=-1", E_UNIX_DB);
    refused("unix:///s?db=+1", E_UNIX_DB);
    refused("unix:///s?db=1&x=2", E_UNIX_DB);
    refused("unix:///s?x=1", E_UNIX_DB);
    refused("unix:///s?", E_UNIX_DB);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_redis_url");
    TCase *tc = tcase_create("url");
    tcase_add_test(tc, tcp_forms);
    tcase_add_test(tc, tcp_password);
    tcase_add_test(tc, unix_forms);
    tcase_add_test(tc, bad_scheme);
    tcase_add_test(tc, bad_host_port);
    tcase_add_test(tc, bad_database);
    tcase_add_test(tc, bad_credentials);
    tcase_add_test(tc, bad_unix);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
