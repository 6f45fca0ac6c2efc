/* Unit tests for pl_time_parse(), pl_time_format() and pl_time_now().
 * Needs no server.
 *
 * SPDX-License-Identifier: MIT */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime() */
#endif

#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USEC INT64_C(1000000)
#define DAY_USEC (INT64_C(86400) * USEC)

/* Sentinel left in *out to check that failures do not write it. */
#define UNTOUCHED INT64_C(0x5a5a5a5a5a5a5a5a)

static pl_time parse_ok(const char *s)
{
    pl_time t = UNTOUCHED;
    int rc = pl_time_parse(&t, s);
    ck_assert_msg(rc == PL_OK, "parse \"%s\": rc %d (%s)", s, rc, pl_errmsg());
    return t;
}

static void parse_bad(const char *s)
{
    pl_time t = UNTOUCHED;
    int rc = pl_time_parse(&t, s);
    ck_assert_msg(rc == PL_EINVAL, "parse \"%s\": rc %d, want PL_EINVAL", s, rc);
    ck_assert_msg(t == UNTOUCHED, "parse \"%s\" wrote *out on failure", s);
    ck_assert_msg(pl_errmsg() != NULL && pl_errmsg()[0] != '\0',
                  "parse \"%s\": empty pl_errmsg()", s);
}

/* Formats t, checking the returned length against the text. */
static const char *fmt(char buf[PL_TIME_BUFSIZE], pl_time t)
{
    size_t n = pl_time_format(buf, PL_TIME_BUFSIZE, t);
    ck_assert_uint_eq(n, strlen(buf));
    return buf;
}

/* A value in [PL_TIME_MIN, PL_TIME_MAX]. */
static pl_time random_instant(uint64_t *state)
{
    uint64_t span = (uint64_t)(PL_TIME_MAX - PL_TIME_MIN) + 1;
    return PL_TIME_MIN + (pl_time)(tu_rand64(state) % span);
}

/* Like ck_assert_msg, but silent on success: Check's fork mode otherwise
 * reports every passing assertion to the parent, which is slow in loops. */
#define require(expr, ...)                                                  \
    do {                                                                    \
        if (!(expr))                                                        \
            ck_abort_msg(__VA_ARGS__);                                      \
    } while (0)

/* format(t) parses back to t, is 27 characters, and is in canonical form. */
static void check_round_trip(pl_time t)
{
    char buf[PL_TIME_BUFSIZE];
    size_t n = pl_time_format(buf, sizeof buf, t);
    require(n == 27 && strlen(buf) == 27, "format(%lld) = \"%s\"",
            (long long)t, buf);
    require(buf[4] == '-' && buf[7] == '-' && buf[10] == 'T' &&
                buf[13] == ':' && buf[16] == ':' && buf[19] == '.' &&
                buf[26] == 'Z',
            "format(%lld) = \"%s\"", (long long)t, buf);
    pl_time back = UNTOUCHED;
    int rc = pl_time_parse(&back, buf);
    require(rc == PL_OK && back == t, "\"%s\": %lld -> %lld (rc %d: %s)",
            buf, (long long)t, (long long)back, rc, pl_errmsg());
}

/* ------------------------------------------------------------------------ */
/* Parsing valid forms                                                       */
/* ------------------------------------------------------------------------ */

START_TEST(parse_epoch)
{
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00.000001Z"), 1);
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:01Z"), USEC);
    ck_assert_int_eq(parse_ok("1970-01-02T00:00:00Z"), DAY_USEC);
}
END_TEST

START_TEST(parse_known_instants)
{
    /* Values from `date -u -d @SECONDS +%s` and PostgreSQL. */
    ck_assert_int_eq(parse_ok("2000-01-01T00:00:00Z"), INT64_C(946684800) * USEC);
    ck_assert_int_eq(parse_ok("2024-02-29T12:34:56.789012Z"),
                     INT64_C(1709210096) * USEC + 789012);
    ck_assert_int_eq(parse_ok("2038-01-19T03:14:08Z"), INT64_C(2147483648) * USEC);
    ck_assert_int_eq(parse_ok("1900-01-01T00:00:00Z"), INT64_C(-2208988800) * USEC);
    ck_assert_int_eq(parse_ok("1600-03-01T00:00:00Z"), INT64_C(-11670912000) * USEC);
}
END_TEST

