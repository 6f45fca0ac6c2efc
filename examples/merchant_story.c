/*
 * merchant_story: the design record's merchant-name story, told with
 * libprovledger's public API.
 *
 * A bank import records a card transaction with the merchant name the bank
 * sent ("AMZN MKTP US*2K4"). Later a user corrects the name to "Amazon Prime
 * Video", retroactively: the correction is true from the day of the purchase.
 * We also record that the transaction's category changes from next month.
 * Then we ask the ledger the questions an auditor asks:
 *   - what is true now?                       pl_current
 *   - what did we believe before the fix?     pl_as_of(T, PL_TIME_ANY)
 *   - what was true on the day of purchase?   pl_as_of(PL_TIME_NOW, V)
 *   - what changed in the last hour?          pl_range
 *   - everything, in order                    pl_history
 *   - every field at once                     pl_snapshot
 *
 * Usage: merchant_story [PG_CONNINFO [REDIS_URL]]
 *   PG_CONNINFO defaults to $PROVLEDGER_PG (required one way or the other);
 *   REDIS_URL defaults to $PROVLEDGER_REDIS (optional: no cache without it).
 *
 * Every run uses a new entity id, so it can run again and again against the
 * same database. It checks each answer against the story and exits 1 on any
 * error or surprise, 2 on a usage error.
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <provledger.h>

#define HOUR INT64_C(3600000000) /* pl_time counts microseconds */
#define DAY (24 * HOUR)

/* Reports a failed call with the library's detailed message; returns 1. */
static int fail(const char *what, int rc)
{
    fprintf(stderr, "merchant_story: %s: %s: %s\n", what, pl_strerror(rc), pl_errmsg());
    return 1;
}

/* Formats an instant into a caller's buffer (RFC 3339 UTC, or "infinity"). */
static const char *fmt(char buf[PL_TIME_BUFSIZE], pl_time t)
{
    pl_time_format(buf, PL_TIME_BUFSIZE, t);
    return buf;
}

static void print_record(const pl_record *r)
{
    char tt[PL_TIME_BUFSIZE], vf[PL_TIME_BUFSIZE], vt[PL_TIME_BUFSIZE];
    printf("    recorded %s  %s = %s\n", fmt(tt, r->transaction_time), r->field_name, r->new_value);
    printf("      valid [%s, %s)  source %s", fmt(vf, r->valid_from), fmt(vt, r->valid_to),
           r->source_type);
    if (r->old_value)
        printf("  was %s", r->old_value);
    if (r->change_reason)
        printf("  reason \"%s\"", r->change_reason);
    printf("  metadata %s\n", r->metadata);
}

static void print_result(const pl_result *r)
{
    for (size_t i = 0; i < pl_result_count(r); i++)
        print_record(pl_result_get(r, i));
    if (pl_result_count(r) == 0)
        printf("    (nothing)\n");
}

/* Prints a one-record answer and checks its value against the story.
 * `got` is the status of the call that produced `r`. Returns 0 when the
 * answer is the expected one (want == NULL: expect PL_NOT_FOUND). */
static int expect(const char *question, int got, pl_result *r, const char *want)
{
    printf("%s\n", question);
    if (got < 0)
        return fail(question, got);
    if (got == PL_NOT_FOUND)
        printf("    (no record answers this question)\n");
    else
        print_result(r);
    const pl_record *rec = pl_result_get(r, 0);
    int ok = want ? (got == PL_OK && rec && strcmp(rec->new_value, want) == 0)
                  : (got == PL_NOT_FOUND && r == NULL);
    pl_result_free(r);
    if (!ok) {
        fprintf(stderr, "merchant_story: unexpected answer to \"%s\" (expected %s)\n", question,
                want ? want : "no record");
        return 1;
    }
    return 0;
}

/* Prints a list answer (range, history, snapshot) and checks its size. */
static int expect_list(const char *question, int got, pl_result *r, size_t want_count)
{
    printf("%s\n", question);
    if (got < 0)
        return fail(question, got);
    print_result(r);
    size_t n = pl_result_count(r);
    pl_result_free(r);
    if (n != want_count) {
        fprintf(stderr, "merchant_story: \"%s\" gave %zu records, expected %zu\n", question, n,
                want_count);
        return 1;
    }
    return 0;
}

