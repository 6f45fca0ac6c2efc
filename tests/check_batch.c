/* Batches and idempotency: pl_insert_batch is all or nothing with receipts
 * in array order; idempotency keys make retries land once, also when the
 * connection breaks in the middle of the statement; pl_import_batch.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define require(expr, ...)                                                  \
    do {                                                                    \
        if (!(expr))                                                        \
            ck_abort_msg(__VA_ARGS__);                                      \
    } while (0)

#define USEC INT64_C(1000000)
#define HOUR_USEC (INT64_C(3600) * USEC)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Everything a write could have left behind for entities LIKE pattern:
 * ledger rows, heads, latest-state rows, idempotency rows. */
static long long traces(const char *like)
{
    return tu_q1("SELECT (SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE $1)"
                 " + (SELECT count(*) FROM entity_head WHERE entity_id LIKE $1)"
                 " + (SELECT count(*) FROM provenance_current WHERE entity_id LIKE $1)"
                 " + (SELECT count(*) FROM provenance_idempotency i JOIN provenance_ledger p"
                 "    ON p.id = i.id WHERE p.entity_id LIKE $1)",
                 like);
}

static long long rows_of(const char *entity)
{
    return tu_q1("SELECT count(*) FROM provenance_ledger WHERE entity_id = $1", entity);
}

/* ------------------------------------------------------------------------ */
/* All or nothing                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(invalid_change_in_the_middle)
{
    pl_ledger *l = tu_open(0);
    pl_change cs[10];
    char ent[10][32];
    for (int i = 0; i < 10; i++) {
        snprintf(ent[i], sizeof ent[i], "aon-inv-%d", i);
        cs[i] = tu_change(ent[i], "f", "1");
    }
    cs[4].new_value = "{\"a\": 1, \"a\": 2}"; /* duplicate key */
    pl_receipt out[10];
    memset(out, 0x5a, sizeof out);
    int rc = pl_insert_batch(out, l, cs, 10);
    ck_assert_msg(rc == PL_EINVAL, "-> %d: %s", rc, pl_errmsg());
    ck_assert_msg(strstr(pl_errmsg(), "changes[4]") != NULL, "message does not name index 4: %s",
                  pl_errmsg());
    ck_assert_int_eq(traces("aon-inv-%"), 0);

    cs[4].new_value = "1";
    cs[7].entity_id = ""; /* other kinds of bad input, other indexes */
    rc = pl_insert_batch(NULL, l, cs, 10);
    ck_assert_int_eq(rc, PL_EINVAL);
    ck_assert_msg(strstr(pl_errmsg(), "changes[7]") != NULL, "%s", pl_errmsg());
    cs[7].entity_id = ent[7];
    cs[9].valid_from = PL_TIME_MAX; /* valid_from >= valid_to (infinity is fine) */
    cs[9].valid_to = PL_TIME_MIN;
    rc = pl_insert_batch(NULL, l, cs, 10);
    ck_assert_int_eq(rc, PL_EINVAL);
    ck_assert_msg(strstr(pl_errmsg(), "changes[9]") != NULL, "%s", pl_errmsg());
    ck_assert_int_eq(traces("aon-inv-%"), 0);

    /* Two changes with one idempotency key in one batch. */
    cs[9] = tu_change(ent[9], "f", "1");
    cs[2].idempotency_key = "aon-inv-key";
    cs[6].idempotency_key = "aon-inv-key";
    rc = pl_insert_batch(NULL, l, cs, 10);
    ck_assert_int_eq(rc, PL_EINVAL);
    ck_assert_msg(strstr(pl_errmsg(), "changes[6]") != NULL || strstr(pl_errmsg(), "changes[2]"),
                  "%s", pl_errmsg());
    ck_assert_int_eq(traces("aon-inv-%"), 0);

    /* n = 0 is a no-op; NULL changes with n > 0 are not. */
    tu_ok(pl_insert_batch(NULL, l, NULL, 0));
    ck_assert_int_eq(pl_insert_batch(NULL, l, NULL, 3), PL_EINVAL);
    ck_assert_int_eq(pl_insert_batch(NULL, l, cs, PL_MAX_BATCH + 1), PL_EINVAL);

    /* And the batch, once right, lands whole. */
    cs[6].idempotency_key = "aon-inv-key-2";
    tu_ok(pl_insert_batch(out, l, cs, 10));
    ck_assert_int_eq(tu_q1("SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE $1", "aon-inv-%"),
                     10);
    pl_close(l);
}
END_TEST

/* valid_to before the transaction time the server assigns: only the server
 * can tell. The whole batch rolls back. */
static void past_valid_to_batch(const char *prefix, pl_change *cs, char ent[10][32])
{
    for (int i = 0; i < 10; i++) {
        snprintf(ent[i], 32, "%s-%d", prefix, i % 4);
        cs[i] = tu_change(ent[i], i % 2 ? "f" : "g", "\"v\"");
    }
    cs[3].idempotency_key = NULL;
    cs[5].valid_to = pl_time_now() - HOUR_USEC; /* valid_from = the transaction time */
}