START_TEST(parse_separators_and_case)
{
    pl_time want = INT64_C(1709210096) * USEC;
    ck_assert_int_eq(parse_ok("2024-02-29T12:34:56Z"), want);
    ck_assert_int_eq(parse_ok("2024-02-29t12:34:56Z"), want);
    ck_assert_int_eq(parse_ok("2024-02-29 12:34:56Z"), want);
    ck_assert_int_eq(parse_ok("2024-02-29T12:34:56z"), want);
    ck_assert_int_eq(parse_ok("2024-02-29t12:34:56z"), want);
    ck_assert_int_eq(parse_ok("2024-02-29 12:34:56+00:00"), want);
    ck_assert_int_eq(parse_ok("2024-02-29T12:34:56-00:00"), want);
}
END_TEST

START_TEST(parse_offsets)
{
    pl_time base = parse_ok("2024-06-15T12:00:00Z");
    ck_assert_int_eq(parse_ok("2024-06-15T14:00:00+02:00"), base);
    ck_assert_int_eq(parse_ok("2024-06-15T06:30:00-05:30"), base);
    ck_assert_int_eq(parse_ok("2024-06-16T11:59:00+23:59"), base);
    ck_assert_int_eq(parse_ok("2024-06-14T12:01:00-23:59"), base);
    /* Offsets crossing a year and a leap day. */
    ck_assert_int_eq(parse_ok("1999-12-31T23:00:00-01:00"),
                     parse_ok("2000-01-01T00:00:00Z"));
    ck_assert_int_eq(parse_ok("2024-03-01T00:30:00+01:00"),
                     parse_ok("2024-02-29T23:30:00Z"));
    ck_assert_int_eq(parse_ok("1970-01-01T00:59:59.999999+01:00"), -1);
}
END_TEST

START_TEST(parse_fractions)
{
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00.5Z"), 500000);
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00.12Z"), 120000);
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00.123456Z"), 123456);
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00.1234567Z"), 123456);
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00.123456999Z"), 123456);
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00.000000999Z"), 0);
    ck_assert_int_eq(parse_ok("1970-01-01T00:00:00.000000000Z"), 0);
    /* Dropped digits round toward the earlier instant before 1970 too. */
    ck_assert_int_eq(parse_ok("1969-12-31T23:59:59.999999999Z"), -1);
    ck_assert_int_eq(parse_ok("1969-12-31T23:59:59.0000009Z"), -USEC);
    ck_assert_int_eq(parse_ok("1969-12-31T23:59:59.5Z"), -500000);
}
END_TEST

START_TEST(parse_before_1970)
{
    ck_assert_int_eq(parse_ok("1969-12-31T23:59:59.999999Z"), -1);
    ck_assert_int_eq(parse_ok("1969-12-31T23:59:59Z"), -USEC);
    ck_assert_int_eq(parse_ok("1969-12-31T00:00:00Z"), -DAY_USEC);
    ck_assert_int_eq(parse_ok("1969-01-01T00:00:00Z"), -365 * DAY_USEC);
    ck_assert_int_eq(parse_ok("1968-02-29T00:00:00Z"), -(365 + 307) * DAY_USEC);
}
END_TEST

START_TEST(parse_leap_days)
{
    parse_ok("2024-02-29T00:00:00Z");
    parse_ok("2000-02-29T00:00:00Z");
    parse_ok("1600-02-29T00:00:00Z");
    parse_ok("0004-02-29T00:00:00Z");
    parse_ok("9996-02-29T00:00:00Z");
    ck_assert_int_eq(parse_ok("2024-03-01T00:00:00Z") - parse_ok("2024-02-28T00:00:00Z"),
                     2 * DAY_USEC);
    ck_assert_int_eq(parse_ok("2023-03-01T00:00:00Z") - parse_ok("2023-02-28T00:00:00Z"),
                     DAY_USEC);
    ck_assert_int_eq(parse_ok("1900-03-01T00:00:00Z") - parse_ok("1900-02-28T00:00:00Z"),
                     DAY_USEC);
}
END_TEST

