/* The read replica: reads with PL_ALLOW_STALE go to it and say how stale
 * they may be; every other read goes to the primary; a stopped replica
 * fails only the reads that asked for it; replay lag is measured.
 *
 * Skips (77) when the harness runs without a replica (--no-replica).
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USEC INT64_C(1000000)

static pl_ledger *open_with_replica(void)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.replica_conninfo = getenv("PL_TEST_REPLICA");
    return tu_open_cfg(&cfg);
}

static uint64_t replica_reads(pl_ledger *l)
{
    pl_stats_info st;
    tu_ok(pl_stats(&st, l, sizeof st));
    return st.replica_reads;
}

/* Polls (up to 10 s) until a stale read of entity.field answers `value`;
 * returns that answer (origin replica), or fails the test. */
static pl_result *wait_replica_value(pl_ledger *l, const char *entity, const char *field,
                                     const char *value)
{
    int rc = 0;
    for (int i = 0; i < 200; i++) {
        pl_result *r = NULL;
        rc = pl_current(&r, l, entity, field, PL_ALLOW_STALE);
        /* The primary answers while the replica is down: wait for the
         * replica's own answer. */
        if (rc == PL_OK && strcmp(pl_result_get(r, 0)->new_value, value) == 0 &&
            pl_result_origin(r) == PL_ORIGIN_REPLICA)
            return r;
        pl_result_free(r);
        tu_sleep_ms(50);
    }
    ck_abort_msg("the replica never answered %s for %s.%s (last rc %d: %s)", value, entity, field, rc,
                 pl_errmsg());
    return NULL;
}

/* A raw connection to the replica (for pausing replay). */
static PGconn *replica_raw(void)
{
    PGconn *pg = PQconnectdb(getenv("PL_TEST_REPLICA"));
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "replica: %s", PQerrorMessage(pg));
    return pg;
}

static void replica_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK,
                  "%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

/* Makes sure replay runs and the replica is up, whatever a failed test
 * left behind. */
static void replica_normal(void)
{
    tu_ctl("replica-start");
    PGconn *pg = PQconnectdb(getenv("PL_TEST_REPLICA"));
    if (PQstatus(pg) == CONNECTION_OK)
        PQclear(PQexec(pg, "SELECT pg_wal_replay_resume()"));
    PQfinish(pg);
}

/* ------------------------------------------------------------------------ */

START_TEST(stale_reads_go_to_the_replica)
{
    replica_normal();
    pl_ledger *l = open_with_replica();
    pl_change c = tu_change("rep-1", "f", "\"one\"");
    c.metadata = "{\"k\": 1}";
    pl_receipt rec;
    tu_ok(pl_insert(&rec, l, &c));
    pl_result *r = wait_replica_value(l, "rep-1", "f", "\"one\"");
    ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_REPLICA);
    ck_assert_int_ge(pl_result_staleness_us(r), 0);
    ck_assert_int_eq(pl_result_get(r, 0)->id, rec.id);
    ck_assert_int_eq(pl_result_get(r, 0)->transaction_time, rec.transaction_time);
    ck_assert_str_eq(pl_result_get(r, 0)->metadata, "{\"k\": 1}");
    pl_result_free(r);

    /* Every read function with PL_ALLOW_STALE: the replica, counted once
     * each. */
    uint64_t before = replica_reads(l);
    pl_time now = pl_time_now();
    for (int k = 0; k < 5; k++) {
        int rc;
        switch (k) {
        case 0: rc = pl_current(&r, l, "rep-1", "f", PL_ALLOW_STALE); break;
        case 1: rc = pl_as_of(&r, l, "rep-1", "f", now, PL_TIME_ANY, PL_ALLOW_STALE); break;
        case 2: rc = pl_snapshot(&r, l, "rep-1", PL_TIME_NOW, PL_TIME_NOW, PL_ALLOW_STALE); break;
        case 3: rc = pl_range(&r, l, "rep-1", NULL, PL_TIME_ANY, PL_TIME_NOW, PL_ALLOW_STALE); break;
        default: rc = pl_history(&r, l, "rep-1", "f", PL_ALLOW_STALE); break;
        }
        ck_assert_msg(rc == PL_OK, "stale read %d -> %d: %s", k, rc, pl_errmsg());
        ck_assert_uint_eq(pl_result_count(r), 1);
        ck_assert_int_eq(pl_result_get(r, 0)->id, rec.id);
        ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_REPLICA);
        ck_assert_int_ge(pl_result_staleness_us(r), 0);
        pl_result_free(r);
        ck_assert_uint_eq(replica_reads(l), before + (uint64_t)k + 1);
    }
    /* An answer of nothing from the replica is still an answer. */
    ck_assert_int_eq(pl_current(&r, l, "rep-nobody", "f", PL_ALLOW_STALE), PL_NOT_FOUND);
    ck_assert_ptr_null(r);

    /* Without the flag, or with PL_REALTIME: the primary, exact. */
    before = replica_reads(l);
    unsigned flags[3] = {0, PL_REALTIME, PL_REALTIME | PL_ALLOW_STALE};
    for (int f = 0; f < 3; f++) {
        tu_ok(pl_current(&r, l, "rep-1", "f", flags[f]));
        ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY);
        ck_assert_int_eq(pl_result_staleness_us(r), 0);
        pl_result_free(r);
        tu_ok(pl_history(&r, l, "rep-1", NULL, flags[f]));
        ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_PRIMARY);
        pl_result_free(r);
    }
    ck_assert_uint_eq(replica_reads(l), before);
    pl_close(l);
}
END_TEST

