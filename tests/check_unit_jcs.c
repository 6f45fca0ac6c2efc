/* Unit tests of RFC 8785 canonical JSON (lib/log/jcs.h), which the value
 * commitments of the transparency log hash (README "Leaf encoding"): the
 * RFC's own examples (its section 3.2.4 example, its sorting example of
 * 3.2.3, the number table of its appendix B), every string escape, and every
 * way the parser refuses text. Needs no server.
 *
 * SPDX-License-Identifier: MIT */
#include "testutil.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jcs.h"
#include "provledger.h"

/* The canonical form of json (rc must be PL_OK), as a new string. */
static char *canon(const char *json, size_t len)
{
    pl_buf b;
    memset(&b, 0, sizeof b);
    int rc = pl_jcs(&b, json, len);
    ck_assert_msg(rc == PL_OK, "pl_jcs(%s): %d %s", json, rc, pl_errmsg());
    char *s = malloc(b.len + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, b.data ? b.data : "", b.len);
    s[b.len] = '\0';
    pl_buf_free(&b);
    return s;
}

#define CANON(in, want)                                                                          \
    do {                                                                                         \
        char *got_ = canon(in, sizeof in - 1);                                                   \
        ck_assert_msg(strcmp(got_, want) == 0, "pl_jcs(%s) = %s, want %s", in, got_, want);      \
        free(got_);                                                                              \
    } while (0)

/* pl_jcs(in) fails with rc, and a message containing msg. */
static void refuse(const char *in, size_t len, int rc, const char *msg)
{
    pl_buf b;
    memset(&b, 0, sizeof b);
    int got = pl_jcs(&b, in, len);
    pl_buf_free(&b);
    ck_assert_msg(got == rc, "pl_jcs(%s) = %d, want %d", in, got, rc);
    if (msg)
        ck_assert_msg(strstr(pl_errmsg(), msg) != NULL, "pl_jcs(%s): \"%s\" lacks \"%s\"", in, pl_errmsg(), msg);
}

#define REFUSE(in, msg) refuse(in, sizeof in - 1, PL_EINVAL, msg)