START_TEST(parse_infinity)
{
    ck_assert_int_eq(parse_ok("infinity"), PL_TIME_INFINITY);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Parsing rejects                                                           */
/* ------------------------------------------------------------------------ */

START_TEST(reject_calendar)
{
    parse_bad("2023-02-29T00:00:00Z");
    parse_bad("1900-02-29T00:00:00Z");
    parse_bad("2100-02-29T00:00:00Z");
    parse_bad("2024-02-30T00:00:00Z");
    parse_bad("2024-04-31T00:00:00Z");
    parse_bad("2024-06-31T00:00:00Z");
    parse_bad("2024-09-31T00:00:00Z");
    parse_bad("2024-11-31T00:00:00Z");
    parse_bad("2024-01-32T00:00:00Z");
    parse_bad("2024-01-00T00:00:00Z");
    parse_bad("2024-00-10T00:00:00Z");
    parse_bad("2024-13-10T00:00:00Z");
    parse_bad("0000-01-01T00:00:00Z");
    parse_bad("10000-01-01T00:00:00Z");
    parse_bad("999-01-01T00:00:00Z");
    parse_bad("+2024-01-01T00:00:00Z");
    parse_bad("-0001-01-01T00:00:00Z");
}
END_TEST

START_TEST(reject_clock)
{
    parse_bad("2024-01-01T24:00:00Z");
    parse_bad("2024-01-01T23:60:00Z");
    parse_bad("2024-01-01T23:59:60Z");
    parse_bad("2016-12-31T23:59:60Z");
    parse_bad("2024-01-01T1:00:00Z");
    parse_bad("2024-01-01T01:0:00Z");
    parse_bad("2024-01-01T01:00:0Z");
    parse_bad("2024-01-01T01:00Z");
    parse_bad("2024-01-01T01-00-00Z");
    parse_bad("2024-01-01_01:00:00Z");
    parse_bad("2024-01-01  01:00:00Z");
    parse_bad("2024-01-01T");
    parse_bad("2024-01-01");
}
END_TEST

START_TEST(reject_fraction)
{
    parse_bad("2024-01-01T00:00:00.Z");
    parse_bad("2024-01-01T00:00:00.");
    parse_bad("2024-01-01T00:00:00.1234567890Z");
    parse_bad("2024-01-01T00:00:00,5Z");
    parse_bad("2024-01-01T00:00:00.5");
    parse_bad("2024-01-01T00:00:00.5.5Z");
}
END_TEST

START_TEST(reject_offset)
{
    parse_bad("2024-01-01T00:00:00");
    parse_bad("2024-01-01T00:00:00.123456");
    parse_bad("2024-01-01T00:00:00+24:00");
    parse_bad("2024-01-01T00:00:00-24:00");
    parse_bad("2024-01-01T00:00:00+01:60");
    parse_bad("2024-01-01T00:00:00+0100");
    parse_bad("2024-01-01T00:00:00+01");
    parse_bad("2024-01-01T00:00:00+1:00");
    parse_bad("2024-01-01T00:00:00+01:0");
    parse_bad("2024-01-01T00:00:00+");
    parse_bad("2024-01-01T00:00:00UTC");
    parse_bad("2024-01-01T00:00:00 Z");
    parse_bad("2024-01-01T00:00:00ZZ");
    parse_bad("2024-01-01T00:00:00Z ");
    parse_bad("2024-01-01T00:00:00+01:00x");
    parse_bad("2024-01-01T00:00:00+01:00:00");
    parse_bad(" 2024-01-01T00:00:00Z");
}
END_TEST

START_TEST(reject_other)
{
    parse_bad("");
    parse_bad("now");
    parse_bad("any");
    parse_bad("Infinity");
    parse_bad("infinity ");
    parse_bad("-infinity");
    parse_bad("infinit");
    parse_bad("2024-01-01T00:00:00Z\n");
    parse_bad("\xef\xbc\x92" "024-01-01T00:00:00Z"); /* fullwidth digit */

    pl_time t = UNTOUCHED;
    ck_assert_int_eq(pl_time_parse(&t, NULL), PL_EINVAL);
    ck_assert_int_eq(t, UNTOUCHED);
    ck_assert_str_ne(pl_errmsg(), "");
    ck_assert_int_eq(pl_time_parse(NULL, "1970-01-01T00:00:00Z"), PL_EINVAL);
    ck_assert_str_ne(pl_errmsg(), "");
}
END_TEST

START_TEST(reject_truncated)
{
    /* Every proper prefix of valid texts is rejected. */
    static const char *const full[] = {
        "2024-02-29T12:34:56.789012Z",
        "1969-12-31T23:59:59.999999999+05:30",
        "0001-01-01 00:00:00-00:00",
        "infinity",
    };
    char buf[64];
    for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) {
        size_t n = strlen(full[i]);
        for (size_t k = 0; k < n; k++) {
            memcpy(buf, full[i], k);
            buf[k] = '\0';
            parse_bad(buf);
        }
        parse_ok(full[i]);
    }
}
END_TEST

