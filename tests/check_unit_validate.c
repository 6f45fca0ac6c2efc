/* Unit tests of input validation (lib/base/validate.h): UTF-8, text limits,
 * JSON (grammar, duplicate keys, objects), instants and query times, whole
 * changes. Needs no server: validation runs before any I/O. Messages are
 * compared whole where the header promises that they name the field.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

#define UTF8_OK(lit) ck_assert_msg(pl_utf8_valid(lit, sizeof lit - 1) == 1, "valid %s", #lit)
#define UTF8_BAD(lit) ck_assert_msg(pl_utf8_valid(lit, sizeof lit - 1) == 0, "invalid %s", #lit)

START_TEST(utf8_valid_forms)
{
    ck_assert_int_eq(pl_utf8_valid("", 0), 1);
    UTF8_OK("plain ascii ~\x7f");
    UTF8_OK("\xc2\x80");             /* U+0080, smallest 2-byte */
    UTF8_OK("\xdf\xbf");             /* U+07FF */
    UTF8_OK("\xe0\xa0\x80");         /* U+0800, smallest 3-byte */
    UTF8_OK("\xed\x9f\xbf");         /* U+D7FF, just below the surrogates */
    UTF8_OK("\xee\x80\x80");         /* U+E000, just above them */
    UTF8_OK("\xef\xbf\xbf");         /* U+FFFF */
    UTF8_OK("\xf0\x90\x80\x80");     /* U+10000, smallest 4-byte */
    UTF8_OK("\xf4\x8f\xbf\xbf");     /* U+10FFFF, the last code point */
    UTF8_OK("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
}
END_TEST