START_TEST(write_then_stale_read_eventually_sees_it)
{
    replica_normal();
    pl_ledger *l = open_with_replica();
    for (int i = 0; i < 5; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        pl_change c = tu_change("rep-2", "f", v);
        pl_receipt rec;
        tu_ok(pl_insert(&rec, l, &c));
        /* The primary has it at once. */
        pl_result *r = NULL;
        tu_ok(pl_current(&r, l, "rep-2", "f", 0));
        ck_assert_str_eq(pl_result_get(r, 0)->new_value, v);
        pl_result_free(r);
        r = wait_replica_value(l, "rep-2", "f", v);
        ck_assert_int_eq(pl_result_get(r, 0)->id, rec.id);
        ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_REPLICA);
        pl_result_free(r);
    }
    pl_close(l);
}
END_TEST

START_TEST(replica_stopped)
{
    replica_normal();
    pl_ledger *l = open_with_replica();
    pl_change c = tu_change("rep-3", "f", "1");
    tu_ok(pl_insert(NULL, l, &c));
    pl_result_free(wait_replica_value(l, "rep-3", "f", "1"));

    ck_assert_int_eq(tu_ctl("replica-stop"), 0);
    pl_stats_info s0, s1;
    tu_ok(pl_stats(&s0, l, sizeof s0));
    pl_result *r = NULL;
    int rc = pl_current(&r, l, "rep-3", "f", PL_ALLOW_STALE);
    int origin = pl_result_origin(r);
    int64_t stale = pl_result_staleness_us(r);
    const char *value = r ? pl_result_get(r, 0)->new_value : "(none)";
    char got[32];
    snprintf(got, sizeof got, "%s", value);
    pl_result_free(r);
    r = NULL;
    int rc2 = pl_history(&r, l, "rep-3", NULL, PL_ALLOW_STALE);
    size_t history = pl_result_count(r);
    pl_result_free(r);
    r = NULL;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", pl_errmsg());
    tu_ok(pl_stats(&s1, l, sizeof s1));
    /* Reads that did not ask for the replica are not affected. */
    int rc3 = pl_current(&r, l, "rep-3", "f", 0);
    pl_result_free(r);
    r = NULL;
    c.new_value = "2";
    int rc4 = pl_insert(NULL, l, &c);
    ck_assert_int_eq(tu_ctl("replica-start"), 0);

    /* Accepting a lagging answer never makes a read less available: the
     * primary answers, exactly, and says so. */
    ck_assert_msg(rc == PL_OK, "pl_current(PL_ALLOW_STALE) with the replica down -> %d: %s", rc, msg);
    ck_assert_msg(rc2 == PL_OK, "pl_history(PL_ALLOW_STALE) with the replica down -> %d: %s", rc2, msg);
    ck_assert_int_eq(origin, PL_ORIGIN_PRIMARY);
    ck_assert_int_eq(stale, 0);
    ck_assert_str_eq(got, "1");
    ck_assert_uint_eq(history, 1);
    ck_assert_uint_eq(s1.replica_fallbacks - s0.replica_fallbacks, 2);
    ck_assert_uint_eq(s1.replica_reads, s0.replica_reads);
    tu_ok(rc3);
    tu_ok(rc4);

    /* Back: stale reads work again on the same handle. */
    r = wait_replica_value(l, "rep-3", "f", "2");
    ck_assert_int_eq(pl_result_origin(r), PL_ORIGIN_REPLICA);
    pl_result_free(r);
    pl_close(l);
}
END_TEST

/* The replica down when the ledger is opened: the primary still opens. */
START_TEST(replica_down_at_open)
{
    replica_normal();
    ck_assert_int_eq(tu_ctl("replica-stop"), 0);
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.replica_conninfo = getenv("PL_TEST_REPLICA");
    pl_ledger *l = NULL;
    int rc = pl_open(&l, &cfg);
    int mrc = l ? pl_migrate(l) : rc;
    pl_change c = tu_change("rep-4", "f", "1");
    int irc = l ? pl_insert(NULL, l, &c) : rc;
    pl_result *r = NULL;
    int src = l ? pl_current(&r, l, "rep-4", "f", PL_ALLOW_STALE) : rc;
    int origin = pl_result_origin(r);
    pl_result_free(r);
    ck_assert_int_eq(tu_ctl("replica-start"), 0);
    tu_ok(rc);
    tu_ok(mrc);
    tu_ok(irc);
    tu_ok(src);
    ck_assert_int_eq(origin, PL_ORIGIN_PRIMARY);
    r = wait_replica_value(l, "rep-4", "f", "1");
    pl_result_free(r);
    pl_close(l);
}
END_TEST

