/* Hostile servers (issue 12, part 3).
 *
 * redis: the cache talks to tests/hostile_redis.c, a proxy in front of the
 * real Redis that, round after round, damages replies to chosen commands
 * (garbage, wrong reply types, truncated replies, enormous bulk lengths,
 * stalls mid-reply, a reply trickled a byte at a time, forged or replayed
 * cached entries). Every read through the public API (current, settled
 * as-of, snapshot, history) must return exactly what SQL says, within the
 * Redis command timeout plus a slack for the database read; every write
 * must succeed. Each mode must have fired, and cached hits must have been
 * served between the faults.
 *
 * postgres: the ledger talks to tests/pg_proxy.c, a proxy in front of
 * PostgreSQL that cuts or stalls a connection mid-request, after a whole
 * request reached the server (for a write: mid-commit, it commits unseen)
 * and mid-response, for writes and for reads, and new connections while
 * the server answers their startup packet. No crash; within the
 * statement deadline (plus the cancel's grace, twice) a failed write
 * returns PL_EUNKNOWN and a failed read PL_ECONNECT or PL_ETIMEOUT, with a
 * message; a keyed write retried with its idempotency key lands; the next
 * call succeeds. At the end SQL holds every acknowledged write exactly
 * once (with its receipt's id) and every PL_EUNKNOWN write at most once
 * (the bookkeeping also holds any other failed write to not at all).
 *
 * Seeded: PL_HOSTILE_SEED=N repeats a run (the seed is printed).
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hostile_redis.h"
#include "pg_proxy.h"

#define CMD_TIMEOUT_MS 100
#define LEASE_MS 100
#define STMT_TIMEOUT_MS 300
#define CANCEL_GRACE_MS 2000 /* lib/db/pool.c: a cancel unanswered for 2 s drops the connection */
#define NENT 4
#define NFIELD 2

static uint64_t rng;

static uint64_t seed_once(void)
{
    const char *v = getenv("PL_HOSTILE_SEED");
    uint64_t seed = v && *v ? strtoull(v, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    printf("hostile: seed %" PRIu64 " (PL_HOSTILE_SEED=%" PRIu64 " repeats it)\n", seed, seed);
    rng = seed;
    return seed;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(tu_rand64(&rng) % n);
}

static int under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload");
}

/* What a database read may add to the bound: more under the sanitizers
 * and much more under valgrind, whose process runs many times slower. */
static double slack_ms(void)
{
    if (under_valgrind())
        return 4000;
#if defined(__SANITIZE_ADDRESS__)
    return 1000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1000;
#endif
#endif
    return 300;
}

static const char *ent(unsigned i)
{
    static const char *const e[NENT] = {"hx-alpha", "hx-beta", "hx-gamma", "hx-delta"};
    return e[i % NENT];
}

static const char *fld(unsigned i)
{
    static const char *const f[NFIELD] = {"amount", "state"};
    return f[i % NFIELD];
}

/* ------------------------------------------------------------------------ */
/* What SQL says                                                            */
/* ------------------------------------------------------------------------ */

static PGconn *oracle;

static void oracle_open(void)
{
    oracle = tu_raw_open();
}

static void oracle_close(void)
{
    PQfinish(oracle);
    oracle = NULL;
}