START_TEST(reject_message)
{
    pl_time t = UNTOUCHED;
    ck_assert_int_eq(pl_time_parse(&t, "2023-02-29T00:00:00Z"), PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "2023-02-29T00:00:00Z"));

    /* Long input: only a bounded prefix is quoted. */
    char lng[4096];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    ck_assert_int_eq(pl_time_parse(&t, lng), PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "xxxxxxxx"));
    ck_assert_uint_lt(strlen(pl_errmsg()), 256);
    ck_assert_int_eq(t, UNTOUCHED);

    /* A success after a failure leaves the value correct. */
    ck_assert_int_eq(pl_time_parse(&t, "1970-01-01T00:00:00Z"), PL_OK);
    ck_assert_int_eq(t, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Formatting                                                                */
/* ------------------------------------------------------------------------ */

START_TEST(format_values)
{
    char buf[PL_TIME_BUFSIZE];
    ck_assert_str_eq(fmt(buf, 0), "1970-01-01T00:00:00.000000Z");
    ck_assert_str_eq(fmt(buf, 1), "1970-01-01T00:00:00.000001Z");
    ck_assert_str_eq(fmt(buf, -1), "1969-12-31T23:59:59.999999Z");
    ck_assert_str_eq(fmt(buf, -USEC), "1969-12-31T23:59:59.000000Z");
    ck_assert_str_eq(fmt(buf, -USEC - 1), "1969-12-31T23:59:58.999999Z");
    ck_assert_str_eq(fmt(buf, -DAY_USEC), "1969-12-31T00:00:00.000000Z");
    ck_assert_str_eq(fmt(buf, -DAY_USEC - 1), "1969-12-30T23:59:59.999999Z");
    ck_assert_str_eq(fmt(buf, INT64_C(1709210096) * USEC + 789012),
                     "2024-02-29T12:34:56.789012Z");
    ck_assert_str_eq(fmt(buf, INT64_C(2147483648) * USEC),
                     "2038-01-19T03:14:08.000000Z");
    ck_assert_str_eq(fmt(buf, INT64_C(-2208988800) * USEC),
                     "1900-01-01T00:00:00.000000Z");
    ck_assert_str_eq(fmt(buf, PL_TIME_MIN), "0001-01-01T00:00:00.000000Z");
    ck_assert_str_eq(fmt(buf, PL_TIME_MAX), "9999-12-31T23:59:59.999999Z");
}
END_TEST

START_TEST(format_specials)
{
    char buf[PL_TIME_BUFSIZE];
    ck_assert_uint_eq(pl_time_format(buf, sizeof buf, PL_TIME_INFINITY), 8);
    ck_assert_str_eq(buf, "infinity");
    ck_assert_uint_eq(pl_time_format(buf, sizeof buf, PL_TIME_NOW), 3);
    ck_assert_str_eq(buf, "now");
    ck_assert_uint_eq(pl_time_format(buf, sizeof buf, PL_TIME_ANY), 3);
    ck_assert_str_eq(buf, "any");

    static const pl_time outside[] = {
        PL_TIME_MIN - 1, PL_TIME_MAX + 1, PL_TIME_NOW + 1,
        PL_TIME_INFINITY - 1, INT64_C(-62135596800000000) * 2,
    };
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        memset(buf, '#', sizeof buf);
        ck_assert_uint_eq(pl_time_format(buf, sizeof buf, outside[i]), 0);
        ck_assert_str_eq(buf, "");
        ck_assert_uint_eq(pl_time_format(NULL, 0, outside[i]), 0);
    }
}
END_TEST