START_TEST(server_side_failure_writes_nothing)
{
    pl_ledger *l = tu_open(0);
    pl_change cs[10];
    char ent[10][32];
    /* Entities that already exist keep exactly what they had. */
    pl_change seed = tu_change("aon-srv-0", "f", "\"seed\"");
    tu_ok(pl_insert(NULL, l, &seed));
    long long before = traces("aon-srv-%");
    long long head = tu_q1("SELECT (extract(epoch FROM last_tt) * 1000000)::bigint FROM entity_head "
                           "WHERE entity_id = $1",
                           "aon-srv-0");
    past_valid_to_batch("aon-srv", cs, ent);
    cs[1].idempotency_key = "aon-srv-key";
    pl_receipt out[10];
    int rc = pl_insert_batch(out, l, cs, 10);
    ck_assert_msg(rc == PL_EINVAL, "-> %d (%s): %s", rc, pl_strerror(rc), pl_errmsg());
    ck_assert_msg(strstr(pl_errmsg(), "valid_to") != NULL, "%s", pl_errmsg());
    ck_assert_int_eq(traces("aon-srv-%"), before);
    ck_assert_int_eq(tu_q1("SELECT (extract(epoch FROM last_tt) * 1000000)::bigint FROM entity_head "
                           "WHERE entity_id = $1",
                           "aon-srv-0"),
                     head);
    /* The key was not consumed: the corrected batch lands. */
    cs[5].valid_to = PL_TIME_INFINITY;
    tu_ok(pl_insert_batch(out, l, cs, 10));
    ck_assert_int_eq(tu_q1("SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE $1", "aon-srv-%"),
                     11);
    /* Single inserts fail the same way. */
    cs[5].valid_to = pl_time_now() - HOUR_USEC;
    ck_assert_int_eq(pl_insert(NULL, l, &cs[5]), PL_EINVAL);
    ck_assert_int_eq(tu_q1("SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE $1", "aon-srv-%"),
                     11);
    pl_close(l);
}
END_TEST