/* Rows as "id=value;" text, in the order the SQL gives. */
static char *rows_text(PGresult *r)
{
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    s[0] = '\0';
    for (int i = 0; i < PQntuples(r); i++) {
        size_t need = len + strlen(PQgetvalue(r, i, 0)) + strlen(PQgetvalue(r, i, 1)) + 3;
        if (need >= cap) {
            cap = need * 2;
            s = realloc(s, cap);
            ck_assert_ptr_nonnull(s);
        }
        len += (size_t)sprintf(s + len, "%s=%s;", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    }
    PQclear(r);
    return s;
}

static char *result_text(const pl_result *res)
{
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    s[0] = '\0';
    for (size_t i = 0; i < pl_result_count(res); i++) {
        const pl_record *r = pl_result_get(res, i);
        size_t need = len + strlen(r->new_value) + 32;
        if (need >= cap) {
            cap = need * 2;
            s = realloc(s, cap);
            ck_assert_ptr_nonnull(s);
        }
        len += (size_t)sprintf(s + len, "%" PRId64 "=%s;", r->id, r->new_value);
    }
    return s;
}

enum { RD_CURRENT, RD_ASOF, RD_SNAPSHOT, RD_HISTORY, RD_KINDS };
static const char *const rd_names[RD_KINDS] = {"current", "as-of", "snapshot", "history"};

static char *oracle_answer(int kind, const char *e, const char *f, pl_time tt)
{
    char ttx[32];
    snprintf(ttx, sizeof ttx, "%" PRId64, tt);
    const char *p[3] = {e, f, ttx};
    switch (kind) {
    case RD_CURRENT:
        return rows_text(tu_raw_q(oracle,
            "SELECT id, new_value::text FROM provenance_ledger WHERE entity_id = $1 AND "
            "field_name = $2 AND valid_time_start <= now() AND valid_time_end > now() "
            "ORDER BY transaction_time DESC, id DESC LIMIT 1", 2, p));
    case RD_ASOF:
        return rows_text(tu_raw_q(oracle,
            "SELECT id, new_value::text FROM provenance_ledger WHERE entity_id = $1 AND "
            "field_name = $2 AND transaction_time <= timestamptz 'epoch' + $3::bigint * "
            "interval '1 microsecond' ORDER BY transaction_time DESC, id DESC LIMIT 1", 3, p));
    case RD_SNAPSHOT:
        return rows_text(tu_raw_q(oracle,
            "SELECT id, v FROM (SELECT DISTINCT ON (field_name) field_name, id, new_value::text "
            "AS v FROM provenance_ledger WHERE entity_id = $1 AND valid_time_start <= now() AND "
            "valid_time_end > now() ORDER BY field_name, transaction_time DESC, id DESC) s "
            "ORDER BY field_name COLLATE \"C\"", 1, p));
    default:
        return rows_text(tu_raw_q(oracle,
            "SELECT id, new_value::text FROM provenance_ledger WHERE entity_id = $1 AND "
            "field_name = $2 ORDER BY transaction_time, id", 2, p));
    }
}

static int api_read(pl_result **out, pl_ledger *l, int kind, const char *e, const char *f, pl_time tt)
{
    switch (kind) {
    case RD_CURRENT:
        return pl_current(out, l, e, f, 0);
    case RD_ASOF:
        return pl_as_of(out, l, e, f, tt, PL_TIME_ANY, 0);
    case RD_SNAPSHOT:
        return pl_snapshot(out, l, e, PL_TIME_NOW, PL_TIME_NOW, 0);
    default:
        return pl_history(out, l, e, f, 0);
    }
}

/* The transaction time of a write to (e, f), for settled as-of reads. */
static pl_time settled_tt[NENT][NFIELD];

typedef struct read_outcome {
    int rc;
    double ms;
} read_outcome;

/* One read through the API, compared with SQL when it succeeded; returns
 * its code and time. With must_succeed, anything but the answer fails. */
static read_outcome checked_read(pl_ledger *l, int kind, unsigned ei, unsigned fi, int must_succeed,
                                 const char *why)
{
    pl_result *res = NULL;
    pl_time tt = settled_tt[ei % NENT][fi % NFIELD];
    double t0 = tu_now_ms();
    int rc = api_read(&res, l, kind, ent(ei), fld(fi), tt);
    read_outcome o = {rc, tu_now_ms() - t0};
    if (rc == PL_OK || rc == PL_NOT_FOUND) {
        char *got = result_text(res), *want = oracle_answer(kind, ent(ei), fld(fi), tt);
        ck_assert_msg(strcmp(got, want) == 0, "%s: %s of %s.%s returned %s, SQL says %s", why,
                      rd_names[kind], ent(ei), fld(fi), got, want);
        ck_assert_int_eq(rc, *want ? PL_OK : PL_NOT_FOUND);
        free(got);
        free(want);
    } else {
        ck_assert_msg(!must_succeed, "%s: %s of %s.%s -> %d (%s): %s", why, rd_names[kind], ent(ei),
                      fld(fi), rc, pl_strerror(rc), pl_errmsg());
    }
    pl_result_free(res);
    return o;
}

static void stats(pl_ledger *l, pl_stats_info *s)
{
    memset(s, 0, sizeof *s);
    tu_ok(pl_stats(s, l, sizeof *s));
}

/* ------------------------------------------------------------------------ */
/* A hostile Redis                                                          */
/* ------------------------------------------------------------------------ */

static unsigned long value_seq;

static pl_receipt write_value(pl_ledger *l, unsigned ei, unsigned fi, const char *why, double *ms)
{
    char v[32];
    snprintf(v, sizeof v, "%lu", ++value_seq);
    pl_change c = tu_change(ent(ei), fld(fi), v);
    pl_receipt rc;
    double t0 = tu_now_ms();
    int r = pl_insert(&rc, l, &c);
    if (ms)
        *ms = tu_now_ms() - t0;
    ck_assert_msg(r == PL_OK, "%s: a write through the hostile Redis failed: %d (%s): %s", why, r,
                  pl_strerror(r), pl_errmsg());
    settled_tt[ei % NENT][fi % NFIELD] = rc.transaction_time;
    return rc;
}

/* Reads until one is a cache hit (the cache is back after a fault), at
 * most timeout_ms; returns whether one was. */
static int wait_for_hits(pl_ledger *l, double timeout_ms)
{
    double end = tu_now_ms() + timeout_ms;
    pl_stats_info s;
    stats(l, &s);
    uint64_t before = s.cache_hits;
    while (tu_now_ms() < end) {
        for (unsigned i = 0; i < NENT * NFIELD; i++)
            checked_read(l, RD_CURRENT, i, i / NENT, 1, "recovery");
        stats(l, &s);
        if (s.cache_hits > before)
            return 1;
        tu_sleep_ms(50);
    }
    return 0;
}

/* How many replies were damaged in mode to the commands of mask. */
static unsigned long fired_on(hostile_redis *h, hr_mode mode, unsigned mask)
{
    unsigned long n = 0;
    for (int t = 0; t < HR_NTARGETS; t++)
        if (mask & HR_BIT(t))
            n += hr_fired(h, mode, (hr_target)t);
    return n;
}

typedef struct redis_round {
    hr_mode mode;
    unsigned mask;
    int writes;         /* 1: every op is a write and then a read; 0: some
                           are; -1: none is */
    const char *lookup; /* HR_WRONG_TYPE's reply to LOOKUP, or NULL */
    unsigned permille;  /* how many replies are damaged; 0: 400 */
} redis_round;

#define READ_TARGETS                                                                         \
    (HR_BIT(HR_T_LOOKUP) | HR_BIT(HR_T_FILL) | HR_BIT(HR_T_DROP) | HR_BIT(HR_T_INFO) |       \
     HR_BIT(HR_T_SCRIPT_LOAD) | HR_BIT(HR_T_OTHER))
#define WRITE_TARGETS (HR_BIT(HR_T_INTENT) | HR_BIT(HR_T_CLEAR))

START_TEST(test_hostile_redis)
{
    uint64_t seed = seed_once();
    const char *rp = getenv("PL_TEST_REDIS_PORT");
    ck_assert_msg(rp && *rp, "PL_TEST_REDIS_PORT is not set");
    hostile_redis *h = hr_start(atoi(rp), seed ^ 0x5eed);
    ck_assert_ptr_nonnull(h);
    /* Slower than the command timeout per byte only when trickling as a
     * whole: each byte comes well within it. */
    hr_set_trickle_ms(h, CMD_TIMEOUT_MS / 3);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", hr_port(h));
    pl_config cfg;
    tu_config(&cfg, 1);
    cfg.redis_url = url;
    cfg.redis_command_timeout_ms = CMD_TIMEOUT_MS;
    cfg.redis_connect_timeout_ms = CMD_TIMEOUT_MS;
    cfg.cache_lease_ms = LEASE_MS;
    cfg.redis_retry_ms = 50;
    pl_ledger *l = tu_open_fresh(&cfg);
    oracle_open();
    for (unsigned i = 0; i < NENT * NFIELD; i++)
        write_value(l, i, i / NENT, "seed", NULL);
    ck_assert_msg(wait_for_hits(l, 15000), "the cache never served a hit through the clean proxy");

    /* Read faults first (they leave the cache on), then write faults
     * (a missed intent disables the cache for its window). */
    static const redis_round rounds[] = {
        {HR_FORGE, HR_BIT(HR_T_LOOKUP), 0, NULL, 0},
        {HR_WRONG_TYPE, READ_TARGETS, 0, NULL, 0},
        {HR_GARBAGE, READ_TARGETS, 0, NULL, 0},
        {HR_TRUNCATE, READ_TARGETS, 0, NULL, 0},
        {HR_HUGE_BULK, READ_TARGETS, 0, NULL, 0},
        {HR_STALL, READ_TARGETS, 0, NULL, 0},
        {HR_TRICKLE, READ_TARGETS, 0, NULL, 0},
        /* "The epoch marker is missing", and then a broken answer to the
         * EXISTS that checks it: no evidence that Redis lost data. */
        {HR_WRONG_TYPE, HR_BIT(HR_T_LOOKUP) | HR_BIT(HR_T_OTHER), -1, "*1\r\n:4\r\n", 1000},
        {HR_GARBAGE, READ_TARGETS, -1, NULL, 0},
        {HR_STALL, READ_TARGETS, -1, NULL, 0},
        {HR_FORGE, HR_BIT(HR_T_LOOKUP), 0, NULL, 0},
        {HR_WRONG_TYPE, WRITE_TARGETS, 1, NULL, 0},
        {HR_GARBAGE, WRITE_TARGETS, 1, NULL, 0},
        {HR_TRUNCATE, WRITE_TARGETS, 1, NULL, 0},
        {HR_HUGE_BULK, WRITE_TARGETS, 1, NULL, 0},
        {HR_STALL, WRITE_TARGETS, 1, NULL, 0},
        {HR_TRICKLE, WRITE_TARGETS, 1, NULL, 0},
    };
    const double bound = CMD_TIMEOUT_MS + slack_ms();
    double worst_read = 0, worst_write = 0;
    unsigned long reads = 0, writes = 0;
    pl_stats_info s0, s1;
    stats(l, &s0);
    uint64_t hits_armed = 0;
    for (size_t r = 0; r < sizeof rounds / sizeof *rounds; r++) {
        const redis_round *rd = &rounds[r];
        char why[96];
        snprintf(why, sizeof why, "round %zu (%s)", r, hr_mode_name(rd->mode));
        pl_stats_info a, b;
        stats(l, &a);
        long long epoch = tu_raw_ll(oracle, "SELECT epoch FROM cache_state", 0, NULL);
        hr_set_lookup_reply(h, rd->lookup);
        unsigned long fired_before = fired_on(h, rd->mode, rd->mask);
        hr_arm(h, rd->mode, rd->mask, rd->permille ? rd->permille : 400);
        /* 24 operations at least, and on until the fault hit one of this
         * round's own targets: after a fault the library leaves Redis alone
         * for its backoff (up to 2 s), and 24 quick writes can all fall
         * inside it, so that a round would test nothing. */
        double round_end = tu_now_ms() + 20000;
        for (int op = 0; op < 24 || (fired_on(h, rd->mode, rd->mask) == fired_before &&
                                     tu_now_ms() < round_end);
             op++) {
            if (op >= 24)
                tu_sleep_ms(20); /* waiting out the backoff, not flooding */
            unsigned ei = pick(NENT), fi = pick(NFIELD);
            if (rd->writes > 0 || (rd->writes == 0 && pick(6) == 0)) {
                double ms;
                write_value(l, ei, fi, why, &ms);
                writes++;
                if (ms > worst_write)
                    worst_write = ms;
            }
            int kind = (int)pick(RD_KINDS);
            read_outcome o = checked_read(l, kind, ei, fi, 1, why);
            reads++;
            if (o.ms > worst_read)
                worst_read = o.ms;
            ck_assert_msg(o.ms <= bound, "%s: %s of %s.%s took %.0f ms (bound %.0f ms)", why,
                          rd_names[kind], ent(ei), fld(fi), o.ms, bound);
        }
        hr_disarm(h);
        hr_set_lookup_reply(h, NULL);
        /* A damaged reply is no evidence that Redis lost data: reads alone
         * never move the epoch (which disables the cache for everyone; a
         * write whose intent could not be placed must). */
        if (rd->writes < 0)
            ck_assert_msg(tu_raw_ll(oracle, "SELECT epoch FROM cache_state", 0, NULL) == epoch,
                          "%s: the cache epoch moved (the cache was disabled) on read faults", why);
        stats(l, &b);
        hits_armed += b.cache_hits - a.cache_hits;
        ck_assert_msg(fired_on(h, rd->mode, rd->mask) > fired_before,
                      "%s: the fault never hit one of the round's targets", why);
        /* The cache comes back by itself once Redis behaves. A missed
         * intent disables it for its window (some 4 s with this lease),
         * but writes still place their intents meanwhile: the write
         * rounds run back to back and the cache is awaited after them. */
        if (rd->writes <= 0 || r + 1 == sizeof rounds / sizeof *rounds)
            ck_assert_msg(wait_for_hits(l, 15000), "%s: the cache did not come back", why);
    }
    stats(l, &s1);
    printf("hostile redis: %lu reads (worst %.0f ms, bound %.0f ms), %lu writes (worst %.0f ms); "
           "%" PRIu64 " hits while armed; rejected %" PRIu64 ", redis errors %" PRIu64 "\n",
           reads, worst_read, bound, writes, worst_write, hits_armed,
           s1.cache_rejected - s0.cache_rejected, s1.redis_errors - s0.redis_errors);
    for (int m = 1; m < HR_NMODES; m++) {
        printf("  %-10s", hr_mode_name((hr_mode)m));
        for (int t = 0; t < HR_NTARGETS; t++)
            if (hr_fired(h, (hr_mode)m, (hr_target)t))
                printf(" %s:%lu", hr_target_name((hr_target)t), hr_fired(h, (hr_mode)m, (hr_target)t));
        printf("\n");
        ck_assert_msg(hr_fired_mode(h, (hr_mode)m) > 0, "mode %s never fired", hr_mode_name((hr_mode)m));
    }
    fflush(stdout);
    /* Forged entries were seen and refused; hits were served between faults. */
    ck_assert_msg(hr_fired(h, HR_FORGE, HR_T_LOOKUP) > 0, "no entry was forged");
    ck_assert_msg(s1.cache_rejected > s0.cache_rejected, "no forged entry was rejected");
    ck_assert_msg(hits_armed > 0, "no cache hit was served while the proxy was armed");
    ck_assert_msg(hr_fired(h, HR_STALL, HR_T_INTENT) + hr_fired(h, HR_STALL, HR_T_CLEAR) > 0,
                  "no write-side stall fired");
    oracle_close();
    pl_close(l);
    hr_stop(h);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A cutting PostgreSQL proxy                                               */
/* ------------------------------------------------------------------------ */

enum { W_ACKED, W_UNKNOWN, W_FAILED };

typedef struct written {
    unsigned long value;
    int state;
    int64_t id; /* W_ACKED */
} written;

static long long rows_with_value(unsigned long v)
{
    char t[32];
    snprintf(t, sizeof t, "%lu", v);
    const char *p[1] = {t};
    return tu_raw_ll(oracle, "SELECT count(*) FROM provenance_ledger WHERE new_value = $1::jsonb", 1, p);
}

static long long id_with_value(unsigned long v)
{
    char t[32];
    snprintf(t, sizeof t, "%lu", v);
    const char *p[1] = {t};
    return tu_raw_ll(oracle, "SELECT coalesce(min(id), -1) FROM provenance_ledger WHERE new_value = $1::jsonb",
                     1, p);
}

/* A write whose connection was cut may still be on its way to the server
 * or running there, and commit after the call returned PL_EUNKNOWN (as
 * documented). Waits until the server has no more sessions through the
 * proxy (application_name pl_hostile) than the proxy has connections open:
 * every cut session has ended, so the reads after it and SQL agree on
 * what is there. */
static void settle(pg_proxy *p)
{
    double end = tu_now_ms() + 10000;
    while (tu_raw_ll(oracle, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                             "'pl_hostile'", 0, NULL) > pp_live(p)) {
        ck_assert_msg(tu_now_ms() < end, "a cut session still runs on the server after 10 s");
        tu_sleep_ms(10);
    }
}

/* One read of a random kind while the proxy is armed: exact or a clear
 * error, within bound; tallies its code (0: PL_ECONNECT, 1: PL_ETIMEOUT,
 * 3: an answer) and disarms. */
static int faulted_read(pl_ledger *l, pg_proxy *p, int ei, int fi, const char *why, double bound, double *worst,
                        unsigned long *codes)
{
    int kind = (int)pick(RD_KINDS);
    read_outcome o = checked_read(l, kind, ei, fi, 0, why);
    int rc = o.rc;
    *worst = o.ms > *worst ? o.ms : *worst;
    ck_assert_msg(o.ms <= bound, "%s: took %.0f ms (bound %.0f ms)", why, o.ms, bound);
    ck_assert_msg(rc == PL_OK || rc == PL_NOT_FOUND || rc == PL_ECONNECT || rc == PL_ETIMEOUT,
                  "%s: a read -> %d (%s): %s", why, rc, pl_strerror(rc), pl_errmsg());
    codes[rc == PL_ECONNECT ? 0 : rc == PL_ETIMEOUT ? 1 : 3]++;
    pp_disarm(p);
    return rc;
}

START_TEST(test_pg_proxy)
{
    uint64_t seed = seed_once();
    const char *pp_port_env = getenv("PL_TEST_PG_PORT"), *tcp = getenv("PL_TEST_PG_TCP");
    ck_assert_msg(pp_port_env && tcp, "PL_TEST_PG_PORT / PL_TEST_PG_TCP are not set");
    pg_proxy *p = pp_start(atoi(pp_port_env), seed ^ 0xc0ffee);
    ck_assert_ptr_nonnull(p);
    char conninfo[512];
    /* libpq takes the last of a repeated keyword. */
    snprintf(conninfo, sizeof conninfo, "%s port=%d sslmode=disable application_name=pl_hostile",
             tcp, pp_port(p));
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pg_conninfo = conninfo;
    cfg.statement_timeout_ms = STMT_TIMEOUT_MS;
    cfg.connect_timeout_ms = 1000; /* libpq's least: 2 s */
    cfg.pool_size = 2;
    pl_ledger *l = tu_open_fresh(&cfg);
    oracle_open();
    for (unsigned i = 0; i < NENT * NFIELD; i++) {
        char v[32];
        snprintf(v, sizeof v, "%lu", ++value_seq);
        pl_change c = tu_change(ent(i), fld(i / NENT), v);
        pl_receipt rc;
        tu_ok(pl_insert(&rc, l, &c));
        settled_tt[i % NENT][(i / NENT) % NFIELD] = rc.transaction_time;
    }

    /* Every (action, phase, kind), cuts three times, stalls once (each
     * costs the deadline plus the cancel's grace; a stalled write after
     * it reached the server twice, below), in a seeded order. */
    typedef struct plan {
        pp_action action;
        pp_phase phase;
        pp_kind kind;
        int keyed; /* writes: -1 chosen at random */
    } plan;
    plan plans[64];
    size_t np = 0;
    for (int a = 0; a < PP_NACTIONS; a++)
        for (int ph = 0; ph < PP_AT_STARTUP; ph++)
            for (int k = 0; k < 2; k++)
                for (int rep = 0; rep < (a == PP_CUT ? 3 : 1); rep++)
                    if (a != PP_STALL || ph != PP_AT_EXECUTE || k != PP_WRITE)
                        plans[np++] = (plan){(pp_action)a, (pp_phase)ph, (pp_kind)k, -1};
    /* A write stalled after it reached the server commits unseen: once
     * with a key (the library's retry lands it once), once without (the
     * caller must be told the outcome is unknown). */
    plans[np++] = (plan){PP_STALL, PP_AT_EXECUTE, PP_WRITE, 0};
    plans[np++] = (plan){PP_STALL, PP_AT_EXECUTE, PP_WRITE, 1};
    /* New connections cut or stalled while the server answers the
     * startup packet (the pooled ones terminated first). */
    plans[np++] = (plan){PP_CUT, PP_AT_STARTUP, PP_OTHER, -1};
    plans[np++] = (plan){PP_CUT, PP_AT_STARTUP, PP_OTHER, -1};
    plans[np++] = (plan){PP_STALL, PP_AT_STARTUP, PP_OTHER, -1};
    for (size_t i = np - 1; i > 0; i--) {
        size_t j = pick((unsigned)i + 1);
        plan t = plans[i];
        plans[i] = plans[j];
        plans[j] = t;
    }
    written w[64];
    size_t nw = 0;
    unsigned long codes[4] = {0, 0, 0, 0}; /* ECONNECT, ETIMEOUT, EUNKNOWN, OK */
    const double bound = 2.0 * (STMT_TIMEOUT_MS + CANCEL_GRACE_MS) + slack_ms();
    double worst = 0;
    for (size_t i = 0; i < np; i++) {
        const plan *pl = &plans[i];
        char why[128];
        snprintf(why, sizeof why, "step %zu: %s %s of a %s", i, pp_action_name(pl->action),
                 pp_phase_name(pl->phase),
                 pl->kind == PP_OTHER ? "new connection" : pp_kind_name(pl->kind));
        unsigned ei = pick(NENT), fi = pick(NFIELD);
        int rc;
        double t0 = tu_now_ms();
        if (pl->kind == PP_WRITE) {
            int keyed = pl->keyed >= 0 ? pl->keyed : pick(4) != 0;
            /* Twice for some keyed writes: the library's own retry after a
             * broken answer fails too, and the caller retries. */
            pp_arm(p, pl->action, pl->phase, PP_WRITE, keyed && pl->action == PP_CUT && pick(2) ? 2 : 1);
            char v[32], key[48];
            snprintf(v, sizeof v, "%lu", ++value_seq);
            snprintf(key, sizeof key, "hostile-%" PRIu64 "-%lu", seed, value_seq);
            pl_change c = tu_change(ent(ei), fld(fi), v);
            if (keyed)
                c.idempotency_key = key;
            pl_receipt rcpt;
            rc = pl_insert(&rcpt, l, &c);
            double ms = tu_now_ms() - t0;
            worst = ms > worst ? ms : worst;
            ck_assert_msg(ms <= bound, "%s: took %.0f ms (bound %.0f ms)", why, ms, bound);
            /* The request left (the proxy accepted it whole or in part):
             * whatever broke after that, the library cannot know whether
             * it committed, and must say so. */
            ck_assert_msg(rc == PL_OK || rc == PL_EUNKNOWN, "%s: -> %d (%s): %s", why, rc,
                          pl_strerror(rc), pl_errmsg());
            ck_assert_msg(rc == PL_OK || *pl_errmsg(), "%s: an error without a message", why);
            codes[rc == PL_ECONNECT ? 0 : rc == PL_ETIMEOUT ? 1 : rc == PL_EUNKNOWN ? 2 : 3]++;
            pp_disarm(p);
            written *x = &w[nw++];
            x->value = value_seq;
            if (rc == PL_OK) {
                x->state = W_ACKED;
                x->id = rcpt.id;
            } else if (keyed) {
                /* The handle recovers, and the same key lands it once. */
                int again = pl_insert(&rcpt, l, &c);
                ck_assert_msg(again == PL_OK, "%s: the retry with the same key -> %d (%s): %s", why,
                              again, pl_strerror(again), pl_errmsg());
                x->state = W_ACKED;
                x->id = rcpt.id;
            } else {
                x->state = rc == PL_EUNKNOWN ? W_UNKNOWN : W_FAILED;
            }
            if (x->state == W_ACKED)
                settled_tt[ei][fi] = rcpt.transaction_time;
        } else if (pl->kind == PP_OTHER) {
            pp_arm(p, pl->action, PP_AT_STARTUP, PP_OTHER, 1);
            free(tu_sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                        "application_name = 'pl_hostile'", 0, NULL));
            double end = tu_now_ms() + 10000;
            while (tu_raw_ll(oracle, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                     "'pl_hostile'", 0, NULL) > 0) {
                ck_assert_msg(tu_now_ms() < end, "%s: terminated sessions still there", why);
                tu_sleep_ms(10);
            }
            t0 = tu_now_ms();
            rc = faulted_read(l, p, ei, fi, why, bound, &worst, codes);
        } else {
            /* Twice for some cut reads: the library's one retry fails too
             * and the caller gets the error. */
            pp_arm(p, pl->action, pl->phase, PP_READ, pl->action == PP_CUT && pick(2) ? 2 : 1);
            rc = faulted_read(l, p, ei, fi, why, bound, &worst, codes);
        }
        ck_assert_msg(pp_fired(p, pl->action, pl->phase, pl->kind) > 0, "%s: never fired", why);
        settle(p);
        /* The handle recovers: the next calls succeed and are exact. */
        for (int k = 0; k < RD_KINDS; k++)
            checked_read(l, k, ei, fi, 1, why);
        printf("  %-45s -> %d (%s)\n", why, rc, rc ? pl_strerror(rc) : "ok");
    }

    /* Exactly once: acknowledged writes once (their receipt's row), writes
     * of unknown outcome at most once, failed ones never. */
    size_t acked = 0, unknown = 0, failed = 0, unknown_landed = 0;
    for (size_t i = 0; i < nw; i++) {
        long long n = rows_with_value(w[i].value);
        if (w[i].state == W_ACKED) {
            acked++;
            ck_assert_msg(n == 1, "acknowledged write %lu is in SQL %lld times", w[i].value, n);
            ck_assert_int_eq(id_with_value(w[i].value), w[i].id);
        } else if (w[i].state == W_UNKNOWN) {
            unknown++;
            unknown_landed += n == 1;
            ck_assert_msg(n <= 1, "write %lu of unknown outcome is in SQL %lld times", w[i].value, n);
        } else {
            failed++;
            ck_assert_msg(n == 0, "write %lu failed but is in SQL %lld times", w[i].value, n);
        }
    }
    ck_assert_int_eq(tu_raw_ll(oracle, "SELECT count(*) FROM provenance_ledger", 0, NULL),
                     (long long)(NENT * NFIELD + acked + unknown_landed));
    printf("pg proxy: %zu faults; writes %zu acknowledged, %zu unknown (%zu landed), %zu failed; "
           "codes: ECONNECT %lu, ETIMEOUT %lu, EUNKNOWN %lu, ok %lu; worst call %.0f ms (bound %.0f)\n",
           np, acked, unknown, unknown_landed, failed, codes[0], codes[1], codes[2], codes[3], worst,
           bound);
    for (int a = 0; a < PP_NACTIONS; a++)
        for (int ph = 0; ph < PP_NPHASES; ph++)
            for (int k = 0; k < PP_NKINDS; k++) {
                if ((ph == PP_AT_STARTUP) != (k == PP_OTHER))
                    continue;
                unsigned long n = pp_fired(p, (pp_action)a, (pp_phase)ph, (pp_kind)k);
                printf("  fired %-5s %-19s %-5s %lu\n", pp_action_name((pp_action)a),
                       pp_phase_name((pp_phase)ph), pp_kind_name((pp_kind)k), n);
                ck_assert_msg(n > 0, "never fired");
            }
    fflush(stdout);
    oracle_close();
    pl_close(l);
    pp_stop(p);
}
END_TEST

/* cfg.keyed_write_retries (issue 15): keyed writes cut mid-commit or
 * before they ran are made again by the library until they land, each
 * exactly once; unkeyed ones, and keyed ones without the option, return
 * the error; the time budget bounds a call against a server that never
 * answers. */
static pl_ledger *proxied(pg_proxy *p, char *conninfo, size_t cap, unsigned retries, unsigned budget_ms)
{
    snprintf(conninfo, cap, "%s port=%d sslmode=disable application_name=pl_retry", getenv("PL_TEST_PG_TCP"),
             pp_port(p));
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pg_conninfo = conninfo;
    cfg.statement_timeout_ms = STMT_TIMEOUT_MS;
    cfg.connect_timeout_ms = 1000;
    cfg.pool_size = 2;
    cfg.keyed_write_retries = retries;
    cfg.keyed_write_retry_ms = budget_ms;
    return tu_open_cfg(&cfg);
}

static long long rows_keyed(const char *key)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".provenance_idempotency WHERE idempotency_key = '%s'",
             tu_schema(), key);
    return tu_raw_ll(oracle, sql, 0, NULL);
}

