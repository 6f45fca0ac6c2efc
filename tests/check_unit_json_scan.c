/* Unit tests of the CLI's JSON-lines reader (lib/cli/json_scan.c, compiled
 * into this program: it is part of the tool, not of the library): members of
 * an object as slices of the text, string tokens decoded, the canonical form
 * of a query, and UTF-8 columns for error messages. Needs no server.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------------------ */
/* cli_json_string                                                          */
/* ------------------------------------------------------------------------ */

#define STR_OK(raw, want)                                                                       \
    do {                                                                                        \
        char *out_ = NULL;                                                                      \
        size_t off_;                                                                            \
        const char *why_;                                                                       \
        int rc_ = cli_json_string(raw, sizeof raw - 1, &out_, &off_, &why_);                     \
        ck_assert_msg(rc_ == 0, "cli_json_string(%s) = %d (%s)", raw, rc_, why_ ? why_ : "");    \
        ck_assert_msg(strcmp(out_, want) == 0, "cli_json_string(%s) = '%s'", raw, out_);         \
        free(out_);                                                                             \
    } while (0)

/* Bad at byte offset `at`, for a reason containing `msg`. */
#define STR_BAD(raw, at, msg)                                                                   \
    do {                                                                                        \
        char *out_ = (char *)"x";                                                               \
        size_t off_ = 99;                                                                       \
        const char *why_ = NULL;                                                                \
        int rc_ = cli_json_string(raw, sizeof raw - 1, &out_, &off_, &why_);                     \
        ck_assert_msg(rc_ == 1, "cli_json_string(%s) = %d", raw, rc_);                           \
        ck_assert_ptr_null(out_);                                                               \
        ck_assert_msg(off_ == (at), "cli_json_string(%s): offset %zu, want %d", raw, off_, at);  \
        ck_assert_msg(why_ && strstr(why_, msg), "cli_json_string(%s): '%s'", raw, why_);        \
    } while (0)

START_TEST(string_decoding)
{
    STR_OK("\"\"", "");
    STR_OK("\"plain\"", "plain");
    STR_OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t");
    STR_OK("\"\\u0041\\u00e9\\u00E9\"", "A\xc3\xa9\xc3\xa9");
    STR_OK("\"\\u20ac\"", "\xe2\x82\xac");
    STR_OK("\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80"); /* a surrogate pair, 12 bytes to 4 */
    STR_OK("\"h\xc3\xa9llo \xf0\x9f\x98\x80\"", "h\xc3\xa9llo \xf0\x9f\x98\x80");
}
END_TEST

