/* What the header promises about a handle's life and its configuration:
 * pl_config read and written only as far as the caller's version, iterators
 * that outlive pl_close(), pl_close() racing with running calls, a pool of
 * one that still serves point calls beside a long one, reads that accept
 * staleness answered by the primary when the replica is down, conninfo
 * settings that win over the config's defaults, reserved schema names. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Config versions                                                           */
/* ------------------------------------------------------------------------ */

/* A struct of `size` bytes that ends exactly where a PROT_NONE page begins:
 * a library that reads or writes one byte past it crashes the test. */
static void *guarded(size_t size, void **map, size_t *maplen)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (size + (size_t)page - 1) / (size_t)page + 1;
    *maplen = pages * (size_t)page;
    char *m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    ck_assert_int_eq(mprotect(m + *maplen - (size_t)page, (size_t)page, PROT_NONE), 0);
    *map = m;
    return m + *maplen - (size_t)page - size;
}

START_TEST(config_version_1_struct_is_all_that_is_touched)
{
    /* Version 1 is the struct up to allow_import: what 0.1.0 programs have. */
    size_t v1 = offsetof(pl_config, allow_import) + sizeof(int);
    /* As a 0.1.0 program's struct: its size rounded up to the alignment
     * (the padding is the caller's, never written by the library). */
    size_t align = _Alignof(pl_config);
    void *map;
    size_t maplen;
    pl_config *cfg = guarded((v1 + align - 1) / align * align, &map, &maplen);
    (pl_config_init)(cfg); /* the 0.1.0 entry point, not the macro */
    ck_assert_uint_eq(cfg->version, 1);
    ck_assert_uint_eq(cfg->pool_size, 8);
    ck_assert_str_eq(cfg->schema, "provledger");
    pl_config mine;
    tu_config(&mine, 0);
    cfg->pg_conninfo = mine.pg_conninfo;
    cfg->schema = mine.schema;
    pl_ledger *l = NULL;
    tu_ok(pl_open(&l, cfg));
    tu_ok(pl_migrate(l));
    pl_close(l);

    pl_config_init_version(cfg, 1, v1);
    /* The padding after allow_import is not touched either. */
    memset((char *)cfg + v1, 0x77, (v1 + align - 1) / align * align - v1);
    pl_config_init_version(cfg, 1, v1);
    for (size_t i = v1; i < (v1 + align - 1) / align * align; i++)
        ck_assert_uint_eq(((unsigned char *)cfg)[i], 0x77);
    ck_assert_uint_eq(cfg->version, 1);
    ck_assert_uint_eq(cfg->statement_timeout_ms, 30000);
    munmap(map, maplen);
}
END_TEST

START_TEST(config_versions_refused_or_bounded)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    pl_ledger *l = (pl_ledger *)&cfg;
    cfg.version = 0;
    ck_assert_int_eq(pl_open(&l, &cfg), PL_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "cfg.version"));
    cfg.version = PL_CONFIG_VERSION + 1;
    ck_assert_int_eq(pl_open(&l, &cfg), PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "cfg.version"));

    /* A newer caller's bigger struct: the library fills what it knows and
     * zeroes the rest of the caller's bytes, keeping the caller's version
     * (which pl_open then refuses rather than ignoring fields). */
    unsigned char big[sizeof(pl_config) + 64];
    memset(big, 0xab, sizeof big);
    pl_config_init_version((pl_config *)big, PL_CONFIG_VERSION + 1, sizeof big - 16);
    for (size_t i = sizeof(pl_config); i < sizeof big - 16; i++)
        ck_assert_uint_eq(big[i], 0);
    for (size_t i = sizeof big - 16; i < sizeof big; i++)
        ck_assert_uint_eq(big[i], 0xab);
    ck_assert_uint_eq(((pl_config *)big)->version, PL_CONFIG_VERSION + 1);
    ck_assert_uint_eq(((pl_config *)big)->pool_size, 8);

    /* A size smaller than the version's: nothing past it is written. */
    memset(big, 0xab, sizeof big);
    pl_config_init_version((pl_config *)big, PL_CONFIG_VERSION, 8);
    for (size_t i = 8; i < sizeof big; i++)
        ck_assert_uint_eq(big[i], 0xab);
    pl_config_init_version(NULL, PL_CONFIG_VERSION, sizeof cfg);
}
END_TEST