/* provledger.h: "on #PL_EINVAL the message names the index". */
START_TEST(server_side_einval_names_the_index)
{
    pl_ledger *l = tu_open(0);
    pl_change cs[10];
    char ent[10][32];
    past_valid_to_batch("aon-idx", cs, ent);
    int rc = pl_insert_batch(NULL, l, cs, 10);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", pl_errmsg());
    pl_close(l);
    ck_assert_int_eq(rc, PL_EINVAL);
    ck_assert_msg(strstr(msg, "changes[5]") != NULL,
                  "PL_EINVAL from the server does not name the index: \"%s\"", msg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Receipts and order                                                        */
/* ------------------------------------------------------------------------ */

/* Receipt i describes changes[i]: the stored record with that id and time
 * is that change. Within the batch, each entity's times increase in array
 * order. */
static void check_receipts(pl_ledger *l, const pl_change *cs, const pl_receipt *out, size_t n)
{
    PGconn *pg = tu_raw_open();
    /* One round trip: the stored (entity, field, value) of every id. */
    size_t cap = n * 24 + 16;
    char *ids = malloc(cap);
    ck_assert_ptr_nonnull(ids);
    size_t at = (size_t)snprintf(ids, cap, "{");
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(ids + at, cap - at, "%s%" PRId64, i ? "," : "", out[i].id);
    snprintf(ids + at, cap - at, "}");
    const char *p[1] = {ids};
    PGresult *r = tu_raw_q(pg,
                           "SELECT u.ord, p.entity_id, p.field_name, p.new_value::text,"
                           " (extract(epoch FROM p.transaction_time) * 1000000)::bigint"
                           " FROM unnest($1::bigint[]) WITH ORDINALITY u(id, ord)"
                           " LEFT JOIN provenance_ledger p ON p.id = u.id ORDER BY u.ord",
                           1, p);
    ck_assert_int_eq(PQntuples(r), (int)n);
    for (size_t i = 0; i < n; i++) {
        require(!PQgetisnull(r, (int)i, 1), "receipt %zu: id %" PRId64 " is not in the ledger", i,
                out[i].id);
        require(strcmp(PQgetvalue(r, (int)i, 1), cs[i].entity_id) == 0 &&
                    strcmp(PQgetvalue(r, (int)i, 2), cs[i].field_name) == 0,
                "receipt %zu names %s.%s, the change is %s.%s", i, PQgetvalue(r, (int)i, 1),
                PQgetvalue(r, (int)i, 2), cs[i].entity_id, cs[i].field_name);
        require(atoll(PQgetvalue(r, (int)i, 4)) == out[i].transaction_time,
                "receipt %zu: time %" PRId64 ", stored %s", i, out[i].transaction_time,
                PQgetvalue(r, (int)i, 4));
        for (size_t j = 0; j < i; j++)
            require(out[j].id != out[i].id, "receipts %zu and %zu share id %" PRId64, j, i, out[i].id);
    }
    PQclear(r);
    free(ids);
    PQfinish(pg);
    (void)l;
}

static void check_entity_times_increase(const pl_change *cs, const pl_receipt *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(cs[i].entity_id, cs[j].entity_id) == 0) {
                require(out[j].transaction_time > out[i].transaction_time,
                        "changes %zu and %zu of %s: times %" PRId64 " then %" PRId64, i, j,
                        cs[i].entity_id, out[i].transaction_time, out[j].transaction_time);
                break; /* the next one of this entity is compared in its turn */
            }
}

START_TEST(receipts_in_array_order)
{
    pl_ledger *l = tu_open(0);
    enum { N = 60 };
    pl_change cs[N];
    char ent[N][32], field[N][16], value[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(ent[i], sizeof ent[i], "order-%d", (i * 7) % 5); /* interleaved entities */
        snprintf(field[i], sizeof field[i], "f%d", i % 3);
        snprintf(value[i], sizeof value[i], "{\"i\": %d}", i);
        cs[i] = tu_change(ent[i], field[i], value[i]);
    }
    pl_receipt out[N];
    tu_ok(pl_insert_batch(out, l, cs, N));
    check_receipts(l, cs, out, N);
    check_entity_times_increase(cs, out, N);

    /* The latest value of each field is the last one in array order. */
    for (int e = 0; e < 5; e++) {
        for (int f = 0; f < 3; f++) {
            int last = -1;
            for (int i = 0; i < N; i++)
                if ((i * 7) % 5 == e && i % 3 == f)
                    last = i;
            if (last < 0)
                continue;
            pl_result *r = NULL;
            tu_ok(pl_current(&r, l, ent[last], field[last], 0));
            ck_assert_int_eq(pl_result_get(r, 0)->id, out[last].id);
            ck_assert_str_eq(pl_result_get(r, 0)->new_value, value[last]);
            pl_result_free(r);
        }
    }
    /* A second batch's times come after the first's for each entity. */
    pl_receipt out2[N];
    tu_ok(pl_insert_batch(out2, l, cs, N));
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (strcmp(ent[i], ent[j]) == 0)
                require(out2[j].transaction_time > out[i].transaction_time,
                        "second batch change %d not after first batch change %d", j, i);
    pl_close(l);
}
END_TEST

START_TEST(many_entities_one_batch)
{
    pl_ledger *l = tu_open(0);
    enum { N = 1500 };
    pl_change *cs = calloc(N, sizeof *cs);
    char(*ent)[32] = calloc(N, sizeof *ent);
    pl_receipt *out = calloc(N, sizeof *out);
    ck_assert(cs && ent && out);
    for (int i = 0; i < N; i++) {
        snprintf(ent[i], sizeof ent[i], "many-%04d", N - i); /* not in key order */
        cs[i] = tu_change(ent[i], "f", "true");
    }
    tu_ok(pl_insert_batch(out, l, cs, N));
    check_receipts(l, cs, out, N);
    ck_assert_int_eq(tu_q1("SELECT count(*) FROM entity_head WHERE entity_id LIKE $1 AND record_count = 1",
                           "many-%"),
                     N);
    ck_assert_int_eq(tu_q1("SELECT count(*) FROM provenance_current WHERE entity_id LIKE $1", "many-%"), N);
    free(cs);
    free(ent);
    free(out);
    pl_close(l);
}
END_TEST

START_TEST(twenty_thousand_changes)
{
    pl_ledger *l = tu_open(0);
    enum { N = 20000, ENTITIES = 50 };
    pl_change *cs = calloc(N, sizeof *cs);
    char(*ent)[32] = calloc(ENTITIES, sizeof *ent);
    char(*val)[32] = calloc(N, sizeof *val);
    pl_receipt *out = calloc(N, sizeof *out);
    ck_assert(cs && ent && val && out);
    for (int e = 0; e < ENTITIES; e++)
        snprintf(ent[e], sizeof ent[e], "big-%02d", e);
    for (int i = 0; i < N; i++) {
        snprintf(val[i], sizeof val[i], "%d", i);
        cs[i] = tu_change(ent[i % ENTITIES], (i / ENTITIES) % 2 ? "a" : "b", val[i]);
    }
    tu_ok(pl_insert_batch(out, l, cs, N));

    /* Per entity, times strictly increase in array order; ids are unique. */
    pl_time last[ENTITIES];
    for (int e = 0; e < ENTITIES; e++)
        last[e] = PL_TIME_MIN;
    for (int i = 0; i < N; i++) {
        require(out[i].transaction_time > last[i % ENTITIES], "change %d: time not increasing", i);
        last[i % ENTITIES] = out[i].transaction_time;
    }
    ck_assert_int_eq(tu_q1("SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE $1", "big-%"), N);
    ck_assert_int_eq(tu_q1("SELECT count(DISTINCT id) FROM provenance_ledger WHERE entity_id LIKE $1", "big-%"),
                     N);
    ck_assert_int_eq(tu_q1("SELECT sum(record_count) FROM entity_head WHERE entity_id LIKE $1", "big-%"), N);
    /* Each entity's head holds the time of its last change (the last
     * ENTITIES changes are one per entity). */
    for (int e = 0; e < ENTITIES; e++) {
        long long head = tu_q1("SELECT (extract(epoch FROM last_tt) * 1000000)::bigint FROM entity_head "
                               "WHERE entity_id = $1",
                               ent[e]);
        require(head == last[e], "%s: head %lld, last receipt %" PRId64, ent[e], head, last[e]);
    }
    /* Receipts match the stored rows, in one comparison on the server:
     * value i was stored with receipt i. */
    PGconn *pg = tu_raw_open();
    size_t cap = (size_t)N * 24 + 16;
    char *ids = malloc(cap);
    ck_assert_ptr_nonnull(ids);
    size_t at = (size_t)snprintf(ids, cap, "{");
    for (int i = 0; i < N; i++)
        at += (size_t)snprintf(ids + at, cap - at, "%s%" PRId64, i ? "," : "", out[i].id);
    snprintf(ids + at, cap - at, "}");
    const char *p[1] = {ids};
    ck_assert_int_eq(tu_raw_ll(pg,
                               "SELECT count(*) FROM unnest($1::bigint[]) WITH ORDINALITY u(id, ord)"
                               " JOIN provenance_ledger p ON p.id = u.id"
                               " WHERE p.new_value = to_jsonb(u.ord - 1)",
                               1, p),
                     N);
    free(ids);
    PQfinish(pg);
    pl_stats_info st;
    tu_ok(pl_stats(&st, l, sizeof st));
    ck_assert_uint_eq(st.inserts, N);
    free(cs);
    free(ent);
    free(val);
    free(out);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Idempotency keys                                                          */
/* ------------------------------------------------------------------------ */

START_TEST(same_key_twice_lands_once)
{
    pl_ledger *l = tu_open(0);
    pl_change c = tu_change("idem-1", "f", "{\"x\": 1}");
    c.idempotency_key = "idem-1-a";
    c.metadata = "{\"m\": true}";
    c.change_reason = "because";
    pl_receipt a, b;
    tu_ok(pl_insert(&a, l, &c));
    tu_ok(pl_insert(&b, l, &c));
    ck_assert_int_eq(a.id, b.id);
    ck_assert_int_eq(a.transaction_time, b.transaction_time);
    ck_assert_int_eq(rows_of("idem-1"), 1);

    /* Same content written differently (JSON key order) is the same change. */
    pl_change d = c;
    d.metadata = "{ \"m\" : true }";
    tu_ok(pl_insert(&b, l, &d));
    ck_assert_int_eq(b.id, a.id);

    /* Through a batch as well, and a later write gets a later time. */
    c.new_value = "{\"x\": 2}";
    c.idempotency_key = "idem-1-b";
    pl_receipt r1[1], r2[1];
    tu_ok(pl_insert_batch(r1, l, &c, 1));
    tu_ok(pl_insert_batch(r2, l, &c, 1));
    ck_assert_int_eq(r1[0].id, r2[0].id);
    ck_assert_int_eq(r1[0].transaction_time, r2[0].transaction_time);
    ck_assert_int_gt(r1[0].transaction_time, a.transaction_time);
    ck_assert_int_eq(rows_of("idem-1"), 2);

    /* A retry does not change what is current. */
    pl_result *r = NULL;
    tu_ok(pl_current(&r, l, "idem-1", "f", 0));
    ck_assert_int_eq(pl_result_get(r, 0)->id, r1[0].id);
    pl_result_free(r);
    c.new_value = "{\"x\": 1}";
    c.idempotency_key = "idem-1-a";
    tu_ok(pl_insert(NULL, l, &c));
    tu_ok(pl_current(&r, l, "idem-1", "f", 0));
    ck_assert_int_eq(pl_result_get(r, 0)->id, r1[0].id);
    pl_result_free(r);
    pl_close(l);
}
END_TEST

START_TEST(same_key_other_content_conflicts)
{
    pl_ledger *l = tu_open(0);
    pl_change c = tu_change("idem-2", "f", "1");
    c.idempotency_key = "idem-2-key";
    pl_receipt a;
    tu_ok(pl_insert(&a, l, &c));

    /* Every part of the change is part of what the key stands for. */
    pl_change v[6];
    for (int i = 0; i < 6; i++)
        v[i] = c;
    v[0].new_value = "2";
    v[1].field_name = "g";
    v[2].entity_id = "idem-2-other";
    v[3].valid_from = pl_time_now() - HOUR_USEC;
    v[4].change_reason = "another reason";
    v[5].metadata = "{\"k\": 1}";
    for (int i = 0; i < 6; i++) {
        pl_receipt b = {-1, -1};
        int rc = pl_insert(&b, l, &v[i]);
        ck_assert_msg(rc == PL_ECONFLICT, "variant %d -> %d (%s): %s", i, rc, pl_strerror(rc),
                      pl_errmsg());
        ck_assert_msg(strstr(pl_errmsg(), "idem-2-key") != NULL, "%s", pl_errmsg());
    }
    ck_assert_int_eq(rows_of("idem-2"), 1);
    ck_assert_int_eq(rows_of("idem-2-other"), 0);

    /* In a batch: the conflicting change takes the good ones down with it. */
    pl_change batch[3] = {tu_change("idem-2-b", "f", "1"), v[0], tu_change("idem-2-c", "f", "1")};
    batch[2].idempotency_key = "idem-2-fresh";
    ck_assert_int_eq(pl_insert_batch(NULL, l, batch, 3), PL_ECONFLICT);
    ck_assert_int_eq(traces("idem-2-b"), 0);
    ck_assert_int_eq(traces("idem-2-c"), 0);
    ck_assert_int_eq(rows_of("idem-2"), 1);
    /* ...and the fresh key in it was not consumed. */
    pl_receipt r;
    tu_ok(pl_insert(&r, l, &batch[2]));
    ck_assert_int_eq(rows_of("idem-2-c"), 1);
    pl_close(l);
}
END_TEST

START_TEST(retried_batch_lands_once)
{
    pl_ledger *l = tu_open(0);
    enum { N = 10 };
    pl_change cs[N];
    char key[N][32], val[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(key[i], sizeof key[i], "retry-k%d", i);
        snprintf(val[i], sizeof val[i], "%d", i);
        cs[i] = tu_change(i % 2 ? "retry-a" : "retry-b", "f", val[i]);
        cs[i].idempotency_key = key[i];
    }
    /* The first half landed earlier, one at a time (say the client died
     * halfway through sending). */
    pl_receipt early[N / 2];
    for (int i = 0; i < N / 2; i++)
        tu_ok(pl_insert(&early[i], l, &cs[i]));
    pl_receipt out[N];
    tu_ok(pl_insert_batch(out, l, cs, N));
    for (int i = 0; i < N / 2; i++) {
        ck_assert_int_eq(out[i].id, early[i].id);
        ck_assert_int_eq(out[i].transaction_time, early[i].transaction_time);
    }
    check_receipts(l, cs, out, N);
    ck_assert_int_eq(tu_q1("SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE $1", "retry-%"), N);

    /* The whole batch again: nothing new, the same receipts. */
    pl_receipt again[N];
    tu_ok(pl_insert_batch(again, l, cs, N));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(again[i].id, out[i].id);
        ck_assert_int_eq(again[i].transaction_time, out[i].transaction_time);
    }
    ck_assert_int_eq(tu_q1("SELECT count(*) FROM provenance_ledger WHERE entity_id LIKE $1", "retry-%"), N);
    ck_assert_int_eq(tu_q1("SELECT sum(record_count) FROM entity_head WHERE entity_id LIKE $1", "retry-%"), N);
    pl_close(l);
}
END_TEST

START_TEST(mixed_keyed_and_unkeyed)
{
    pl_ledger *l = tu_open(0);
    enum { N = 6 };
    pl_change cs[N];
    char key[N][32], val[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(key[i], sizeof key[i], "mixed-k%d", i);
        snprintf(val[i], sizeof val[i], "%d", i);
        cs[i] = tu_change("mixed-1", i % 3 ? "f" : "g", val[i]);
        cs[i].idempotency_key = i % 2 == 0 ? key[i] : NULL;
    }
    pl_receipt a[N], b[N];
    tu_ok(pl_insert_batch(a, l, cs, N));
    check_receipts(l, cs, a, N);
    check_entity_times_increase(cs, a, N);
    /* Again: the keyed changes land once, the unkeyed ones twice. */
    tu_ok(pl_insert_batch(b, l, cs, N));
    for (int i = 0; i < N; i++) {
        if (cs[i].idempotency_key)
            ck_assert_int_eq(b[i].id, a[i].id);
        else
            ck_assert_int_gt(b[i].transaction_time, a[N - 1].transaction_time);
    }
    check_receipts(l, cs, b, N);
    ck_assert_int_eq(rows_of("mixed-1"), N + N / 2);
    ck_assert_int_eq(tu_q1("SELECT record_count FROM entity_head WHERE entity_id = $1", "mixed-1"), N + N / 2);
    /* The latest state follows the ledger: the newest "f" is the unkeyed
     * change 5 of the second batch. */
    pl_result *r = NULL;
    tu_ok(pl_current(&r, l, "mixed-1", "f", 0));
    ck_assert_int_eq(pl_result_get(r, 0)->id, b[5].id);
    pl_result_free(r);
    pl_close(l);
}
END_TEST

typedef struct racer {
    pl_ledger *l;
    pthread_barrier_t *bar;
    int rounds;
    pl_receipt *out;
    int *rc;
} racer;

static void *racer_main(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        char key[32];
        snprintf(key, sizeof key, "race-k%d", i);
        pl_change c = tu_change("race-1", "f", "{\"same\": true}");
        c.idempotency_key = key;
        pthread_barrier_wait(r->bar);
        r->rc[i] = pl_insert(&r->out[i], r->l, &c);
    }
    return NULL;
}