START_TEST(utf8_invalid_forms)
{
    UTF8_BAD("\x80");                /* lone continuation byte */
    UTF8_BAD("\xbf");
    UTF8_BAD("\xc0\x80");            /* overlong NUL */
    UTF8_BAD("\xc1\xbf");            /* overlong U+007F */
    UTF8_BAD("\xe0\x80\x80");        /* overlong */
    UTF8_BAD("\xe0\x9f\xbf");        /* overlong U+07FF */
    UTF8_BAD("\xf0\x8f\xbf\xbf");    /* overlong U+FFFF */
    UTF8_BAD("\xed\xa0\x80");        /* U+D800, a surrogate */
    UTF8_BAD("\xed\xbf\xbf");        /* U+DFFF */
    UTF8_BAD("\xf4\x90\x80\x80");    /* U+110000 */
    UTF8_BAD("\xf5\x80\x80\x80");
    UTF8_BAD("\xf8\x88\x80\x80\x80"); /* 5-byte form */
    UTF8_BAD("\xfe");
    UTF8_BAD("\xff");
    UTF8_BAD("\xc3");                /* truncated at the end */
    UTF8_BAD("\xe2\x82");
    UTF8_BAD("\xf0\x9f\x98");
    UTF8_BAD("\xc3(");               /* bad continuation */
    UTF8_BAD("\xe2\x28\xa1");
    UTF8_BAD("\xf0\x9f\x28\x80");
    UTF8_BAD("a\0b");                /* NUL inside the n bytes */
    /* Only the n bytes given count: a truncated sequence stays bad even
     * when its continuation follows in memory. */
    ck_assert_int_eq(pl_utf8_valid("\xc3\xa9", 1), 0);
    ck_assert_int_eq(pl_utf8_valid("ab\xc3\xa9", 2), 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Text                                                                      */
/* ------------------------------------------------------------------------ */

static void fails_with(int rc, const char *message)
{
    ck_assert_msg(rc == PL_EINVAL, "rc %d, want PL_EINVAL (message \"%s\")", rc, pl_errmsg());
    ck_assert_msg(strcmp(pl_errmsg(), message) == 0, "message \"%s\", want \"%s\"", pl_errmsg(),
                  message);
}

/* n bytes of 'x' and a NUL, malloc'd. */
static char *repeat(size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, 'x', n);
    s[n] = '\0';
    return s;
}

START_TEST(text_required_and_optional)
{
    fails_with(pl_check_text("entity_id", NULL, 10, 1), "entity_id: required, got NULL");
    ck_assert_int_eq(pl_check_text("change_reason", NULL, 10, 0), PL_OK);
    fails_with(pl_check_text("entity_id", "", 10, 1), "entity_id: must not be empty");
    ck_assert_int_eq(pl_check_text("change_reason", "", 10, 0), PL_OK);
    fails_with(pl_check_text("field_name", "a\xff", 10, 1), "field_name: not valid UTF-8");
    fails_with(pl_check_text("change_reason", "\xed\xa0\x80", 10, 0),
               "change_reason: not valid UTF-8");
}
END_TEST

START_TEST(text_limits)
{
    char *s = repeat(PL_MAX_KEY_BYTES + 1);
    /* The limit is in bytes: exactly max passes, one more fails. */
    s[PL_MAX_KEY_BYTES] = '\0';
    ck_assert_int_eq(pl_check_text("entity_id", s, PL_MAX_KEY_BYTES, 1), PL_OK);
    s[PL_MAX_KEY_BYTES] = 'x';
    fails_with(pl_check_text("entity_id", s, PL_MAX_KEY_BYTES, 1),
               "entity_id: longer than 1024 bytes");
    free(s);
    /* A multi-byte character counts its bytes: 512 two-byte characters
     * are 1024 bytes, one more byte is over. */
    char *u = malloc(PL_MAX_KEY_BYTES + 2);
    ck_assert_ptr_nonnull(u);
    for (int i = 0; i < PL_MAX_KEY_BYTES; i += 2)
        u[i] = '\xc3', u[i + 1] = '\xa9';
    u[PL_MAX_KEY_BYTES] = '\0';
    ck_assert_int_eq(pl_check_text("entity_id", u, PL_MAX_KEY_BYTES, 1), PL_OK);
    u[PL_MAX_KEY_BYTES] = 'x';
    u[PL_MAX_KEY_BYTES + 1] = '\0';
    fails_with(pl_check_text("entity_id", u, PL_MAX_KEY_BYTES, 1),
               "entity_id: longer than 1024 bytes");
    free(u);
    /* Too long is reported before bad UTF-8. */
    char bad[8] = "\xff\xff\xff\xff\xff";
    fails_with(pl_check_text("source_type", bad, 4, 1), "source_type: longer than 4 bytes");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

static void json_ok(const char *s, int object_only)
{
    int rc = pl_check_json("new_value", s, object_only);
    ck_assert_msg(rc == PL_OK, "'%s' -> %d: %s", s, rc, pl_errmsg());
}

/* Refused as JSON: PL_EINVAL, the message names the field and says so. */
static void json_bad(const char *s)
{
    int rc = pl_check_json("new_value", s, 0);
    ck_assert_msg(rc == PL_EINVAL, "'%s' -> %d, want PL_EINVAL", s, rc);
    const char *want = "new_value: invalid JSON near line ";
    ck_assert_msg(strncmp(pl_errmsg(), want, strlen(want)) == 0, "'%s': message \"%s\"", s,
                  pl_errmsg());
}

START_TEST(json_values)
{
    json_ok("null", 0);
    json_ok("true", 0);
    json_ok("false", 0);
    json_ok("\"text\"", 0);
    json_ok("\"\\u00e9 \\\" \\\\ \\/ \\n\"", 0);
    json_ok("[]", 0);
    json_ok("{}", 0);
    json_ok(" {\"a\": [1, {\"b\": null}], \"c\": \"d\"} ", 0);
    json_ok("{\"h\\u00e9\": \"\xc3\xa9\"}", 1);
}
END_TEST

START_TEST(json_numbers)
{
    /* RFC 8259 numbers, without the size limits of int64 or double. */
    json_ok("0", 0);
    json_ok("-0", 0);
    json_ok("1", 0);
    json_ok("-12.5e+3", 0);
    json_ok("1E-7", 0);
    json_ok("0.000001", 0);
    json_ok("123456789012345678901234567890123456789", 0);
    json_ok("1e400", 0);
    json_ok("-1e-400", 0);
    json_ok("[1,-2,3.5,4e4]", 0);
    /* Digits inside strings are not numbers. */
    json_ok("\"01\"", 0);
    json_ok("[\"a\\\"01\", \"1.\"]", 0);
    json_bad("01");
    json_bad("-01");
    json_bad("1.");
    json_bad(".5");
    json_bad("-");
    json_bad("+1");
    json_bad("1e");
    json_bad("1e+");
    json_bad("0x10");
    json_bad("NaN");
    json_bad("Infinity");
    json_bad("[1,]");
    json_bad("1 2");
}
END_TEST

/* A number that runs on into more of one: the check that replaces numbers
 * by 0 once turned "1.5.5" into "0.0", which jansson accepted, and
 * PostgreSQL then refused after I/O without the field's name. */
START_TEST(json_number_followed_by_fraction)
{
    json_bad("1.5.5");
    json_bad("[1.5.5]");
    json_bad("[1e5.5]");
    json_bad("{\"a\": 1.2.3}");
}
END_TEST

/* Numbers PostgreSQL's numeric cannot hold (jsonb stores numbers in it):
 * refused before any I/O, naming the field. The limits were read off
 * PostgreSQL 15 (check_input's numbers_as_postgresql_judges compares
 * with the server itself). */
static void json_unstorable(const char *s)
{
    int rc = pl_check_json("new_value", s, 0);
    ck_assert_msg(rc == PL_EINVAL, "'%.40s' -> %d, want PL_EINVAL", s, rc);
    ck_assert_msg(strncmp(pl_errmsg(), "new_value: the number ", 22) == 0 &&
                      strstr(pl_errmsg(), "is outside what PostgreSQL can store"),
                  "'%.40s': message \"%s\"", s, pl_errmsg());
}

START_TEST(json_numbers_postgresql_can_store)
{
    json_ok("1e131071", 0);
    json_ok("9.99e131071", 0);
    json_ok("1e-16383", 0);
    json_ok("0e1000000", 0);
    json_ok("-0.5e-16382", 0);
    json_ok("[1e400, 1e-400]", 0);
    json_unstorable("1e1000000");
    json_unstorable("1e-20000");
    json_unstorable("1e131072");
    json_unstorable("1.5e-16383");
    json_unstorable("0e-20000");
    json_unstorable("0.0001e-16380");
    json_unstorable("{\"a\": [1, 1e99999999999999999999999]}");
    static char digits[200002];
    memset(digits, '9', 131072);
    digits[131072] = '\0';
    json_ok(digits, 0);
    memset(digits, '9', 200000);
    digits[200000] = '\0';
    json_unstorable(digits);
    /* In a batch, the index leads the message. */
    pl_change c = {"e", "f", "1e1000000", NULL, PL_TIME_NOW, PL_TIME_INFINITY, "s", NULL, NULL, NULL};
    ck_assert_int_eq(pl_check_change(&c, 3), PL_EINVAL);
    ck_assert_msg(strncmp(pl_errmsg(), "changes[3].new_value: the number 1e1000000 ", 43) == 0, "%s", pl_errmsg());
}
END_TEST

START_TEST(json_structure)
{
    json_bad("{");
    json_bad("{\"a\"}");
    json_bad("{\"a\": 1,}");
    json_bad("{a: 1}");
    json_bad("['a']");
    json_bad("\"unterminated");
    json_bad("\"tab\there\"");
    json_bad("nul");
    json_bad("[] []");
    /* Not JSON text at all is a text error first. */
    fails_with(pl_check_json("new_value", "", 0), "new_value: must not be empty");
    fails_with(pl_check_json("new_value", NULL, 0), "new_value: required, got NULL");
    fails_with(pl_check_json("old_value", "\"\xff\"", 0), "old_value: not valid UTF-8");
}
END_TEST

START_TEST(json_duplicate_keys)
{
    json_bad("{\"a\": 1, \"a\": 2}");
    json_bad("{\"a\": 1, \"a\": 1}");
    json_bad("{\"x\": {\"b\": 1, \"b\": 2}}");
    json_bad("[{\"k\": 1, \"k\": null}]");
    /* The same key spelled with an escape is the same key. */
    json_bad("{\"a\": 1, \"\\u0061\": 2}");
    /* The same key in different objects is fine. */
    json_ok("{\"a\": {\"b\": 1}, \"c\": {\"b\": 1}}", 0);
    json_ok("[{\"a\": 1}, {\"a\": 2}]", 0);
    /* Keys that differ by case or byte are different keys. */
    json_ok("{\"a\": 1, \"A\": 2, \"\xc3\xa9\": 3, \"e\": 4}", 1);
}
END_TEST

START_TEST(json_object_only)
{
    json_ok("{}", 1);
    fails_with(pl_check_json("metadata", "[]", 1), "metadata: must be a JSON object");
    fails_with(pl_check_json("metadata", "null", 1), "metadata: must be a JSON object");
    fails_with(pl_check_json("metadata", "\"{}\"", 1), "metadata: must be a JSON object");
    fails_with(pl_check_json("metadata", "1", 1), "metadata: must be a JSON object");
}
END_TEST

START_TEST(json_limit)
{
    /* A JSON string of exactly PL_MAX_VALUE_BYTES bytes, quotes included. */
    char *s = repeat(PL_MAX_VALUE_BYTES + 1);
    s[0] = '"';
    s[PL_MAX_VALUE_BYTES - 1] = '"';
    s[PL_MAX_VALUE_BYTES] = '\0';
    ck_assert_int_eq(pl_check_json("new_value", s, 0), PL_OK);
    s[PL_MAX_VALUE_BYTES - 1] = 'x';
    s[PL_MAX_VALUE_BYTES] = '"';
    fails_with(pl_check_json("new_value", s, 0), "new_value: longer than 1048576 bytes");
    free(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Times                                                                     */
/* ------------------------------------------------------------------------ */

START_TEST(instants)
{
    ck_assert_int_eq(pl_check_instant("valid_from", PL_TIME_MIN), PL_OK);
    ck_assert_int_eq(pl_check_instant("valid_from", PL_TIME_MAX), PL_OK);
    ck_assert_int_eq(pl_check_instant("valid_from", 0), PL_OK);
    ck_assert_int_eq(pl_check_instant("valid_from", -1), PL_OK);
    fails_with(pl_check_instant("valid_from", PL_TIME_MIN - 1),
               "valid_from: -62135596800000001 is outside 0001-01-01..9999-12-31");
    fails_with(pl_check_instant("valid_to", PL_TIME_MAX + 1),
               "valid_to: 253402300800000000 is outside 0001-01-01..9999-12-31");
    /* The sentinels are not instants. */
    fails_with(pl_check_instant("valid_to", PL_TIME_INFINITY),
               "valid_to: 9223372036854775807 is outside 0001-01-01..9999-12-31");
    fails_with(pl_check_instant("t", PL_TIME_NOW),
               "t: -9223372036854775807 is outside 0001-01-01..9999-12-31");
    fails_with(pl_check_instant("t", PL_TIME_ANY),
               "t: -9223372036854775808 is outside 0001-01-01..9999-12-31");
}
END_TEST

START_TEST(query_times)
{
    ck_assert_int_eq(pl_check_query_time("tx_time", PL_TIME_NOW), PL_OK);
    ck_assert_int_eq(pl_check_query_time("tx_time", PL_TIME_ANY), PL_OK);
    ck_assert_int_eq(pl_check_query_time("tx_time", PL_TIME_MIN), PL_OK);
    ck_assert_int_eq(pl_check_query_time("tx_time", PL_TIME_MAX), PL_OK);
    /* Infinity is a valid-time end, not a time to ask at. */
    fails_with(pl_check_query_time("valid_time", PL_TIME_INFINITY),
               "valid_time: 9223372036854775807 is outside 0001-01-01..9999-12-31");
    fails_with(pl_check_query_time("tx_time", PL_TIME_MIN - 1),
               "tx_time: -62135596800000001 is outside 0001-01-01..9999-12-31");
    fails_with(pl_check_query_time("tx_time", PL_TIME_NOW + 1),
               "tx_time: -9223372036854775806 is outside 0001-01-01..9999-12-31");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Whole changes                                                             */
/* ------------------------------------------------------------------------ */

static pl_change good(void)
{
    pl_change c = PL_CHANGE_INIT;
    c.entity_id = "e";
    c.field_name = "f";
    c.new_value = "1";
    c.source_type = "s";
    return c;
}

START_TEST(change_good)
{
    pl_change c = good();
    ck_assert_int_eq(pl_check_change(&c, -1), PL_OK);
    c.old_value = "{\"x\": 1}";
    c.metadata = "{\"import_batch_id\": \"b\"}";
    c.change_reason = "";
    c.idempotency_key = "k";
    c.valid_from = 0;
    c.valid_to = 1;
    ck_assert_int_eq(pl_check_change(&c, -1), PL_OK);
    /* An open end after any start; PL_TIME_NOW as start leaves the order
     * to the server (the record's transaction time is not known yet). */
    c.valid_to = PL_TIME_INFINITY;
    c.valid_from = PL_TIME_MAX;
    ck_assert_int_eq(pl_check_change(&c, -1), PL_OK);
    c.valid_from = PL_TIME_NOW;
    c.valid_to = PL_TIME_MIN;
    ck_assert_int_eq(pl_check_change(&c, -1), PL_OK);
}
END_TEST

START_TEST(change_each_field)
{
    fails_with(pl_check_change(NULL, -1), "change: NULL");
    pl_change c = good();
    c.entity_id = NULL;
    fails_with(pl_check_change(&c, -1), "entity_id: required, got NULL");
    c = good(), c.field_name = "";
    fails_with(pl_check_change(&c, -1), "field_name: must not be empty");
    c = good(), c.source_type = NULL;
    fails_with(pl_check_change(&c, -1), "source_type: required, got NULL");
    c = good(), c.new_value = NULL;
    fails_with(pl_check_change(&c, -1), "new_value: required, got NULL");
    c = good(), c.change_reason = "\xc0\xaf";
    fails_with(pl_check_change(&c, -1), "change_reason: not valid UTF-8");
    c = good(), c.idempotency_key = "";
    fails_with(pl_check_change(&c, -1), "idempotency_key: must not be empty (use NULL for none)");
    c = good(), c.old_value = "{\"a\":1,\"a\":2}";
    ck_assert_int_eq(pl_check_change(&c, -1), PL_EINVAL);
    ck_assert_msg(strncmp(pl_errmsg(), "old_value: invalid JSON", 23) == 0, "%s", pl_errmsg());
    c = good(), c.metadata = "[1]";
    fails_with(pl_check_change(&c, -1), "metadata: must be a JSON object");
    c = good(), c.valid_from = PL_TIME_ANY;
    fails_with(pl_check_change(&c, -1),
               "valid_from: -9223372036854775808 is outside 0001-01-01..9999-12-31");
    c = good(), c.valid_to = PL_TIME_NOW;
    fails_with(pl_check_change(&c, -1),
               "valid_to: -9223372036854775807 is outside 0001-01-01..9999-12-31");
    c = good(), c.valid_from = 5, c.valid_to = 5;
    fails_with(pl_check_change(&c, -1), "valid_from: must be before valid_to");
    c = good(), c.valid_from = 6, c.valid_to = 5;
    fails_with(pl_check_change(&c, -1), "valid_from: must be before valid_to");
}
END_TEST

START_TEST(change_limits)
{
    pl_change c = good();
    char *key = repeat(PL_MAX_KEY_BYTES + 1);
    char *reason = repeat(PL_MAX_REASON_BYTES + 1);
    key[PL_MAX_KEY_BYTES] = '\0';
    reason[PL_MAX_REASON_BYTES] = '\0';
    c.entity_id = c.field_name = c.source_type = c.idempotency_key = key;
    c.change_reason = reason;
    ck_assert_int_eq(pl_check_change(&c, -1), PL_OK);
    key[PL_MAX_KEY_BYTES] = 'x';
    reason[PL_MAX_REASON_BYTES] = 'x';
    static const char *const names[] = {"entity_id", "field_name", "source_type",
                                        "idempotency_key"};
    for (int i = 0; i < 4; i++) {
        pl_change d = good();
        const char **slot[] = {&d.entity_id, &d.field_name, &d.source_type, &d.idempotency_key};
        *slot[i] = key;
        char want[64];
        snprintf(want, sizeof want, "%s: longer than 1024 bytes", names[i]);
        fails_with(pl_check_change(&d, -1), want);
    }
    c = good(), c.change_reason = reason;
    fails_with(pl_check_change(&c, -1), "change_reason: longer than 65536 bytes");
    free(key);
    free(reason);
}
END_TEST

START_TEST(change_order_and_index)
{
    /* The first bad field in declaration order is the one named. */
    pl_change c = good();
    c.entity_id = "";
    c.field_name = NULL;
    c.new_value = "{";
    fails_with(pl_check_change(&c, -1), "entity_id: must not be empty");
    /* In a batch, the message says which change. */
    fails_with(pl_check_change(&c, 0), "changes[0].entity_id: must not be empty");
    c = good(), c.metadata = "7";
    fails_with(pl_check_change(&c, 99999), "changes[99999].metadata: must be a JSON object");
    fails_with(pl_check_change(NULL, 3), "change: NULL");
    /* A good change leaves the last message alone. */
    c = good();
    ck_assert_int_eq(pl_check_change(&c, 4), PL_OK);
    ck_assert_str_eq(pl_errmsg(), "change: NULL");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_validate");
    TCase *tc = tcase_create("utf8");
    tcase_add_test(tc, utf8_valid_forms);
    tcase_add_test(tc, utf8_invalid_forms);
    suite_add_tcase(s, tc);
    tc = tcase_create("text");
    tcase_add_test(tc, text_required_and_optional);
    tcase_add_test(tc, text_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("json");
    tcase_add_test(tc, json_values);
    tcase_add_test(tc, json_numbers);
    tcase_add_test(tc, json_structure);
    tcase_add_test(tc, json_duplicate_keys);
    tcase_add_test(tc, json_object_only);
    tcase_add_test(tc, json_limit);
    tcase_add_test(tc, json_number_followed_by_fraction);
    tcase_add_test(tc, json_numbers_postgresql_can_store);
    suite_add_tcase(s, tc);
    tc = tcase_create("times");
    tcase_add_test(tc, instants);
    tcase_add_test(tc, query_times);
    suite_add_tcase(s, tc);
    tc = tcase_create("changes");
    tcase_add_test(tc, change_good);
    tcase_add_test(tc, change_each_field);
    tcase_add_test(tc, change_limits);
    tcase_add_test(tc, change_order_and_index);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