START_TEST(reserved_schema_names_refused)
{
    const char *names[] = {"pg_catalog", "pg_toast", "pg_temp", "information_schema", "pg_mine"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        pl_config cfg;
        tu_config(&cfg, 0);
        cfg.schema = names[i];
        pl_ledger *l = NULL;
        ck_assert_int_eq(pl_open(&l, &cfg), PL_EINVAL);
        ck_assert_ptr_null(l);
        ck_assert_msg(strstr(pl_errmsg(), "cfg.schema") && strstr(pl_errmsg(), "reserved"), "%s: %s",
                      names[i], pl_errmsg());
    }
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.schema = "pgx_ok";
    pl_ledger *l = NULL;
    tu_ok(pl_open(&l, &cfg));
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Iterators and pl_close                                                    */
/* ------------------------------------------------------------------------ */

#define AUDIT_ROWS 2500 /* more than one chunk: the iterator holds a connection */

static void load_audit_rows(pl_ledger *l, const char *source)
{
    static pl_change c[AUDIT_ROWS];
    static char names[AUDIT_ROWS][32];
    for (int i = 0; i < AUDIT_ROWS; i++) {
        snprintf(names[i], sizeof names[i], "life-%d", i);
        c[i] = tu_change(names[i], "f", "1");
        c[i].source_type = source;
    }
    tu_ok(pl_insert_batch(NULL, l, c, AUDIT_ROWS));
}

static int read_all(pl_iter *it, const pl_record **first)
{
    int n = 0, rc;
    const pl_record *rec;
    while ((rc = pl_iter_next(&rec, it)) == PL_OK) {
        if (first && !*first)
            *first = rec;
        n++;
    }
    ck_assert_int_eq(rc, PL_ITEROVER);
    return n;
}

START_TEST(iterator_outlives_close)
{
    pl_ledger *l = tu_open_new(0, 0);
    load_audit_rows(l, "life-src");
    pl_iter *it = NULL;
    tu_ok(pl_audit_open(&it, l, "life-src", PL_TIME_ANY, PL_TIME_ANY));
    const pl_record *rec;
    tu_ok(pl_iter_next(&rec, it));
    pl_close(l);
    /* The borrowed record is still the iterator's... */
    ck_assert_str_eq(rec->source_type, "life-src");
    ck_assert_str_eq(rec->field_name, "f");
    /* ...and the iterator reads on to its end. */
    ck_assert_int_eq(read_all(it, NULL), AUDIT_ROWS - 1);
    pl_iter_free(it);
}
END_TEST

START_TEST(iterator_freed_after_close)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    char conninfo[1024];
    snprintf(conninfo, sizeof conninfo, "%s application_name=life-iter-%d", cfg.pg_conninfo, (int)getpid());
    cfg.pg_conninfo = conninfo;
    pl_ledger *l = tu_open_fresh(&cfg);
    load_audit_rows(l, "life-src");
    pl_iter *a = NULL, *b = NULL;
    tu_ok(pl_audit_open(&a, l, "life-src", PL_TIME_ANY, PL_TIME_ANY));
    tu_ok(pl_audit_open(&b, l, "life-src", PL_TIME_ANY, PL_TIME_ANY));
    const pl_record *rec;
    tu_ok(pl_iter_next(&rec, a));
    pl_iter_free(b); /* before close */
    pl_close(l);
    pl_iter_free(a); /* after close, mid-stream: returns the connection */
    /* Every connection of the handle is gone once the last iterator is
     * (the server notices a closed connection a moment later). */
    char app[64];
    snprintf(app, sizeof app, "life-iter-%d", (int)getpid());
    PGconn *watch = tu_raw_open();
    const char *ap[1] = {app};
    ck_assert_int_ne(tu_wait_ll(watch, "SELECT (count(*) = 0)::int FROM pg_stat_activity WHERE application_name = $1",
                                1, ap, 500, 10),
                     0);
    PQfinish(watch);
}
END_TEST

/* pl_close while a call runs on another thread: the running call finishes,
 * calls starting meanwhile are refused, nothing is freed under them. */
typedef struct {
    pl_ledger *l;
    int rc;
    atomic_int done;
} call_arg;

static void *blocked_insert(void *p)
{
    call_arg *a = p;
    pl_change c = tu_change("life-locked", "f", "2");
    a->rc = pl_insert(NULL, a->l, &c);
    atomic_store(&a->done, 1);
    return NULL;
}

static void *closer(void *p)
{
    call_arg *a = p;
    pl_close(a->l);
    atomic_store(&a->done, 1);
    return NULL;
}