START_TEST(format_truncation)
{
    char buf[64];
    /* len 0: nothing written, buf may be NULL. */
    ck_assert_uint_eq(pl_time_format(NULL, 0, 0), 27);
    ck_assert_uint_eq(pl_time_format(NULL, 0, PL_TIME_INFINITY), 8);
    memset(buf, '#', sizeof buf);
    ck_assert_uint_eq(pl_time_format(buf, 0, 0), 27);
    ck_assert_int_eq(buf[0], '#');

    const char *full = "1970-01-01T00:00:00.000000Z";
    for (size_t len = 1; len <= 40; len++) {
        memset(buf, '#', sizeof buf);
        ck_assert_uint_eq(pl_time_format(buf, len, 0), 27);
        size_t k = len - 1 < 27 ? len - 1 : 27;
        ck_assert_uint_eq(strlen(buf), k);
        ck_assert_int_eq(memcmp(buf, full, k), 0);
        /* Nothing past the len bytes is touched. */
        for (size_t i = len; i < sizeof buf; i++)
            ck_assert_int_eq(buf[i], '#');
    }
    memset(buf, '#', sizeof buf);
    ck_assert_uint_eq(pl_time_format(buf, 4, PL_TIME_INFINITY), 8);
    ck_assert_str_eq(buf, "inf");
    ck_assert_int_eq(buf[4], '#');
}
END_TEST