/* 00:00 UTC on the first day of the month after `now`. */
static int first_of_next_month(pl_time *out, pl_time now)
{
    char buf[PL_TIME_BUFSIZE], next[32];
    int year, month;
    if (pl_time_format(buf, sizeof buf, now) == 0 || sscanf(buf, "%d-%d", &year, &month) != 2)
        return PL_EINVAL;
    if (++month > 12) {
        month = 1;
        year++;
    }
    snprintf(next, sizeof next, "%04d-%02d-01T00:00:00Z", year, month);
    return pl_time_parse(out, next);
}

static int tell_story(pl_ledger *l, const char *txn, int cached)
{
    int rc;
    char t1[PL_TIME_BUFSIZE], t2[PL_TIME_BUFSIZE];

    /* The purchase happened two days ago at 14:32 UTC: that is the valid
     * time the bank import states; its transaction time is whenever the
     * ledger learns it, assigned by the database server. */
    pl_time now = pl_time_now();
    pl_time purchase = now - now % DAY - 2 * DAY + 14 * HOUR + 32 * 60 * INT64_C(1000000);
    pl_time next_month;
    if ((rc = first_of_next_month(&next_month, now)))
        return fail("first_of_next_month", rc);

    /* 1. The bank import: three fields of one transaction, all or nothing. */
    pl_change import[3] = {PL_CHANGE_INIT, PL_CHANGE_INIT, PL_CHANGE_INIT};
    const char *fields[3][2] = {{"merchant_name", "\"AMZN MKTP US*2K4\""},
                                {"amount", "{\"currency\": \"USD\", \"value\": \"14.99\"}"},
                                {"category", "\"Shopping\""}};
    for (int i = 0; i < 3; i++) {
        import[i].entity_id = txn;
        import[i].field_name = fields[i][0];
        import[i].new_value = fields[i][1];
        import[i].valid_from = purchase;
        import[i].source_type = "bank_import";
        import[i].metadata = "{\"import_batch_id\": \"batch_123\"}";
    }
    pl_receipt imported[3];
    if ((rc = pl_insert_batch(imported, l, import, 3)))
        return fail("pl_insert_batch (bank import)", rc);
    printf("1. Bank import of %s at %s (purchase on %s)\n", txn,
           fmt(t1, imported[0].transaction_time), fmt(t2, purchase));

    /* 2. The user's retroactive correction: true since the purchase. */
    pl_change fix = PL_CHANGE_INIT;
    fix.entity_id = txn;
    fix.field_name = "merchant_name";
    fix.new_value = "\"Amazon Prime Video\"";
    fix.old_value = "\"AMZN MKTP US*2K4\"";
    fix.valid_from = purchase;
    fix.source_type = "user_correction";
    fix.change_reason = "the card statement shows Amazon Prime Video";
    fix.metadata = "{\"corrected_by\": \"alice\"}";
    pl_receipt corrected;
    if ((rc = pl_insert(&corrected, l, &fix)))
        return fail("pl_insert (correction)", rc);
    printf("2. Correction of merchant_name recorded at %s\n", fmt(t1, corrected.transaction_time));

    /* 3. A future-dated value: the category changes from next month on. */
    pl_change recat = PL_CHANGE_INIT;
    recat.entity_id = txn;
    recat.field_name = "category";
    recat.new_value = "\"Entertainment\"";
    recat.old_value = "\"Shopping\"";
    recat.valid_from = next_month;
    recat.source_type = "user_correction";
    recat.change_reason = "subscriptions move to Entertainment";
    if ((rc = pl_insert(NULL, l, &recat)))
        return fail("pl_insert (future category)", rc);
    printf("3. Category \"Entertainment\" recorded, valid from %s\n\n", fmt(t1, next_month));

    /* Now the questions. Transaction times are assigned by the server and
     * strictly increase per entity, so any instant in [import, correction)
     * is "after the import, before the correction". */
    pl_result *r = NULL;
    pl_time between = corrected.transaction_time - 1;

    rc = pl_current(&r, l, txn, "merchant_name", 0);
    if (expect("Current merchant_name (pl_current):", rc, r, "\"Amazon Prime Video\""))
        return 1;
    rc = pl_current(&r, l, txn, "category", 0);
    if (expect("Current category (next month's value is not current yet):", rc, r, "\"Shopping\""))
        return 1;
    if (cached) {
        /* The same question again: served by Redis, and still exact. */
        rc = pl_current(&r, l, txn, "merchant_name", 0);
        int from_cache = rc == PL_OK && pl_result_origin(r) == PL_ORIGIN_CACHE;
        if (expect("Current merchant_name, asked again:", rc, r, "\"Amazon Prime Video\""))
            return 1;
        printf("    (answered from %s)\n", from_cache ? "the Redis cache" : "PostgreSQL");
    }

    printf("\nWhat we believed at %s, before the correction:\n", fmt(t1, between));
    rc = pl_as_of(&r, l, txn, "merchant_name", between, PL_TIME_ANY, 0);
    if (expect("  pl_as_of(between, PL_TIME_ANY):", rc, r, "\"AMZN MKTP US*2K4\""))
        return 1;

    printf("\nWhat was true on the day of purchase, %s, as we know it now:\n",
           fmt(t1, purchase + HOUR));
    rc = pl_as_of(&r, l, txn, "merchant_name", PL_TIME_NOW, purchase + HOUR, 0);
    if (expect("  pl_as_of(PL_TIME_NOW, purchase day):", rc, r, "\"Amazon Prime Video\""))
        return 1;
    rc = pl_as_of(&r, l, txn, "merchant_name", PL_TIME_NOW, purchase - 1, 0);
    if (expect("  ... and one microsecond before the purchase:", rc, r, NULL))
        return 1;
    rc = pl_as_of(&r, l, txn, "category", PL_TIME_NOW, next_month, 0);
    if (expect("  category on the first day of next month:", rc, r, "\"Entertainment\""))
        return 1;

    printf("\n");
    rc = pl_range(&r, l, txn, NULL, pl_time_now() - HOUR, PL_TIME_NOW, 0);
    if (expect_list("Changes recorded in the last hour (pl_range), oldest first:", rc, r, 5))
        return 1;
    rc = pl_history(&r, l, txn, "merchant_name", 0);
    if (expect_list("History of merchant_name (pl_history):", rc, r, 2))
        return 1;
    rc = pl_snapshot(&r, l, txn, PL_TIME_NOW, PL_TIME_NOW, 0);
    if (expect_list("Snapshot now, one record per field (pl_snapshot):", rc, r, 3))
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *pg = argc > 1 ? argv[1] : getenv("PROVLEDGER_PG");
    const char *redis = argc > 2 ? argv[2] : getenv("PROVLEDGER_REDIS");
    if (argc > 3 || !pg || !*pg) {
        fprintf(stderr, "usage: merchant_story [PG_CONNINFO [REDIS_URL]]\n"
                        "       (or set PROVLEDGER_PG and, optionally, PROVLEDGER_REDIS)\n");
        return 2;
    }
    printf("libprovledger %s (built against %s)\n", pl_version(), PL_VERSION_STRING);

    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = pg;
    cfg.redis_url = (redis && *redis) ? redis : NULL;

    pl_ledger *l = NULL;
    int rc = pl_open(&l, &cfg);
    if (rc)
        return fail("pl_open", rc);
    if ((rc = pl_migrate(l))) {
        pl_close(l);
        return fail("pl_migrate", rc);
    }

    /* A new entity per run: "txn_" and this machine's clock. */
    char txn[64];
    snprintf(txn, sizeof txn, "txn_%" PRId64, pl_time_now());
    int status = tell_story(l, txn, cfg.redis_url != NULL);

    pl_stats_info st;
    if (status == 0 && pl_stats(&st, l, sizeof st) == PL_OK)
        printf("\n%" PRIu64 " records appended, %" PRIu64 " statements run; cache: %s, %" PRIu64
               " hits, %" PRIu64 " misses\n",
               st.inserts, st.queries, cfg.redis_url ? "on" : "off", st.cache_hits, st.cache_misses);
    pl_close(l);
    return status;
}