START_TEST(close_waits_for_running_calls)
{
    pl_ledger *l = tu_open_new(0, 0);
    pl_change c = tu_change("life-locked", "f", "1");
    tu_ok(pl_insert(NULL, l, &c));
    /* Hold the entity's head row: the next insert of it waits on the lock. */
    PGconn *pg = tu_raw_open();
    tu_raw_exec(pg, "BEGIN");
    tu_raw_exec(pg, "SELECT 1 FROM entity_head WHERE entity_id = 'life-locked' FOR UPDATE");
    call_arg ins = {l, 99, 0}, cl = {l, 0, 0};
    pthread_t t1, t2;
    ck_assert_int_eq(pthread_create(&t1, NULL, blocked_insert, &ins), 0);
    PGconn *watch = tu_raw_open();
    char holder[16];
    snprintf(holder, sizeof holder, "%d", PQbackendPID(pg));
    const char *hp[1] = {holder};
    ck_assert_int_gt(tu_wait_ll(watch, "SELECT count(*) FROM pg_stat_activity WHERE $1::int = ANY (pg_blocking_pids(pid))",
                                1, hp, 1000, 10),
                     0);
    ck_assert_int_eq(pthread_create(&t2, NULL, closer, &cl), 0);
    /* pl_close has started (it refuses new calls) and waits for the insert. */
    pl_result *r = NULL;
    int rc;
    for (int i = 0; i < 500 && (rc = pl_current(&r, l, "life-locked", "f", 0)) != PL_EINVAL; i++) {
        pl_result_free(r);
        r = NULL;
        tu_sleep_ms(10);
    }
    ck_assert_int_eq(rc, PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "pl_close"));
    ck_assert_ptr_null(r);
    ck_assert_int_eq(atomic_load(&cl.done), 0);
    ck_assert_int_eq(atomic_load(&ins.done), 0);
    tu_raw_exec(pg, "COMMIT");
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ck_assert_int_eq(ins.rc, PL_OK);
    ck_assert_int_eq(tu_raw_ll(watch, "SELECT count(*) FROM provenance_ledger WHERE entity_id = 'life-locked'", 0,
                               NULL),
                     2);
    PQfinish(watch);
    PQfinish(pg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A pool of one                                                             */
/* ------------------------------------------------------------------------ */

START_TEST(pool_of_one_serves_point_calls_beside_an_iterator)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 1;
    cfg.pool_wait_timeout_ms = 2000;
    pl_ledger *l = tu_open_fresh(&cfg);
    load_audit_rows(l, "pool1");
    pl_iter *it = NULL;
    tu_ok(pl_audit_open(&it, l, "pool1", PL_TIME_ANY, PL_TIME_ANY));
    const pl_record *rec;
    tu_ok(pl_iter_next(&rec, it));
    double t0 = tu_now_ms();
    pl_change c = tu_change("pool1-point", "f", "7");
    tu_ok(pl_insert(NULL, l, &c));
    pl_result *r = NULL;
    tu_ok(pl_current(&r, l, "pool1-point", "f", 0));
    ck_assert_str_eq(pl_result_get(r, 0)->new_value, "7");
    pl_result_free(r);
    ck_assert_double_lt(tu_now_ms() - t0, 1500);
    /* A second long call waits for the share (it has one connection). */
    pl_iter *second = NULL;
    ck_assert_int_eq(pl_audit_open(&second, l, "pool1", PL_TIME_ANY, PL_TIME_ANY), PL_ETIMEOUT);
    ck_assert_int_eq(read_all(it, NULL), AUDIT_ROWS - 1);
    pl_iter_free(it);
    pl_stats_info s;
    tu_ok(pl_stats(&s, l, sizeof s));
    ck_assert_uint_le(s.pool_open, 2);
    ck_assert_uint_eq(s.pool_size, 1);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A replica that is down                                                    */
/* ------------------------------------------------------------------------ */

/* A TCP port on loopback that nobody listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    close(fd);
    return ntohs(a.sin_port);
}

START_TEST(allow_stale_falls_back_to_primary)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    char replica[128];
    snprintf(replica, sizeof replica, "host=127.0.0.1 port=%d dbname=x connect_timeout=2", closed_port());
    cfg.replica_conninfo = replica;
    pl_ledger *l = tu_open_fresh(&cfg);
    pl_change c = tu_change("stale-down", "f", "3");
    tu_ok(pl_insert(NULL, l, &c));
    for (int i = 0; i < 3; i++) {
        pl_result *r = NULL;
        tu_ok(pl_current(&r, l, "stale-down", "f", PL_ALLOW_STALE));
        ck_assert_str_eq(pl_result_get(r, 0)->new_value, "3");
        ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY);
        ck_assert_int_eq(pl_result_staleness_us(r), 0);
        pl_result_free(r);
        tu_ok(pl_history(&r, l, "stale-down", NULL, PL_ALLOW_STALE));
        ck_assert_uint_eq(pl_result_count(r), 1);
        pl_result_free(r);
    }
    pl_stats_info s;
    tu_ok(pl_stats(&s, l, sizeof s));
    ck_assert_uint_eq(s.replica_fallbacks, 6);
    ck_assert_uint_eq(s.replica_reads, 0);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Conninfo settings win                                                     */
/* ------------------------------------------------------------------------ */

START_TEST(conninfo_connect_timeout_wins)
{
    /* A server that accepts TCP (the kernel's backlog) and never answers. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=x connect_timeout=1",
             ntohs(a.sin_port));
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pg_conninfo = conninfo;
    cfg.connect_timeout_ms = 30000;
    pl_ledger *l = NULL;
    double t0 = tu_now_ms();
    ck_assert_int_eq(pl_open(&l, &cfg), PL_ECONNECT);
    double took = tu_now_ms() - t0;
    ck_assert_msg(took < 6000, "pl_open took %.0f ms: the config's 30 s won over connect_timeout=1", took);
    close(fd);

    /* And application_name, as before. */
    tu_config(&cfg, 0);
    char named[1024];
    snprintf(named, sizeof named, "%s application_name=lifecycle-app", cfg.pg_conninfo);
    cfg.pg_conninfo = named;
    tu_ok(pl_open(&l, &cfg));
    tu_ok(pl_migrate(l));
    ck_assert_int_gt(tu_q1("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lifecycle-app'", NULL),
                     0);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Every statement reaches the metrics                                       */
/* ------------------------------------------------------------------------ */

/* Heavy and maintenance statements go through the same path as point
 * reads, so pl_health's latency alerts see them too. */
START_TEST(every_statement_is_measured)
{
    pl_ledger *l = tu_open_new(0, 0);
    load_audit_rows(l, "metrics-src");
    pl_table *t = NULL;
    tu_ok(pl_dashboard_changes(&t, l, PL_TIME_ANY, PL_TIME_NOW, NULL, 0));
    pl_table_free(t);
    tu_ok(pl_partitions_list(&t, l));
    pl_table_free(t);
    pl_iter *it = NULL;
    tu_ok(pl_audit_open(&it, l, "metrics-src", PL_TIME_ANY, PL_TIME_ANY));
    ck_assert_int_eq(read_all(it, NULL), AUDIT_ROWS);
    pl_iter_free(it);
    int created = 0;
    tu_ok(pl_partitions_ensure(&created, l, 2));
    char *health = NULL;
    tu_ok(pl_health(&health, l));
    static const char *const ops[] = {"\"pl_append\"", "\"pl_dashboard_base\"", "\"pl_partitions_list\"",
                                      "\"pl_audit\"", "\"pl_cursor_fetch\"", "\"pl_tx_read_snapshot\"",
                                      "\"pl_partitions_ensure\"", "\"migration\""};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        ck_assert_msg(strstr(health, ops[i]) != NULL, "no metrics of %s in pl_health", ops[i]);
    pl_free(health);
    pl_close(l);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("lifecycle");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"config_version_1_struct_is_all_that_is_touched", config_version_1_struct_is_all_that_is_touched},
        {"config_versions_refused_or_bounded", config_versions_refused_or_bounded},
        {"reserved_schema_names_refused", reserved_schema_names_refused},
        {"iterator_outlives_close", iterator_outlives_close},
        {"iterator_freed_after_close", iterator_freed_after_close},
        {"close_waits_for_running_calls", close_waits_for_running_calls},
        {"pool_of_one_serves_point_calls_beside_an_iterator", pool_of_one_serves_point_calls_beside_an_iterator},
        {"allow_stale_falls_back_to_primary", allow_stale_falls_back_to_primary},
        {"conninfo_connect_timeout_wins", conninfo_connect_timeout_wins},
        {"every_statement_is_measured", every_statement_is_measured},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        TCase *tc = tu_tcase(cases[i].name, 120);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return tu_run(s);
}