START_TEST(concurrent_retries_land_once)
{
    enum { ROUNDS = 60 };
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 4;
    pl_ledger *l = tu_open_cfg(&cfg);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    pl_receipt out[2][ROUNDS];
    int rc[2][ROUNDS];
    racer r[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        r[k] = (racer){l, &bar, ROUNDS, out[k], rc[k]};
        ck_assert_int_eq(pthread_create(&th[k], NULL, racer_main, &r[k]), 0);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < ROUNDS; i++) {
        require(rc[0][i] == PL_OK && rc[1][i] == PL_OK, "round %d: %d and %d", i, rc[0][i], rc[1][i]);
        require(out[0][i].id == out[1][i].id && out[0][i].transaction_time == out[1][i].transaction_time,
                "round %d: receipts %" PRId64 " and %" PRId64 " differ", i, out[0][i].id, out[1][i].id);
    }
    ck_assert_int_eq(rows_of("race-1"), ROUNDS);
    ck_assert_int_eq(tu_q1("SELECT count(DISTINCT idempotency_key) FROM provenance_ledger WHERE entity_id = $1",
                           "race-1"),
                     ROUNDS);
    pl_close(l);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The connection breaks while the library's statement waits                */
/* ------------------------------------------------------------------------ */

typedef struct pending_insert {
    pl_ledger *l;
    const char *entity;
    const char *key;
    atomic_int done;
    int rc;
    pl_receipt receipt;
    char msg[1024];
} pending_insert;

static void *pending_main(void *arg)
{
    pending_insert *p = arg;
    pl_change c = tu_change(p->entity, "f", "\"second\"");
    c.idempotency_key = p->key;
    p->rc = pl_insert(&p->receipt, p->l, &c);
    snprintf(p->msg, sizeof p->msg, "%s", pl_errmsg());
    atomic_store(&p->done, 1);
    return NULL;
}

/* The library's session blocked behind `holder`'s lock, other than
 * `except`; 0 when there is none. */
static long long blocked_behind(PGconn *pg, int holder, long long except)
{
    char h[16], e[24];
    snprintf(h, sizeof h, "%d", holder);
    snprintf(e, sizeof e, "%lld", except);
    const char *p[2] = {h, e};
    PGresult *r = tu_raw_q(pg,
                           "SELECT pid FROM pg_stat_activity WHERE application_name = 'libprovledger'"
                           " AND wait_event_type = 'Lock' AND $1::int = ANY (pg_blocking_pids(pid))"
                           " AND pid <> $2::int",
                           2, p);
    long long pid = PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return pid;
}

/* Holds entity p->entity's head row, lets the library's pl_insert block in
 * pl_append, terminates that backend, then lets go. Returns whether a
 * second attempt was seen blocking (the library retried). */
static int break_mid_statement(pl_ledger *l, pending_insert *p)
{
    PGconn *holder = tu_raw_open();
    PGconn *admin = tu_raw_open();
    tu_raw_exec(holder, "BEGIN");
    const char *ep[1] = {p->entity};
    PQclear(tu_raw_q(holder, "SELECT entity_id FROM entity_head WHERE entity_id = $1 FOR UPDATE", 1, ep));
    int hpid = PQbackendPID(holder);

    pthread_t th;
    p->l = l;
    atomic_init(&p->done, 0);
    ck_assert_int_eq(pthread_create(&th, NULL, pending_main, p), 0);
    long long victim = 0;
    for (int i = 0; i < 1000 && !victim; i++) {
        victim = blocked_behind(admin, hpid, 0);
        if (!victim)
            tu_sleep_ms(10);
    }
    ck_assert_msg(victim != 0, "the library's pl_insert never blocked behind the lock");
    char v[24];
    snprintf(v, sizeof v, "%lld", victim);
    const char *pv[1] = {v};
    ck_assert_int_eq(tu_raw_ll(admin, "SELECT pg_terminate_backend($1::int)::int", 1, pv), 1);

    /* Either the call returns, or its retry blocks behind the lock again. */
    int retried = 0;
    for (int i = 0; i < 500 && !atomic_load(&p->done) && !retried; i++) {
        retried = blocked_behind(admin, hpid, victim) != 0;
        if (!retried)
            tu_sleep_ms(10);
    }
    tu_raw_exec(holder, "COMMIT");
    pthread_join(th, NULL);
    PQfinish(holder);
    PQfinish(admin);
    return retried;
}

START_TEST(broken_mid_statement_keyed_lands_once)
{
    pl_ledger *l = tu_open(0);
    pl_change first = tu_change("x-break-k", "f", "\"first\"");
    tu_ok(pl_insert(NULL, l, &first));
    pending_insert p;
    memset(&p, 0, sizeof p);
    p.entity = "x-break-k";
    p.key = "x-break-key";
    int retried = break_mid_statement(l, &p);
    ck_assert_msg(p.rc == PL_OK, "keyed pl_insert after its backend was killed -> %d (%s): %s", p.rc,
                  pl_strerror(p.rc), p.msg);
    ck_assert_msg(retried, "the library did not retry the keyed write");
    ck_assert_int_eq(rows_of("x-break-k"), 2);
    ck_assert_int_eq(tu_q1("SELECT id FROM provenance_ledger WHERE idempotency_key = $1", "x-break-key"),
                     p.receipt.id);
    /* And a retry by the caller returns the same receipt. */
    pl_change again = tu_change("x-break-k", "f", "\"second\"");
    again.idempotency_key = "x-break-key";
    pl_receipt r;
    tu_ok(pl_insert(&r, l, &again));
    ck_assert_int_eq(r.id, p.receipt.id);
    ck_assert_int_eq(rows_of("x-break-k"), 2);
    pl_close(l);
}
END_TEST

START_TEST(broken_mid_statement_unkeyed_is_unknown)
{
    pl_ledger *l = tu_open(0);
    pl_change first = tu_change("x-break-u", "f", "\"first\"");
    tu_ok(pl_insert(NULL, l, &first));
    pending_insert p;
    memset(&p, 0, sizeof p);
    p.entity = "x-break-u";
    p.key = NULL;
    int retried = break_mid_statement(l, &p);
    ck_assert_msg(p.rc == PL_EUNKNOWN, "unkeyed pl_insert after its backend was killed -> %d (%s): %s",
                  p.rc, pl_strerror(p.rc), p.msg);
    /* The library must not have run it again without a key... */
    ck_assert_msg(!retried, "the library retried a write without an idempotency key");
    /* ...and the database says the killed statement wrote nothing: it was
     * waiting for the lock when it died. */
    ck_assert_int_eq(rows_of("x-break-u"), 1);
    ck_assert_int_eq(tu_q1("SELECT record_count FROM entity_head WHERE entity_id = $1", "x-break-u"), 1);
    /* The handle goes on working. */
    pl_change next = tu_change("x-break-u", "f", "\"third\"");
    tu_ok(pl_insert(NULL, l, &next));
    ck_assert_int_eq(rows_of("x-break-u"), 2);
    pl_close(l);
    /* The message says what happened, including the cause. */
    ck_assert_msg(strstr(p.msg, "may or may not have committed") != NULL, "%s", p.msg);
    ck_assert_msg(strstr(p.msg, "PostgreSQL") != NULL,
                  "PL_EUNKNOWN message lost the cause: \"%s\"", p.msg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* pl_import_batch                                                           */
/* ------------------------------------------------------------------------ */

static pl_ledger *open_import(int allow)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.allow_import = allow;
    return tu_open_cfg(&cfg);
}

START_TEST(import_needs_opt_in)
{
    pl_ledger *l = open_import(0);
    pl_change c = tu_change("imp-0", "f", "1");
    pl_time t = pl_time_now() - HOUR_USEC;
    ck_assert_int_eq(pl_import_batch(NULL, l, &c, &t, 1), PL_EPERM);
    ck_assert_msg(strstr(pl_errmsg(), "allow_import") != NULL, "%s", pl_errmsg());
    ck_assert_int_eq(traces("imp-0"), 0);
    pl_close(l);
}
END_TEST

START_TEST(import_ordering_rules)
{
    pl_ledger *l = open_import(1);
    pl_time now = pl_time_now();
    pl_time t[4];
    pl_change cs[4];
    /* History of two entities, interleaved; the same instant for two
     * entities is fine; one long ago (its own monthly partition). */
    cs[0] = tu_change("imp-a", "f", "\"a0\"");
    cs[1] = tu_change("imp-b", "f", "\"b0\"");
    cs[2] = tu_change("imp-a", "f", "\"a1\"");
    cs[3] = tu_change("imp-b", "f", "\"b1\"");
    tu_ok(pl_time_parse(&t[0], "2003-02-01T10:00:00.000001Z"));
    t[1] = t[0];
    t[2] = now - 2 * HOUR_USEC;
    t[3] = now - HOUR_USEC;
    pl_receipt out[4];
    tu_ok(pl_import_batch(out, l, cs, t, 4));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(out[i].transaction_time, t[i]);
    check_receipts(l, cs, out, 4);
    /* As-of answers see the imported history. */
    pl_result *r = NULL;
    tu_ok(pl_as_of(&r, l, "imp-a", "f", t[0] + USEC, PL_TIME_ANY, 0));
    ck_assert_str_eq(pl_result_get(r, 0)->new_value, "\"a0\"");
    ck_assert_int_eq(pl_result_get(r, 0)->valid_from, t[0]); /* defaults to the transaction time */
    pl_result_free(r);
    ck_assert_int_eq(pl_as_of(&r, l, "imp-a", "f", t[0] - 1, PL_TIME_ANY, 0), PL_NOT_FOUND);
    tu_ok(pl_current(&r, l, "imp-b", "f", 0));
    ck_assert_str_eq(pl_result_get(r, 0)->new_value, "\"b1\"");
    pl_result_free(r);

    long long before = traces("imp-%");
    /* Not increasing within the batch. */
    pl_change bad[2] = {tu_change("imp-c", "f", "1"), tu_change("imp-c", "f", "2")};
    pl_time bt[2] = {now - 3 * HOUR_USEC, now - 3 * HOUR_USEC};
    ck_assert_int_eq(pl_import_batch(NULL, l, bad, bt, 2), PL_ECONFLICT);
    bt[1] = bt[0] - 1;
    ck_assert_int_eq(pl_import_batch(NULL, l, bad, bt, 2), PL_ECONFLICT);
    /* Not after the entity's last time. */
    pl_change late = tu_change("imp-a", "f", "\"late\"");
    pl_time lt = t[2];
    ck_assert_int_eq(pl_import_batch(NULL, l, &late, &lt, 1), PL_ECONFLICT);
    lt = t[2] - HOUR_USEC;
    ck_assert_int_eq(pl_import_batch(NULL, l, &late, &lt, 1), PL_ECONFLICT);
    /* The time in the message is RFC 3339, as the library prints times. */
    char when[PL_TIME_BUFSIZE];
    pl_time_format(when, sizeof when, lt);
    ck_assert_msg(strstr(pl_errmsg(), when) != NULL, "no %s in: %s", when, pl_errmsg());
    /* In the server's future. */
    lt = now + HOUR_USEC;
    /* Only the server knows its clock, so this is its refusal (PLC02), the
     * same conflict as a time not after the entity's last one. */
    int rc = pl_import_batch(NULL, l, &late, &lt, 1);
    ck_assert_msg(rc == PL_ECONFLICT, "future import -> %d: %s", rc, pl_errmsg());
    ck_assert_msg(strstr(pl_errmsg(), "entity imp-a: ") && strstr(pl_errmsg(), "in the future"),
                  "future import: %s", pl_errmsg());
    /* Not an instant. */
    lt = PL_TIME_NOW;
    ck_assert_int_eq(pl_import_batch(NULL, l, &late, &lt, 1), PL_EINVAL);
    lt = PL_TIME_ANY;
    ck_assert_int_eq(pl_import_batch(NULL, l, &late, &lt, 1), PL_EINVAL);
    ck_assert_int_eq(pl_import_batch(NULL, l, &late, NULL, 1), PL_EINVAL);
    /* A good change in the same batch as a bad one is not written. */
    pl_change two[2] = {tu_change("imp-d", "f", "1"), late};
    pl_time tt2[2] = {now - HOUR_USEC, t[2] - 1};
    ck_assert_int_eq(pl_import_batch(NULL, l, two, tt2, 2), PL_ECONFLICT);
    ck_assert_int_eq(traces("imp-%"), before);

    /* After an import, ordinary writes come later still. */
    pl_receipt w;
    pl_change next = tu_change("imp-b", "f", "\"b2\"");
    tu_ok(pl_insert(&w, l, &next));
    ck_assert_int_gt(w.transaction_time, t[3]);
    ck_assert_int_gt(w.transaction_time, now);
    /* And an import after that must come after that write. */
    lt = w.transaction_time;
    ck_assert_int_eq(pl_import_batch(NULL, l, &next, &lt, 1), PL_ECONFLICT);
    ck_assert_int_eq(rows_of("imp-b"), 3);
    pl_close(l);
}
END_TEST

START_TEST(import_with_keys)
{
    pl_ledger *l = open_import(1);
    pl_time now = pl_time_now();
    pl_change c = tu_change("imp-k", "f", "1");
    c.idempotency_key = "imp-k-1";
    pl_time t = now - HOUR_USEC;
    pl_receipt a, b;
    tu_ok(pl_import_batch(&a, l, &c, &t, 1));
    tu_ok(pl_import_batch(&b, l, &c, &t, 1)); /* a retry */
    ck_assert_int_eq(a.id, b.id);
    ck_assert_int_eq(rows_of("imp-k"), 1);
    /* The same key at another time is another change. */
    pl_time t2 = now - HOUR_USEC / 2;
    ck_assert_int_eq(pl_import_batch(NULL, l, &c, &t2, 1), PL_ECONFLICT);
    ck_assert_int_eq(rows_of("imp-k"), 1);
    pl_close(l);
}
END_TEST

/* A retry is the same change when what is stored is the same, however it
 * was spelled: metadata NULL is {}, and JSON compares as jsonb. */
START_TEST(retry_compares_what_is_stored)
{
    pl_ledger *l = tu_open(0);
    pl_change c = tu_change("idem-spelled", "f", "{\"b\": 1, \"a\": [1, 2]}");
    c.idempotency_key = "idem-spelled-1";
    pl_receipt a, b, d;
    tu_ok(pl_insert(&a, l, &c));
    c.metadata = "{}";
    c.new_value = "{ \"a\":[1,2],\"b\":1 }";
    tu_ok(pl_insert(&b, l, &c));
    ck_assert_int_eq(a.id, b.id);
    ck_assert_int_eq(a.transaction_time, b.transaction_time);
    /* And the other way round. */
    c.idempotency_key = "idem-spelled-2";
    tu_ok(pl_insert(&a, l, &c));
    c.metadata = NULL;
    tu_ok(pl_insert(&d, l, &c));
    ck_assert_int_eq(a.id, d.id);
    ck_assert_int_eq(rows_of("idem-spelled"), 2);
    /* What is stored differently is another change. */
    c.metadata = "{\"x\": 1}";
    ck_assert_int_eq(pl_insert(NULL, l, &c), PL_ECONFLICT);
    ck_assert_int_eq(rows_of("idem-spelled"), 2);
    pl_close(l);
}
END_TEST

/* A key recorded before migration 4 (its hash of NULL metadata as sent)
 * still matches a retry spelled {} after the upgrade. */
START_TEST(retry_of_a_key_recorded_before_migration_4)
{
    pl_ledger *l = tu_open(0);
    pl_change c = tu_change("idem-legacy", "f", "1");
    c.idempotency_key = "idem-legacy-1";
    pl_receipt a, b;
    tu_ok(pl_insert(&a, l, &c));
    /* Migration 4 records the hash of the stored metadata, {}. */
    const char *recorded = "SELECT count(*) FROM provenance_idempotency WHERE idempotency_key = 'idem-legacy-1' "
                           "AND content_hash = pl_change_hash('idem-legacy', 'f', '1', NULL, NULL, 'infinity', "
                           "'test', NULL, %s, NULL)";
    char sql[1024];
    snprintf(sql, sizeof sql, recorded, "'{}'");
    ck_assert_int_eq(tu_sql_ll(sql), 1);
    /* Make it what migration 1 recorded, the hash of NULL as sent (the
     * table is append-only: only a superuser bypassing the guard can). */
    free(tu_sql("SET session_replication_role = replica; "
                "UPDATE provenance_idempotency SET content_hash = "
                "pl_change_hash('idem-legacy', 'f', '1', NULL, NULL, 'infinity', 'test', NULL, NULL, NULL) "
                "WHERE idempotency_key = 'idem-legacy-1'",
                0, NULL));
    snprintf(sql, sizeof sql, recorded, "NULL");
    ck_assert_int_eq(tu_sql_ll(sql), 1);
    c.metadata = "{}";
    tu_ok(pl_insert(&b, l, &c));
    ck_assert_int_eq(a.id, b.id);
    c.metadata = NULL;
    tu_ok(pl_insert(&b, l, &c));
    ck_assert_int_eq(a.id, b.id);
    ck_assert_int_eq(rows_of("idem-legacy"), 1);
    pl_close(l);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("batch");
    TCase *tc = tu_tcase("all_or_nothing", 60);
    tcase_add_test(tc, invalid_change_in_the_middle);
    tcase_add_test(tc, server_side_failure_writes_nothing);
    tcase_add_test(tc, server_side_einval_names_the_index);
    suite_add_tcase(s, tc);
    tc = tu_tcase("order", 120);
    tcase_add_test(tc, receipts_in_array_order);
    tcase_add_test(tc, many_entities_one_batch);
    tcase_add_test(tc, twenty_thousand_changes);
    suite_add_tcase(s, tc);
    tc = tu_tcase("idempotency", 60);
    tcase_add_test(tc, same_key_twice_lands_once);
    tcase_add_test(tc, same_key_other_content_conflicts);
    tcase_add_test(tc, retry_compares_what_is_stored);
    tcase_add_test(tc, retry_of_a_key_recorded_before_migration_4);
    tcase_add_test(tc, retried_batch_lands_once);
    tcase_add_test(tc, mixed_keyed_and_unkeyed);
    tcase_add_test(tc, concurrent_retries_land_once);
    suite_add_tcase(s, tc);
    tc = tu_tcase("broken_connection", 60);
    tcase_add_test(tc, broken_mid_statement_keyed_lands_once);
    tcase_add_test(tc, broken_mid_statement_unkeyed_is_unknown);
    suite_add_tcase(s, tc);
    tc = tu_tcase("import", 60);
    tcase_add_test(tc, import_needs_opt_in);
    tcase_add_test(tc, import_ordering_rules);
    tcase_add_test(tc, import_with_keys);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