START_TEST(string_refusals)
{
    STR_BAD("", 0, "expected a string");
    STR_BAD("\"", 0, "expected a string");
    STR_BAD("abc", 0, "expected a string");
    STR_BAD("\"abc", 0, "expected a string");
    STR_BAD("\"a\tb\"", 2, "control character");
    STR_BAD("\"ab\\x\"", 3, "bad escape");
    STR_BAD("\"ab\\\"", 3, "bad escape");          /* a backslash before the closing quote */
    STR_BAD("\"\\u12\"", 1, "four hex digits");
    STR_BAD("\"\\u12g4\"", 1, "four hex digits");
    STR_BAD("\"x\\uD83D\"", 2, "lone UTF-16 surrogate");
    STR_BAD("\"\\uD83D\\u0041\"", 1, "lone UTF-16 surrogate");
    STR_BAD("\"\\uD83Dxxxxxx\"", 1, "lone UTF-16 surrogate");
    STR_BAD("\"\\uDE00\"", 1, "lone UTF-16 surrogate");
    STR_BAD("\"ok\\u0000\"", 3, "\\u0000 is not allowed");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* cli_json_members                                                         */
/* ------------------------------------------------------------------------ */

static void member_is(const cli_jmember *m, const char *key, const char *val)
{
    ck_assert_str_eq(m->key, key);
    ck_assert_msg(m->val_len == strlen(val) && memcmp(m->val, val, m->val_len) == 0, "value of %s: '%.*s'", key,
                  (int)m->val_len, m->val);
    ck_assert_int_eq(m->name[0], '"');
}

START_TEST(members_in_order)
{
    static const char text[] = " { \"entity_id\" : \"acct-1\" , \"new_value\":{\"a\":[1,{\"b\":\"}]\"}],\"c\":\"\\\"\"},"
                               "\"n\":-1.5e3,\"t\":true,\"z\":null,\"arr\":[[],[[]]],\"k\\u00e9y\":\"v\"} \n";
    cli_jmember *m = NULL;
    size_t n = 0, off = 0;
    const char *why = NULL;
    ck_assert_int_eq(cli_json_members(text, sizeof text - 1, &m, &n, &off, &why), 0);
    ck_assert_uint_eq(n, 7);
    member_is(&m[0], "entity_id", "\"acct-1\"");
    member_is(&m[1], "new_value", "{\"a\":[1,{\"b\":\"}]\"}],\"c\":\"\\\"\"}");
    member_is(&m[2], "n", "-1.5e3");
    member_is(&m[3], "t", "true");
    member_is(&m[4], "z", "null");
    member_is(&m[5], "arr", "[[],[[]]]");
    member_is(&m[6], "k\xc3\xa9y", "\"v\"");
    cli_jmembers_free(m, n);

    ck_assert_int_eq(cli_json_members("{}", 2, &m, &n, &off, &why), 0);
    ck_assert_uint_eq(n, 0);
    cli_jmembers_free(m, n);
    cli_jmembers_free(NULL, 0);
}
END_TEST

START_TEST(members_many_and_deep)
{
    /* more members than the first allocation, and a value nested deeper
     * than the scanner's stack on the stack */
    char text[8192];
    size_t w = 0;
    text[w++] = '{';
    for (int i = 0; i < 40; i++)
        w += (size_t)snprintf(text + w, sizeof text - w, "%s\"m%02d\":%d", i ? "," : "", i, i);
    w += (size_t)snprintf(text + w, sizeof text - w, ",\"deep\":");
    for (int i = 0; i < 200; i++)
        text[w++] = '[';
    for (int i = 0; i < 200; i++)
        text[w++] = ']';
    text[w++] = '}';
    text[w] = '\0';
    cli_jmember *m = NULL;
    size_t n = 0, off = 0;
    const char *why = NULL;
    int rc = cli_json_members(text, w, &m, &n, &off, &why);
    ck_assert_msg(rc == 0, "rc %d at %zu: %s", rc, off, why ? why : "");
    ck_assert_uint_eq(n, 41);
    member_is(&m[39], "m39", "39");
    ck_assert_str_eq(m[40].key, "deep");
    ck_assert_uint_eq(m[40].val_len, w - 1 - (size_t)(m[40].val - text));
    cli_jmembers_free(m, n);
}
END_TEST

/* cli_json_members(text) fails at byte `at` for a reason containing msg. */
static void members_bad(const char *text, size_t at, const char *msg)
{
    cli_jmember *m = (cli_jmember *)1;
    size_t n = 99, off = 0;
    const char *why = NULL;
    int rc = cli_json_members(text, strlen(text), &m, &n, &off, &why);
    ck_assert_msg(rc == 1, "cli_json_members(%s) = %d", text, rc);
    ck_assert_ptr_null(m);
    ck_assert_uint_eq(n, 0);
    ck_assert_msg(off == at && why && strstr(why, msg), "cli_json_members(%s): at %zu '%s', want %zu '%s'", text,
                  off, why ? why : "", at, msg);
}

START_TEST(members_refusals)
{
    members_bad("", 0, "expected a JSON object");
    members_bad("  [1]", 2, "expected a JSON object");
    members_bad("{a:1}", 1, "expected a member name");
    members_bad("{\"a\":1,}", 7, "expected a member name");
    members_bad("{\"a", 1, "string not closed");
    members_bad("{\"a\\", 1, "string not closed");
    members_bad("{\"a\tb\":1}", 3, "control character");
    members_bad("{\"a\\q\":1}", 3, "bad escape");
    members_bad("{\"a\" 1}", 5, "expected ':'");
    members_bad("{\"a\":}", 5, "expected a value");
    members_bad("{\"a\":", 5, "expected a value");
    members_bad("{\"a\":\"x}", 5, "string not closed");
    members_bad("{\"a\":[1,2}", 9, "expected ']' to close the array");
    members_bad("{\"a\":{\"b\":1]}", 11, "expected '}' to close the object");
    members_bad("{\"a\":[1,{\"b\":2}", 5, "array not closed");
    members_bad("{\"a\":{\"b\":[2]", 5, "object not closed");
    members_bad("{\"a\":[\"\x01\"]}", 7, "control character");
    members_bad("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'");
    members_bad("{\"a\":1", 6, "expected ',' or '}'");
    members_bad("{\"a\":1} x", 8, "unexpected text after the object");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* cli_json_canonical                                                       */
/* ------------------------------------------------------------------------ */

static void canonical_is(const char *text, const char *want)
{
    char *got = cli_json_canonical(text);
    if (!want) {
        ck_assert_msg(got == NULL, "cli_json_canonical(%s) = %s, want NULL", text, got);
        return;
    }
    ck_assert_msg(got && strcmp(got, want) == 0, "cli_json_canonical(%s) = %s, want %s", text, got ? got : "NULL",
                  want);
    /* a fixed point */
    char *again = cli_json_canonical(got);
    ck_assert_str_eq(again, got);
    free(again);
    free(got);
}

START_TEST(canonical_form)
{
    canonical_is("{}", "{}");
    canonical_is(" { } ", "{}");
    canonical_is("{ \"b\" : 1 , \"a\" : [ 2 , 3 ] }", "{\"a\":[2,3],\"b\":1}");
    /* numbers and strings byte for byte as written, escapes included */
    canonical_is("{\"n\":[1E400, -0.50, 0, 12e-3, 1e+2],\"s\":\"\\u00e9\\n\"}",
                 "{\"n\":[1E400,-0.50,0,12e-3,1e+2],\"s\":\"\\u00e9\\n\"}");
    canonical_is("{\"z\":{\"y\":true,\"x\":false},\"w\":null,\"v\":[],\"u\":[{}]}",
                 "{\"u\":[{}],\"v\":[],\"w\":null,\"z\":{\"x\":false,\"y\":true}}");
    /* sorted by the decoded names */
    canonical_is("{\"\\u0062\":1,\"a\":2}", "{\"a\":2,\"\\u0062\":1}");
    char many[1024];
    size_t w = 0;
    many[w++] = '{';
    for (int i = 11; i >= 0; i--)
        w += (size_t)snprintf(many + w, sizeof many - w, "%s\"k%02d\":%d", i == 11 ? "" : ",", i, i);
    many[w++] = '}';
    many[w] = '\0';
    canonical_is(many, "{\"k00\":0,\"k01\":1,\"k02\":2,\"k03\":3,\"k04\":4,\"k05\":5,\"k06\":6,\"k07\":7,"
                       "\"k08\":8,\"k09\":9,\"k10\":10,\"k11\":11}");
}
END_TEST

START_TEST(canonical_refusals)
{
    /* not plain valid JSON of that kind: NULL, the caller passes the original on */
    canonical_is("", NULL);
    canonical_is("[1]", NULL);
    canonical_is("\"a\"", NULL);
    canonical_is("{\"a\":1,\"a\":2}", NULL);
    canonical_is("{\"a\":1,\"\\u0061\":2}", NULL);
    canonical_is("{\"a\":1} x", NULL);
    canonical_is("{\"a\":1,}", NULL);
    canonical_is("{\"a\" 1}", NULL);
    canonical_is("{a:1}", NULL);
    canonical_is("{\"a\":1 \"b\":2}", NULL);
    canonical_is("{\"a\":[1 2]}", NULL);
    canonical_is("{\"a\":[1,]}", NULL);
    canonical_is("{\"a\":[1}", NULL);
    canonical_is("{\"a\":tru}", NULL);
    canonical_is("{\"a\":truex}", NULL);
    canonical_is("{\"a\":01}", NULL);
    canonical_is("{\"a\":1.}", NULL);
    canonical_is("{\"a\":1e}", NULL);
    canonical_is("{\"a\":-}", NULL);
    canonical_is("{\"a\":1x}", NULL);
    canonical_is("{\"a\":\"\\x\"}", NULL);
    canonical_is("{\"\\uDE00\":1}", NULL);
    canonical_is("{\"a\":\"open}", NULL);
    canonical_is("{\"a\":", NULL);
    /* deeper than the tool canonicalises (128): left to the library */
    char deep[600];
    size_t w = 0;
    w += (size_t)snprintf(deep, sizeof deep, "{\"a\":");
    for (int i = 0; i < 130; i++)
        deep[w++] = '[';
    for (int i = 0; i < 130; i++)
        deep[w++] = ']';
    deep[w++] = '}';
    deep[w] = '\0';
    canonical_is(deep, NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* UTF-8 positions                                                          */
/* ------------------------------------------------------------------------ */

START_TEST(utf8_columns)
{
    static const char text[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    ck_assert_uint_eq(cli_utf8_column(text, 0), 1);
    ck_assert_uint_eq(cli_utf8_column(text, 1), 2);  /* after 'a' */
    ck_assert_uint_eq(cli_utf8_column(text, 3), 3);  /* after U+00E9 */
    ck_assert_uint_eq(cli_utf8_column(text, 6), 4);  /* after U+20AC */
    ck_assert_uint_eq(cli_utf8_column(text, 10), 5); /* after U+1F600 */
    uint32_t cp = 0;
    ck_assert_uint_eq(cli_utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
    ck_assert_uint_eq(cp, 0x1f600);
    ck_assert_uint_eq(cli_utf8_decode("\xe2\x82\xac", 3, &cp), 3);
    ck_assert_uint_eq(cp, 0x20ac);
    /* a byte that is not part of well-formed UTF-8 counts as one U+FFFD */
    static const char *const bad[] = {"\x80", "\xff", "\xc3", "\xc3(", "\xc0\xaf", "\xed\xa0\x80",
                                      "\xf4\x90\x80\x80", "\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cp = 0;
        ck_assert_uint_eq(cli_utf8_decode(bad[i], strlen(bad[i]), &cp), 1);
        ck_assert_uint_eq(cp, 0xfffd);
        ck_assert_uint_eq(cli_utf8_decode(bad[i], strlen(bad[i]), NULL), 1);
    }
    ck_assert_uint_eq(cli_utf8_column("\xff\xfe" "a", 3), 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_json_scan");
    TCase *tc = tcase_create("strings");
    tcase_add_test(tc, string_decoding);
    tcase_add_test(tc, string_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("members");
    tcase_add_test(tc, members_in_order);
    tcase_add_test(tc, members_many_and_deep);
    tcase_add_test(tc, members_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("canonical");
    tcase_add_test(tc, canonical_form);
    tcase_add_test(tc, canonical_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("utf8");
    tcase_add_test(tc, utf8_columns);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
