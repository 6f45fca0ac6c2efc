/* Unit tests of the cache's codec (lib/cache/cache_codec.h, lib/db/result.h): Redis
 * key names, answer versions and their order, and the sealed entries a
 * cached answer travels in: round trips, and refusal of every truncation,
 * bit flip, foreign key and foreign binding. Needs no server: the MAC key
 * is made up here instead of read from PostgreSQL.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

#include "cache_codec.h"
#include "result.h"
#include "wire.h"

/* Check's fork mode reports every passing assertion to the parent: loops
 * over every byte and bit stay silent unless they fail. */
#define require(expr, ...)                                                  \
    do {                                                                    \
        if (!(expr))                                                        \
            ck_abort_msg(__VA_ARGS__);                                      \
    } while (0)

/* A keyed HMAC-SHA-256 context as lease.c's load_key makes it. */
static EVP_MAC_CTX *keyed(unsigned char seed)
{
    unsigned char key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(seed * 31 + i);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ck_assert_ptr_nonnull(mac);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    ck_assert_int_eq(EVP_MAC_init(ctx, key, sizeof key, params), 1);
    return ctx;
}

static EVP_MAC_CTX *key_a, *key_b;

static void keys_up(void)
{
    key_a = keyed(1);
    key_b = keyed(2);
}

static void keys_down(void)
{
    EVP_MAC_CTX_free(key_a);
    EVP_MAC_CTX_free(key_b);
}

static pl_buf field_of(const void *p, size_t n)
{
    pl_buf b;
    memset(&b, 0, sizeof b);
    pl_buf_put(&b, p, n);
    ck_assert(!b.failed);
    return b;
}

/* Two records: every string kind, NULL optionals, extreme times. */
static pl_record recs[2] = {
    {41, "order:7", "status", "{\"a\": [1, 2]}", NULL, INT64_C(1700000000000001), PL_TIME_MIN,
     PL_TIME_INFINITY, "import", NULL, "{}", 0},
    {-3, "order:7", "st\xc3\xa4tus", "\"\xe2\x82\xac\"", "null", INT64_C(1700000000000001),
     -1, PL_TIME_MAX, "s", "why \"not\"", "{\"k\": \"v\"}", 1},
};
static pl_result two = {2, PL_ORIGIN_PRIMARY, 0, recs};
static pl_result none = {0, PL_ORIGIN_PRIMARY, 0, NULL};

#define LEDGER "ledger-0123456789abcdef"
#define EPOCH INT64_C(42)
#define ENTITY "order:7"
#define FILLED INT64_C(1700000000123456)
#define UNTIL INT64_C(1800000000000000)

/* The entry sealing r for (LEDGER, EPOCH, ENTITY, field) under key. */
static pl_buf seal(EVP_MAC_CTX *key, const pl_buf *field, const pl_result *r, pl_time until)
{
    pl_buf val;
    memset(&val, 0, sizeof val);
    EVP_MAC_CTX *m = EVP_MAC_CTX_dup(key);
    ck_assert_int_eq(pl_cc_entry_seal(&val, m, LEDGER, EPOCH, ENTITY, field, r, until, FILLED), 0);
    EVP_MAC_CTX_free(m);
    return val;
}

/* pl_cc_entry_verify with a fresh copy of key; 0 or -1. */
static int verify(EVP_MAC_CTX *key, const char *ledger, int64_t epoch, const char *entity,
                  const pl_buf *field, const char *val, size_t len, pl_time *filled)
{
    EVP_MAC_CTX *m = EVP_MAC_CTX_dup(key);
    int rc = pl_cc_entry_verify(m, ledger, epoch, entity, field, val, len, filled);
    EVP_MAC_CTX_free(m);
    return rc;
}

static void same_string(const char *got, const char *want, const char *what)
{
    if (!want)
        ck_assert_msg(got == NULL, "%s: \"%s\", want NULL", what, got);
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "%s: \"%s\", want \"%s\"", what,
                      got ? got : "(null)", want);
}