START_TEST(test_keyed_write_retries)
{
    pg_proxy *p = pp_start(atoi(getenv("PL_TEST_PG_PORT")), seed_once() ^ 0x5eed);
    ck_assert_ptr_nonnull(p);
    char ci[512], ci0[512];
    pl_close(tu_open_new(0, 0)); /* a fresh schema */
    oracle_open();
    pl_ledger *l = proxied(p, ci, sizeof ci, 8, 20000);
    pl_ledger *off = proxied(p, ci0, sizeof ci0, 0, 20000);
    pl_change c = tu_change("retry", "f", "1");
    pl_receipt r;
    tu_ok(pl_insert(&r, l, &c)); /* connections open, statements prepared */

    /* Keyed, cut three times where it commits unseen, then once before it
     * ran: the library's own single retry is spent on the first. */
    pp_phase phases[] = {PP_AT_EXECUTE, PP_AT_REQUEST, PP_AT_RESPONSE};
    for (size_t k = 0; k < sizeof phases / sizeof phases[0]; k++) {
        char key[32];
        snprintf(key, sizeof key, "retry-%zu", k);
        c = tu_change("retry", "f", "2");
        c.idempotency_key = key;
        pl_stats_info s0, s1;
        tu_ok(pl_stats(&s0, l, sizeof s0));
        pp_arm(p, PP_CUT, phases[k], PP_WRITE, 4);
        int rc = pl_insert(&r, l, &c);
        ck_assert_msg(rc == PL_OK, "keyed insert cut at %s: %s (%s)", pp_phase_name(phases[k]), pl_strerror(rc),
                      pl_errmsg());
        ck_assert_int_eq(pp_armed(p), 0);
        pp_disarm(p);
        ck_assert_int_eq(rows_keyed(key), 1);
        tu_ok(pl_stats(&s1, l, sizeof s1));
        ck_assert_uint_ge(s1.keyed_write_retries, s0.keyed_write_retries + 2);
    }
    /* A batch, all keyed: every change once. */
    pl_change b[5];
    char keys[5][32];
    for (int i = 0; i < 5; i++) {
        snprintf(keys[i], sizeof keys[i], "retry-b%d", i);
        b[i] = tu_change("retry-b", "f", "3");
        b[i].idempotency_key = keys[i];
    }
    pl_receipt rb[5];
    pp_arm(p, PP_CUT, PP_AT_EXECUTE, PP_WRITE, 3);
    tu_ok(pl_insert_batch(rb, l, b, 5));
    pp_disarm(p);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(rows_keyed(keys[i]), 1);

    /* Unkeyed: never made again; the caller gets the unknown outcome. */
    pl_stats_info s0, s1;
    tu_ok(pl_stats(&s0, l, sizeof s0));
    c = tu_change("retry", "f", "4");
    pp_arm(p, PP_CUT, PP_AT_EXECUTE, PP_WRITE, 1);
    ck_assert_int_eq(pl_insert(&r, l, &c), PL_EUNKNOWN);
    pp_disarm(p);
    tu_ok(pl_stats(&s1, l, sizeof s1));
    ck_assert_uint_eq(s1.keyed_write_retries, s0.keyed_write_retries);

    /* Keyed, option off: the built-in single retry only, then the error. */
    c = tu_change("retry", "f", "5");
    c.idempotency_key = "retry-off";
    tu_ok(pl_insert(&r, off, &c)); /* its connections */
    c.idempotency_key = "retry-off-2";
    pp_arm(p, PP_CUT, PP_AT_EXECUTE, PP_WRITE, 2);
    ck_assert_int_eq(pl_insert(&r, off, &c), PL_EUNKNOWN);
    pp_disarm(p);
    ck_assert_int_le(rows_keyed("retry-off-2"), 1); /* committed unseen, or not */

    /* The budget: a server cut at every attempt for 400 ms of them. */
    pl_close(l);
    l = proxied(p, ci, sizeof ci, 1000, 400);
    c = tu_change("retry", "f", "6");
    c.idempotency_key = "retry-budget";
    pl_change warm = tu_change("retry", "f", "0");
    tu_ok(pl_insert(&r, l, &warm)); /* its connections */
    pp_arm(p, PP_CUT, PP_AT_REQUEST, PP_WRITE, 1000000);
    double t0 = tu_now_ms();
    int rc = pl_insert(&r, l, &c);
    double took = tu_now_ms() - t0;
    pp_disarm(p);
    ck_assert_msg(rc == PL_ECONNECT || rc == PL_EUNKNOWN, "%s", pl_strerror(rc));
    fprintf(stderr, "keyed_write_retries: a 400 ms budget against a server cutting every attempt: %.0f ms\n", took);
    ck_assert_msg(took < 400 + 2 * STMT_TIMEOUT_MS + 2500, "took %.0f ms", took);
    ck_assert_int_eq(rows_keyed("retry-budget"), 0);
    tu_ok(pl_insert(&r, l, &c)); /* and the handle works */
    ck_assert_int_eq(rows_keyed("retry-budget"), 1);
    pl_close(l);
    pl_close(off);
    oracle_close();
    pp_stop(p);
}
END_TEST

int main(void)
{
    tu_require_servers();
    setvbuf(stdout, NULL, _IOLBF, 0); /* Check forks: what a failed test printed stays */
    Suite *s = suite_create("hostile");
    TCase *tc = tu_tcase("redis", 240);
    tcase_add_test(tc, test_hostile_redis);
    suite_add_tcase(s, tc);
    tc = tu_tcase("postgres", 240);
    tcase_add_test(tc, test_pg_proxy);
    tcase_add_test(tc, test_keyed_write_retries);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