START_TEST(lag_is_reported)
{
    replica_normal();
    pl_ledger *l = open_with_replica();
    pl_change c = tu_change("rep-5", "f", "\"old\"");
    tu_ok(pl_insert(NULL, l, &c));
    pl_result_free(wait_replica_value(l, "rep-5", "f", "\"old\""));

    PGconn *rep = replica_raw();
    replica_exec(rep, "SELECT pg_wal_replay_pause()");
    c.new_value = "\"new\"";
    tu_ok(pl_insert(NULL, l, &c));
    tu_sleep_ms(1500); /* by design: the lag under test is this paused replay */
    pl_result *r = NULL;
    int rc = pl_current(&r, l, "rep-5", "f", PL_ALLOW_STALE);
    char value[64] = "";
    int origin = -1;
    int64_t stale = -1;
    if (rc == PL_OK) {
        snprintf(value, sizeof value, "%s", pl_result_get(r, 0)->new_value);
        origin = pl_result_origin(r);
        stale = pl_result_staleness_us(r);
    }
    pl_result_free(r);
    replica_exec(rep, "SELECT pg_wal_replay_resume()");
    PQfinish(rep);

    tu_ok(rc);
    ck_assert_int_eq(origin, PL_ORIGIN_REPLICA);
    ck_assert_str_eq(value, "\"old\"");
    ck_assert_msg(stale > 1000000, "replay paused for 1.5 s, staleness reported %" PRId64 " us", stale);
    /* Resumed: the new value arrives. */
    pl_result_free(wait_replica_value(l, "rep-5", "f", "\"new\""));
    pl_close(l);
}
END_TEST

/* A stale answer must not claim to be fresher than it is: here the replica
 * misses a write made 600 ms before, yet the staleness reported is the lag
 * measured (as 0) by a read less than a second earlier. */
START_TEST(staleness_not_underreported)
{
    replica_normal();
    pl_ledger *l = open_with_replica();
    pl_change c = tu_change("rep-6", "f", "\"old\"");
    tu_ok(pl_insert(NULL, l, &c));
    pl_result *r = wait_replica_value(l, "rep-6", "f", "\"old\"");
    pl_result_free(r);
    /* A stale read now, more than a second after the last: the library
     * measures the lag (as 0, the replica is caught up) for it. */
    tu_sleep_ms(1100); /* by design: past the lag-measurement interval (1 s) */
    tu_ok(pl_current(&r, l, "rep-6", "f", PL_ALLOW_STALE));
    pl_result_free(r);

    PGconn *rep = replica_raw();
    replica_exec(rep, "SELECT pg_wal_replay_pause()");
    c.new_value = "\"new\"";
    pl_receipt rec;
    tu_ok(pl_insert(&rec, l, &c));
    tu_sleep_ms(600); /* by design: the write the replica misses is this old */
    int rc = pl_current(&r, l, "rep-6", "f", PL_ALLOW_STALE);
    pl_time asked = pl_time_now();
    char value[64] = "";
    int64_t stale = -1;
    if (rc == PL_OK) {
        snprintf(value, sizeof value, "%s", pl_result_get(r, 0)->new_value);
        stale = pl_result_staleness_us(r);
    }
    pl_result_free(r);
    replica_exec(rep, "SELECT pg_wal_replay_resume()");
    PQfinish(rep);
    pl_close(l);

    ck_assert_msg(rc == PL_OK, "stale read -> %d", rc);
    ck_assert_str_eq(value, "\"old\""); /* the answer misses the write... */
    int64_t missed_for = asked - rec.transaction_time;
    ck_assert_int_gt(missed_for, 500000);
    /* ...so it is at least that stale. */
    ck_assert_msg(stale >= missed_for - 100000,
                  "the answer misses a write committed %" PRId64 " us earlier, but reports staleness %" PRId64
                  " us",
                  missed_for, stale);
}
END_TEST

int main(void)
{
    tu_require_servers();
    const char *rep = getenv("PL_TEST_REPLICA");
    if (!rep || !*rep) {
        fprintf(stderr, "no replica in this run (servers.sh --no-replica): skipping\n");
        return 77;
    }
    Suite *s = suite_create("replica");
    TCase *tc = tu_tcase("routing", 60);
    tcase_add_test(tc, stale_reads_go_to_the_replica);
    tcase_add_test(tc, write_then_stale_read_eventually_sees_it);
    suite_add_tcase(s, tc);
    tc = tu_tcase("outage", 60);
    tcase_add_test(tc, replica_stopped);
    tcase_add_test(tc, replica_down_at_open);
    suite_add_tcase(s, tc);
    tc = tu_tcase("lag", 60);
    tcase_add_test(tc, lag_is_reported);
    tcase_add_test(tc, staleness_not_underreported);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