static void same_records(const pl_result *got, const pl_result *want)
{
    ck_assert_uint_eq(got->count, want->count);
    for (size_t i = 0; i < want->count; i++) {
        const pl_record *g = pl_result_get(got, i), *w = &want->records[i];
        ck_assert_int_eq(g->id, w->id);
        ck_assert_int_eq(g->transaction_time, w->transaction_time);
        ck_assert_int_eq(g->valid_from, w->valid_from);
        ck_assert_int_eq(g->valid_to, w->valid_to);
        same_string(g->entity_id, w->entity_id, "entity_id");
        same_string(g->field_name, w->field_name, "field_name");
        same_string(g->new_value, w->new_value, "new_value");
        same_string(g->old_value, w->old_value, "old_value");
        same_string(g->source_type, w->source_type, "source_type");
        same_string(g->change_reason, w->change_reason, "change_reason");
        same_string(g->metadata, w->metadata, "metadata");
    }
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

static void key_is(const char *prefix, const char *ledger, int64_t epoch, const char *entity,
                   const char *want, size_t want_len)
{
    pl_buf k;
    memset(&k, 0, sizeof k);
    pl_cc_make_key(&k, prefix, ledger, epoch, entity);
    ck_assert(!k.failed);
    ck_assert_uint_eq(k.len, want_len);
    ck_assert_msg(memcmp(k.data, want, want_len) == 0, "key of %s/%s/%lld/%s", prefix, ledger,
                  (long long)epoch, entity);
    pl_buf_free(&k);
}

START_TEST(key_layout)
{
    /* prefix NUL ledger ":" epoch ":" entity; binary-safe, so the NUL is
     * part of the key. */
    key_is("pl:", "L1", 7, "e1", "pl:\0L1:7:e1", 11);
    key_is("pl:", "L1", 7, "", "pl:\0L1:7:", 9); /* the epoch marker */
    key_is("", "L", -1, "e", "\0L:-1:e", 7);
    key_is("p", "L", INT64_MAX, "x:y", "p\0L:9223372036854775807:x:y", 27);
    /* Reusing a buffer starts it over. */
    pl_buf k;
    memset(&k, 0, sizeof k);
    pl_cc_make_key(&k, "a-long-prefix:", "ledger", 1, "entity");
    pl_cc_make_key(&k, "p", "L", 2, "e");
    ck_assert_uint_eq(k.len, 7);
    ck_assert(memcmp(k.data, "p\0L:2:e", 7) == 0);
    pl_buf_free(&k);
}
END_TEST

START_TEST(keys_never_collide)
{
    /* The NUL after the prefix keeps (prefix, ledger) pairs apart. */
    pl_buf a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    pl_cc_make_key(&a, "ab", "c", 1, "e");
    pl_cc_make_key(&b, "a", "bc", 1, "e");
    ck_assert(a.len != b.len || memcmp(a.data, b.data, a.len) != 0);
    pl_buf_free(&a);
    pl_buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Versions                                                                  */
/* ------------------------------------------------------------------------ */

static void version_of(char out[VERSION_HEX + 1], pl_time tt, int64_t id)
{
    pl_record rec = {id, "e", "f", "1", NULL, tt, 0, PL_TIME_INFINITY, "s", NULL, "{}", 0};
    pl_result r = {1, 0, 0, &rec};
    pl_cc_answer_version(out, &r);
}

START_TEST(version_values)
{
    char v[VERSION_HEX + 1];
    pl_cc_answer_version(v, &none);
    ck_assert_str_eq(v, "00000000000000000000000000000000");
    version_of(v, 0, 1);
    ck_assert_str_eq(v, "80000000000000008000000000000001");
    version_of(v, -1, -1);
    ck_assert_str_eq(v, "7fffffffffffffff7fffffffffffffff");
    version_of(v, INT64_MAX, INT64_MIN);
    ck_assert_str_eq(v, "ffffffffffffffff0000000000000000");
    /* The greatest (transaction time, id), not the greatest id: record 0
     * of `two` has the greater id at the same time. */
    pl_cc_answer_version(v, &two);
    ck_assert_str_eq(v, "80060a24181e40018000000000000029");
    pl_record later[2] = {recs[0], recs[1]};
    later[1].transaction_time += 1;
    pl_result r = {2, 0, 0, later};
    pl_cc_answer_version(v, &r);
    ck_assert_str_eq(v, "80060a24181e40027ffffffffffffffd");
}
END_TEST

START_TEST(version_order)
{
    /* FILL compares versions as bytes (Lua string order): that order must
     * be the order of (transaction time, id), signs included. */
    static const int64_t vals[] = {INT64_MIN, INT64_MIN + 1, -1000000, -1, 0, 1, 255, 256,
                                   INT64_C(1700000000000000), INT64_MAX - 1, INT64_MAX};
    const size_t n = sizeof vals / sizeof vals[0];
    for (size_t a = 0; a < n * n; a++) {
        for (size_t b = 0; b < n * n; b++) {
            int64_t ta = vals[a / n], ia = vals[a % n], tb = vals[b / n], ib = vals[b % n];
            char va[VERSION_HEX + 1], vb[VERSION_HEX + 1];
            version_of(va, ta, ia);
            version_of(vb, tb, ib);
            int want = ta != tb ? (ta < tb ? -1 : 1) : ia != ib ? (ia < ib ? -1 : 1) : 0;
            int got = memcmp(va, vb, VERSION_HEX);
            got = got < 0 ? -1 : got > 0;
            require(got == want, "(%lld,%lld) vs (%lld,%lld): %s vs %s", (long long)ta,
                    (long long)ia, (long long)tb, (long long)ib, va, vb);
            require(strlen(va) == VERSION_HEX, "width of %s", va);
        }
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Entries                                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(entry_round_trip)
{
    pl_buf field = field_of("cstatus", 7);
    pl_buf val = seal(key_a, &field, &two, UNTIL);
    /* The layout: version | filled_at | MAC | encoded answer. */
    char v[VERSION_HEX + 1], t[8];
    pl_cc_answer_version(v, &two);
    pl_wire_put_time(t, FILLED);
    ck_assert(memcmp(val.data, v, VERSION_HEX) == 0);
    ck_assert(memcmp(val.data + VERSION_HEX, t, 8) == 0);
    pl_buf enc;
    memset(&enc, 0, sizeof enc);
    ck_assert_int_eq(pl_result_encode(&enc, &two, UNTIL), 0);
    ck_assert_uint_eq(val.len, ENTRY_HEADER + enc.len);
    ck_assert(memcmp(val.data + ENTRY_HEADER, enc.data, enc.len) == 0);
    pl_buf_free(&enc);

    pl_time filled = 0;
    ck_assert_int_eq(verify(key_a, LEDGER, EPOCH, ENTITY, &field, val.data, val.len, &filled), 0);
    ck_assert_int_eq(filled, FILLED);
    pl_time until = 0;
    pl_result *r = pl_result_decode(val.data + ENTRY_HEADER, val.len - ENTRY_HEADER, &until);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(until, UNTIL);
    same_records(r, &two);
    pl_result_free(r);
    pl_buf_free(&val);
    pl_buf_free(&field);
}
END_TEST

START_TEST(entry_round_trip_not_found)
{
    /* A cached "not found" is an empty answer, open-ended. */
    pl_buf field = field_of("s", 1);
    pl_buf val = seal(key_a, &field, &none, PL_TIME_INFINITY);
    pl_time filled = 0, until = 0;
    ck_assert_int_eq(verify(key_a, LEDGER, EPOCH, ENTITY, &field, val.data, val.len, &filled), 0);
    ck_assert_int_eq(filled, FILLED);
    pl_result *r = pl_result_decode(val.data + ENTRY_HEADER, val.len - ENTRY_HEADER, &until);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(pl_result_count(r), 0);
    ck_assert_int_eq(until, PL_TIME_INFINITY);
    pl_result_free(r);
    /* Sealing appends: an entry after other bytes verifies at its offset. */
    pl_buf two_in_one;
    memset(&two_in_one, 0, sizeof two_in_one);
    pl_buf_put(&two_in_one, "junk", 4);
    EVP_MAC_CTX *m = EVP_MAC_CTX_dup(key_a);
    ck_assert_int_eq(pl_cc_entry_seal(&two_in_one, m, LEDGER, EPOCH, ENTITY, &field, &none,
                                      PL_TIME_INFINITY, FILLED),
                     0);
    EVP_MAC_CTX_free(m);
    ck_assert_uint_eq(two_in_one.len, 4 + val.len);
    ck_assert(memcmp(two_in_one.data + 4, val.data, val.len) == 0);
    pl_buf_free(&two_in_one);
    pl_buf_free(&val);
    pl_buf_free(&field);
}
END_TEST

START_TEST(entry_truncated_anywhere)
{
    pl_buf field = field_of("cstatus", 7);
    pl_buf val = seal(key_a, &field, &two, UNTIL);
    for (size_t n = 0; n < val.len; n++) {
        pl_time filled = 7;
        require(verify(key_a, LEDGER, EPOCH, ENTITY, &field, val.data, n, &filled) == -1,
                "an entry cut to %zu of %zu bytes verified", n, val.len);
        require(filled == 7, "a refused entry set filled_at");
    }
    /* One byte more is refused too. */
    pl_buf longer = field_of(val.data, val.len);
    pl_buf_put(&longer, "", 1);
    pl_time filled = 0;
    ck_assert_int_eq(verify(key_a, LEDGER, EPOCH, ENTITY, &field, longer.data, longer.len, &filled),
                     -1);
    pl_buf_free(&longer);
    /* The answer's decoder alone refuses every truncation of its bytes. */
    const char *enc = val.data + ENTRY_HEADER;
    size_t enc_len = val.len - ENTRY_HEADER;
    for (size_t n = 0; n < enc_len; n++) {
        pl_time until = 0;
        pl_result *r = pl_result_decode(enc, n, &until);
        require(r == NULL, "an answer cut to %zu of %zu bytes decoded", n, enc_len);
    }
    pl_buf_free(&val);
    pl_buf_free(&field);
}
END_TEST

START_TEST(entry_bit_flips)
{
    pl_buf field = field_of("cstatus", 7);
    pl_buf val = seal(key_a, &field, &two, UNTIL);
    for (size_t i = 0; i < val.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            val.data[i] ^= (char)(1 << bit);
            pl_time filled = 0;
            int rc = verify(key_a, LEDGER, EPOCH, ENTITY, &field, val.data, val.len, &filled);
            val.data[i] ^= (char)(1 << bit);
            require(rc == -1, "byte %zu bit %d flipped: the entry still verified", i, bit);
        }
    }
    pl_time filled = 0;
    ck_assert_int_eq(verify(key_a, LEDGER, EPOCH, ENTITY, &field, val.data, val.len, &filled), 0);
    pl_buf_free(&val);
    pl_buf_free(&field);
}
END_TEST

START_TEST(entry_wrong_key)
{
    pl_buf field = field_of("cstatus", 7);
    pl_buf val = seal(key_a, &field, &two, UNTIL);
    pl_time filled = 0;
    ck_assert_int_eq(verify(key_b, LEDGER, EPOCH, ENTITY, &field, val.data, val.len, &filled), -1);
    /* No key known yet: nothing verifies, nothing seals. */
    ck_assert_int_eq(pl_cc_entry_verify(NULL, LEDGER, EPOCH, ENTITY, &field, val.data, val.len,
                                        &filled),
                     -1);
    pl_buf other;
    memset(&other, 0, sizeof other);
    ck_assert_int_eq(pl_cc_entry_seal(&other, NULL, LEDGER, EPOCH, ENTITY, &field, &two, UNTIL,
                                      FILLED),
                     -1);
    pl_buf_free(&other);
    pl_buf_free(&val);
    pl_buf_free(&field);
}
END_TEST

START_TEST(entry_wrong_binding)
{
    pl_buf field = field_of("cstatus", 7);
    pl_buf val = seal(key_a, &field, &two, UNTIL);
    pl_time filled = 0;
#define REFUSED(ledger, epoch, entity, fld)                                                    \
    ck_assert_int_eq(verify(key_a, ledger, epoch, entity, fld, val.data, val.len, &filled), -1)
    REFUSED("ledger-0123456789abcdeF", EPOCH, ENTITY, &field); /* another ledger */
    REFUSED(LEDGER, EPOCH + 1, ENTITY, &field);                /* another epoch */
    REFUSED(LEDGER, EPOCH - 1, ENTITY, &field);
    REFUSED(LEDGER, EPOCH + (INT64_C(1) << 40), ENTITY, &field);
    REFUSED(LEDGER, EPOCH, "order:8", &field);                 /* another entity */
    REFUSED(LEDGER, EPOCH, "order:7 ", &field);
    pl_buf other = field_of("cstatut", 7);                     /* another question */
    REFUSED(LEDGER, EPOCH, ENTITY, &other);
    pl_buf_free(&other);
    other = field_of("cstatus\0", 8);
    REFUSED(LEDGER, EPOCH, ENTITY, &other);
    pl_buf_free(&other);
    /* Moving bytes between the parts does not help: each part is
     * length-prefixed. */
    other = field_of("status", 6);
    REFUSED(LEDGER, EPOCH, "order:7c", &other);
    pl_buf_free(&other);
    REFUSED(LEDGER "o", EPOCH, "rder:7", &field);
#undef REFUSED
    ck_assert_int_eq(verify(key_a, LEDGER, EPOCH, ENTITY, &field, val.data, val.len, &filled), 0);
    pl_buf_free(&val);
    pl_buf_free(&field);
}
END_TEST

START_TEST(entry_swapped_parts)
{
    /* An entry with another answer's version, time or payload spliced in
     * is refused: the MAC covers every byte after its own slot. */
    pl_buf field = field_of("cstatus", 7);
    pl_buf a = seal(key_a, &field, &two, UNTIL);
    pl_buf b = seal(key_a, &field, &none, UNTIL);
    pl_time filled = 0;
    pl_buf spliced = field_of(a.data, ENTRY_HEADER);
    pl_buf_put(&spliced, b.data + ENTRY_HEADER, b.len - ENTRY_HEADER);
    ck_assert_int_eq(verify(key_a, LEDGER, EPOCH, ENTITY, &field, spliced.data, spliced.len, &filled),
                     -1);
    pl_buf_free(&spliced);
    spliced = field_of(b.data, VERSION_HEX);
    pl_buf_put(&spliced, a.data + VERSION_HEX, a.len - VERSION_HEX);
    ck_assert_int_eq(verify(key_a, LEDGER, EPOCH, ENTITY, &field, spliced.data, spliced.len, &filled),
                     -1);
    pl_buf_free(&spliced);
    pl_buf_free(&a);
    pl_buf_free(&b);
    pl_buf_free(&field);
}
END_TEST

START_TEST(decode_rejects_malformed)
{
    pl_buf enc;
    memset(&enc, 0, sizeof enc);
    ck_assert_int_eq(pl_result_encode(&enc, &two, UNTIL), 0);
    pl_time until = 0;
    /* Another format version (the magic's last byte). */
    enc.data[3] ^= 1;
    ck_assert_ptr_null(pl_result_decode(enc.data, enc.len, &until));
    enc.data[3] ^= 1;
    /* A NUL inside a string. */
    char *nul = memmem(enc.data, enc.len, "order:7", 7);
    ck_assert_ptr_nonnull(nul);
    nul[3] = '\0';
    ck_assert_ptr_null(pl_result_decode(enc.data, enc.len, &until));
    nul[3] = 'e';
    /* A count larger than the records present. */
    enc.data[4 + 8 + 3] = 3;
    ck_assert_ptr_null(pl_result_decode(enc.data, enc.len, &until));
    enc.data[4 + 8 + 3] = 2;
    /* Bytes after the last record. */
    pl_buf_put(&enc, "", 1);
    ck_assert_ptr_null(pl_result_decode(enc.data, enc.len, &until));
    enc.len--;
    pl_result *r = pl_result_decode(enc.data, enc.len, &until);
    ck_assert_ptr_nonnull(r);
    same_records(r, &two);
    pl_result_free(r);
    pl_buf_free(&enc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_cache_codec");
    TCase *tc = tcase_create("keys and versions");
    tcase_add_test(tc, key_layout);
    tcase_add_test(tc, keys_never_collide);
    tcase_add_test(tc, version_values);
    tcase_add_test(tc, version_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("entries");
    tcase_add_checked_fixture(tc, keys_up, keys_down);
    tcase_add_test(tc, entry_round_trip);
    tcase_add_test(tc, entry_round_trip_not_found);
    tcase_add_test(tc, entry_truncated_anywhere);
    tcase_add_test(tc, entry_bit_flips);
    tcase_add_test(tc, entry_wrong_key);
    tcase_add_test(tc, entry_wrong_binding);
    tcase_add_test(tc, entry_swapped_parts);
    tcase_add_test(tc, decode_rejects_malformed);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