START_TEST(rfc_example)
{
    /* RFC 8785 section 3.2.4, whitespace and all */
    CANON("{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
          "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
          "  \"literals\": [null, true, false]\n}",
          "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
          "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}
END_TEST

START_TEST(rfc_sorting)
{
    /* RFC 8785 section 3.2.3: by UTF-16 code units, so U+1F600 (D83D DE00)
     * sorts before U+FB33 although its code point is larger */
    CANON("{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\",\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\","
          "\"1\":\"One\",\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\","
          "\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}",
          "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
          "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
          "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\",\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
    /* the same names given as raw UTF-8 sort the same */
    CANON("{\"\xef\xac\xb3\":1,\"\xf0\x9f\x98\x80\":2}", "{\"\xf0\x9f\x98\x80\":2,\"\xef\xac\xb3\":1}");
    /* a prefix sorts first; nested objects are sorted too; arrays keep their order */
    CANON("{\"ab\":1,\"a\":{\"z\":[3,1,2],\"y\":{}},\"\":[]}", "{\"\":[],\"a\":{\"y\":{},\"z\":[3,1,2]},\"ab\":1}");
}
END_TEST

START_TEST(rfc_numbers)
{
    /* RFC 8785 appendix B: the shortest text that reads back as the double,
     * in ECMAScript's form */
    static const char *const table[][2] = {
        {"0", "0"},
        {"-0", "0"},
        {"5e-324", "5e-324"},
        {"-5e-324", "-5e-324"},
        {"1.7976931348623157e308", "1.7976931348623157e+308"},
        {"-1.7976931348623157e+308", "-1.7976931348623157e+308"},
        {"9007199254740992", "9007199254740992"},
        {"-9007199254740992", "-9007199254740992"},
        {"295147905179352830000", "295147905179352830000"},
        {"9.999999999999997e+22", "9.999999999999997e+22"},
        {"1e23", "1e+23"},
        {"1.0000000000000001e+23", "1.0000000000000001e+23"},
        {"999999999999999700000", "999999999999999700000"},
        {"999999999999999900000", "999999999999999900000"},
        {"1e+21", "1e+21"},
        {"9.999999999999997e-7", "9.999999999999997e-7"},
        {"0.000001", "0.000001"},
        {"333333333.3333332", "333333333.3333332"},
        {"333333333.33333325", "333333333.33333325"},
        {"333333333.3333333", "333333333.3333333"},
        {"333333333.3333334", "333333333.3333334"},
        {"333333333.33333343", "333333333.33333343"},
        {"-0.0000033333333333333333", "-0.0000033333333333333333"},
        {"1424953923781206.2", "1424953923781206.2"},
        /* other spellings of those and a few more */
        {"100000000000000000000000", "1e+23"},
        {"0.0000010", "0.000001"},
        {"1E-7", "1e-7"},
        {"0.1", "0.1"},
        {"-12.5e1", "-125"},
        {"1e21", "1e+21"},
        {"123456789012345680000", "123456789012345680000"},
        {"0.00000123", "0.00000123"},
        {"1.5e-10", "1.5e-10"},
        {"2.5E+25", "2.5e+25"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char *got = canon(table[i][0], strlen(table[i][0]));
        ck_assert_msg(strcmp(got, table[i][1]) == 0, "%s -> %s, want %s", table[i][0], got, table[i][1]);
        free(got);
    }
    /* no double holds it: JCS has no form for it */
    refuse("1e400", 5, PL_JCS_UNREPRESENTABLE, NULL);
    refuse("[1, -1e999]", 11, PL_JCS_UNREPRESENTABLE, NULL);
    /* a number longer than the parser's stack copy */
    char longnum[300];
    memset(longnum, '1', sizeof longnum - 1);
    longnum[sizeof longnum - 1] = '\0';
    longnum[1] = '.';
    char *got = canon(longnum, strlen(longnum));
    ck_assert_str_eq(got, "1.1111111111111112");
    free(got);
}
END_TEST

START_TEST(numbers_whatever_the_locale)
{
    /* a host program's LC_NUMERIC with a decimal comma changes nothing */
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"};
    locale_t loc = (locale_t)0;
    for (size_t i = 0; !loc && i < sizeof names / sizeof names[0]; i++)
        loc = newlocale(LC_NUMERIC_MASK, names[i], (locale_t)0);
    locale_t old = loc ? uselocale(loc) : (locale_t)0;
    CANON("[4.50, 1e30, 0.002]", "[4.5,1e+30,0.002]");
    if (loc) {
        uselocale(old);
        freelocale(loc);
    }
}
END_TEST

START_TEST(strings)
{
    /* two-character escapes where JCS has one, \u00xx for the other
     * controls (lower-case hex), everything else as UTF-8, '/' unescaped */
    CANON("\"\\b\\f\\n\\r\\t\\\"\\\\\\/\"", "\"\\b\\f\\n\\r\\t\\\"\\\\/\"");
    CANON("\"\\u0000\\u0001\\u001F\\u007f\"", "\"\\u0000\\u0001\\u001f\x7f\"");
    CANON("\"\\u00e9\\u0800\\uFFFF\\uD834\\uDD1E\"", "\"\xc3\xa9\xe0\xa0\x80\xef\xbf\xbf\xf0\x9d\x84\x9e\"");
    CANON("\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"", "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
    CANON("\"\"", "\"\"");
    /* a NUL in the text of a string is refused (a control character), one
     * written as \u0000 is kept */
    refuse("\"a\0b\"", 5, PL_EINVAL, "control character");
}
END_TEST

START_TEST(literals_and_structure)
{
    CANON(" \t\r\n{ \"a\" : [ 1 , 2 , { } , [ ] ] , \"b\" : null } \n", "{\"a\":[1,2,{},[]],\"b\":null}");
    CANON("true", "true");
    CANON("false", "false");
    CANON("null", "null");
    CANON("[[[[[]]]]]", "[[[[[]]]]]");
    /* nesting up to the limit is fine, one deeper is refused */
    char deep[2 * 1001 + 1];
    for (int depth = 1000; depth <= 1001; depth++) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        pl_buf b;
        memset(&b, 0, sizeof b);
        int rc = pl_jcs(&b, deep, 2 * (size_t)depth);
        pl_buf_free(&b);
        ck_assert_msg(rc == (depth <= 1000 ? PL_OK : PL_EINVAL), "depth %d: %d", depth, rc);
    }
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "nested deeper than 1000"));
}
END_TEST

START_TEST(refusals)
{
    REFUSE("", "a value expected");
    REFUSE("   ", "a value expected");
    REFUSE("[1,]", "a bad value");
    REFUSE("[1 2]", "',' or ']' expected");
    REFUSE("[1", "',' or ']' expected");
    REFUSE("{1:2}", "an object member needs a string name");
    REFUSE("{\"a\" 1}", "':' expected");
    REFUSE("{\"a\":1 \"b\":2}", "',' or '}' expected");
    REFUSE("{\"a\":1", "',' or '}' expected");
    REFUSE("{\"a\":1,\"a\":2}", "a duplicate member name");
    REFUSE("{\"a\":{\"x\":1,\"y\":2,\"x\":3}}", "a duplicate member name");
    REFUSE("{\"\\u0061\":1,\"a\":2}", "a duplicate member name"); /* the same name, spelled apart */
    REFUSE("tru", "a bad value");
    REFUSE("nul", "a bad value");
    REFUSE("falsey", "text after the value");
    REFUSE("1 2", "text after the value");
    REFUSE("01", "text after the value");
    REFUSE("-", "a bad value");
    REFUSE("+1", "a bad value");
    REFUSE(".5", "a bad value");
    REFUSE("1.", "a bad number");
    REFUSE("1.e5", "a bad number");
    REFUSE("1e", "a bad number");
    REFUSE("1e+", "a bad number");
    REFUSE("\"abc", "an unterminated string");
    REFUSE("\"abc\\", "an unterminated string");
    REFUSE("\"\\x\"", "a bad escape");
    REFUSE("\"\\u12\"", "a bad \\u escape");
    REFUSE("\"\\u12G4\"", "a bad \\u escape");
    REFUSE("\"\\ud800\"", "a lone surrogate");
    REFUSE("\"\\ud800\\u0041\"", "a lone surrogate");
    REFUSE("\"\\udc00\"", "a lone surrogate");
    REFUSE("\"\t\"", "a control character");
    REFUSE("\"\xc3\"", "not valid UTF-8");       /* cut short */
    REFUSE("\"\xc0\xaf\"", "not valid UTF-8");   /* overlong '/' */
    REFUSE("\"\xed\xa0\x80\"", "not valid UTF-8"); /* a surrogate in UTF-8 */
    REFUSE("\"\xf4\x90\x80\x80\"", "not valid UTF-8"); /* above U+10FFFF */
    REFUSE("\"\xff\"", "not valid UTF-8");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_jcs");
    TCase *tc = tcase_create("rfc8785");
    tcase_add_test(tc, rfc_example);
    tcase_add_test(tc, rfc_sorting);
    tcase_add_test(tc, rfc_numbers);
    tcase_add_test(tc, numbers_whatever_the_locale);
    suite_add_tcase(s, tc);
    tc = tcase_create("grammar");
    tcase_add_test(tc, strings);
    tcase_add_test(tc, literals_and_structure);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