START_TEST(now_is_sane)
{
    pl_time a = pl_time_now();
    struct timespec ts;
    ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
    pl_time b = pl_time_now();
    pl_time c = (pl_time)ts.tv_sec * USEC + ts.tv_nsec / 1000;
    ck_assert_int_le(a, c);
    ck_assert_int_le(c, b);
    /* After 2020, and formats as a normal instant. */
    ck_assert_int_gt(a, INT64_C(1577836800) * USEC);
    check_round_trip(a);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */
/* ------------------------------------------------------------------------ */

START_TEST(round_trip_random)
{
    uint64_t state = UINT64_C(20240229);
    for (int i = 0; i < 200000; i++)
        check_round_trip(random_instant(&state));
}
END_TEST

START_TEST(round_trip_near_epoch)
{
    for (pl_time t = -3 * USEC; t <= 3 * USEC; t += 997)
        check_round_trip(t);
    for (pl_time t = -1000; t <= 1000; t++)
        check_round_trip(t);
    uint64_t state = 7;
    for (int i = 0; i < 20000; i++) {
        /* Within about +-68 years of 1970. */
        pl_time t = (pl_time)(int32_t)tu_rand64(&state) * USEC +
                    (pl_time)(tu_rand64(&state) % USEC);
        check_round_trip(t);
    }
}
END_TEST

/* Every day of a year: the boundary instants format as that date at midnight
 * and one microsecond before as 23:59:59.999999 the day before. */
static void check_year_days(int year)
{
    static const int mlen[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    char text[64], buf[PL_TIME_BUFSIZE];
    pl_time prev = 0;
    int first = 1;
    for (int m = 1; m <= 12; m++) {
        int n = mlen[m - 1] + (m == 2 && leap);
        for (int d = 1; d <= n; d++) {
            snprintf(text, sizeof text, "%04d-%02d-%02dT00:00:00.000000Z",
                     year, m, d);
            pl_time t = parse_ok(text);
            ck_assert_str_eq(fmt(buf, t), text);
            if (!first)
                ck_assert_int_eq(t - prev, DAY_USEC);
            first = 0;
            prev = t;
            if (t > PL_TIME_MIN) {
                char last[64];
                snprintf(last, sizeof last, "%.10sT23:59:59.999999Z",
                         fmt(buf, t - DAY_USEC));
                ck_assert_str_eq(fmt(buf, t - 1), last);
                check_round_trip(t - 1);
            }
            check_round_trip(t);
        }
        /* The day after the month's last is invalid. */
        snprintf(text, sizeof text, "%04d-%02d-%02dT00:00:00Z", year, m, n + 1);
        parse_bad(text);
    }
}

START_TEST(round_trip_day_boundaries)
{
    static const int years[] = {
        1, 4, 99, 100, 400, 1582, 1600, 1899, 1900, 1960, 1968, 1969, 1970,
        1971, 1972, 1999, 2000, 2001, 2023, 2024, 2038, 2100, 2400, 9999,
    };
    for (size_t i = 0; i < sizeof years / sizeof years[0]; i++)
        check_year_days(years[i]);
}
END_TEST

START_TEST(round_trip_every_day)
{
    /* Every midnight from 0001-01-01 to 9999-12-31: consecutive days are one
     * day apart, and the calendar date never skips or repeats. */
    char buf[PL_TIME_BUFSIZE];
    pl_time t = PL_TIME_MIN;
    int y = 1, m = 1, d = 1;
    static const int mlen[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (;;) {
        char want[64];
        snprintf(want, sizeof want, "%04d-%02d-%02dT00:00:00.000000Z", y, m, d);
        size_t n = pl_time_format(buf, sizeof buf, t);
        require(n == 27 && strcmp(buf, want) == 0, "format(%lld) = \"%s\", want \"%s\"",
                (long long)t, buf, want);
        pl_time back = UNTOUCHED;
        int rc = pl_time_parse(&back, want);
        require(rc == PL_OK && back == t, "parse \"%s\": rc %d, %lld, want %lld",
                want, rc, (long long)back, (long long)t);
        if (y == 9999 && m == 12 && d == 31)
            break;
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (++d > mlen[m - 1] + (m == 2 && leap)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
        t += DAY_USEC;
    }
    ck_assert_int_eq(t + DAY_USEC - 1, PL_TIME_MAX);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Boundaries                                                                */
/* ------------------------------------------------------------------------ */

START_TEST(boundary_min_max)
{
    ck_assert_int_eq(parse_ok("0001-01-01T00:00:00Z"), PL_TIME_MIN);
    ck_assert_int_eq(parse_ok("0001-01-01T00:00:00.000000Z"), PL_TIME_MIN);
    ck_assert_int_eq(parse_ok("9999-12-31T23:59:59.999999Z"), PL_TIME_MAX);
    ck_assert_int_eq(parse_ok("9999-12-31T23:59:59.999999999Z"), PL_TIME_MAX);
    check_round_trip(PL_TIME_MIN);
    check_round_trip(PL_TIME_MIN + 1);
    check_round_trip(PL_TIME_MAX);
    check_round_trip(PL_TIME_MAX - 1);
}
END_TEST

START_TEST(boundary_offsets)
{
    /* Offsets that keep the instant inside the range. */
    ck_assert_int_eq(parse_ok("0001-01-01T01:00:00+01:00"), PL_TIME_MIN);
    ck_assert_int_eq(parse_ok("0001-01-01T23:59:00+23:59"), PL_TIME_MIN);
    ck_assert_int_eq(parse_ok("0001-01-01T00:00:00-01:00"), PL_TIME_MIN + 3600 * USEC);
    ck_assert_int_eq(parse_ok("9999-12-31T22:59:59.999999-01:00"), PL_TIME_MAX);
    ck_assert_int_eq(parse_ok("9999-12-31T00:00:59.999999-23:59"), PL_TIME_MAX);
    ck_assert_int_eq(parse_ok("9999-12-31T23:59:59.999999+01:00"),
                     PL_TIME_MAX - 3600 * USEC);
    /* Offsets that push past the bounds. */
    parse_bad("0001-01-01T00:00:00+00:01");
    parse_bad("0001-01-01T00:59:59.999999+01:00");
    parse_bad("0001-01-01T23:58:59.999999+23:59");
    parse_bad("9999-12-31T23:59:59.999999-00:01");
    parse_bad("9999-12-31T23:00:00-01:00");
    parse_bad("9999-12-31T00:01:00-23:59");
}
END_TEST

static Suite *time_suite(void)
{
    Suite *s = suite_create("time");
    TCase *tc;

    tc = tcase_create("parse valid forms");
    tcase_add_test(tc, parse_epoch);
    tcase_add_test(tc, parse_known_instants);
    tcase_add_test(tc, parse_separators_and_case);
    tcase_add_test(tc, parse_offsets);
    tcase_add_test(tc, parse_fractions);
    tcase_add_test(tc, parse_before_1970);
    tcase_add_test(tc, parse_leap_days);
    tcase_add_test(tc, parse_infinity);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse rejects");
    tcase_add_test(tc, reject_calendar);
    tcase_add_test(tc, reject_clock);
    tcase_add_test(tc, reject_fraction);
    tcase_add_test(tc, reject_offset);
    tcase_add_test(tc, reject_other);
    tcase_add_test(tc, reject_truncated);
    tcase_add_test(tc, reject_message);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, format_values);
    tcase_add_test(tc, format_specials);
    tcase_add_test(tc, format_truncation);
    tcase_add_test(tc, now_is_sane);
    suite_add_tcase(s, tc);

    tc = tcase_create("round trip");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, round_trip_random);
    tcase_add_test(tc, round_trip_near_epoch);
    tcase_add_test(tc, round_trip_day_boundaries);
    tcase_add_test(tc, round_trip_every_day);
    suite_add_tcase(s, tc);

    tc = tcase_create("boundaries");
    tcase_add_test(tc, boundary_min_max);
    tcase_add_test(tc, boundary_offsets);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(time_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
