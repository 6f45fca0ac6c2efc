/* Instants: RFC 3339 parsing and formatting, and the local clock.
 *
 * The calendar arithmetic is done here (proleptic Gregorian, no leap
 * seconds) so that results do not depend on the C library's timegm(),
 * strptime() or locale, and so years 0001..9999 work on both sides of 1970.
 *
 * SPDX-License-Identifier: MIT */

/* clock_gettime() is POSIX; the build normally defines _GNU_SOURCE. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "error.h"

#include <string.h>
#include <time.h>

#define USEC_PER_SEC INT64_C(1000000)
#define SEC_PER_DAY INT64_C(86400)
#define USEC_PER_DAY (SEC_PER_DAY * USEC_PER_SEC)

/* Longest part of a bad input quoted in an error message. */
#define QUOTE_MAX 64

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Floor division and its non-negative remainder, for b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b < 0) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    int64_t r = a % b;
    return r < 0 ? r + b : r;
}

/* Days from 1970-01-01 to y-m-d. Years are counted from March so that the
 * leap day ends a year; a 400-year era holds exactly 146097 days. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                              /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;      /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil(). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;                                /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);         /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                              /* [0, 11] */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads exactly n ASCII digits at *p into *val and advances *p. */
static int read_digits(const char **p, int n, int *val)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *val = v;
    return 1;
}

static int bad_time(const char *text, const char *what)
{
    return pl_fail(PL_EINVAL, "pl_time_parse: bad time \"%.*s%s\": %s",
                   QUOTE_MAX, text, strlen(text) > QUOTE_MAX ? "..." : "",
                   what);
}

/* Expects the character c (or c2, when not 0) at *p and advances past it. */
static int expect(const char **p, char c, char c2)
{
    if (**p != c && (c2 == 0 || **p != c2))
        return 0;
    (*p)++;
    return 1;
}

int pl_time_parse(pl_time *out, const char *iso8601)
{
    if (out == NULL)
        return pl_fail(PL_EINVAL, "pl_time_parse: out is NULL");
    if (iso8601 == NULL)
        return pl_fail(PL_EINVAL, "pl_time_parse: text is NULL");
    if (strcmp(iso8601, "infinity") == 0) {
        *out = PL_TIME_INFINITY;
        return PL_OK;
    }

    const char *p = iso8601;
    int year, month, day, hour, minute, second;
    if (!read_digits(&p, 4, &year) || is_digit(*p))
        return bad_time(iso8601, "expected a 4-digit year");
    if (year < 1)
        return bad_time(iso8601, "year 0000 is out of range");
    if (!expect(&p, '-', 0) || !read_digits(&p, 2, &month))
        return bad_time(iso8601, "expected \"-MM\" after the year");
    if (month < 1 || month > 12)
        return bad_time(iso8601, "month out of range 01-12");
    if (!expect(&p, '-', 0) || !read_digits(&p, 2, &day))
        return bad_time(iso8601, "expected \"-DD\" after the month");
    if (day < 1 || day > days_in_month(year, month))
        return bad_time(iso8601, "day out of range for the month");
    if (!expect(&p, 'T', 't') && !expect(&p, ' ', 0))
        return bad_time(iso8601, "expected 'T' or ' ' after the date");
    if (!read_digits(&p, 2, &hour) || !expect(&p, ':', 0) ||
        !read_digits(&p, 2, &minute) || !expect(&p, ':', 0) ||
        !read_digits(&p, 2, &second))
        return bad_time(iso8601, "expected \"HH:MM:SS\" after the date");
    if (hour > 23)
        return bad_time(iso8601, "hour out of range 00-23");
    if (minute > 59)
        return bad_time(iso8601, "minute out of range 00-59");
    if (second > 59)
        return bad_time(iso8601, "second out of range 00-59 (no leap seconds)");

    int64_t usec = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (is_digit(p[n]))
            n++;
        if (n == 0)
            return bad_time(iso8601, "'.' without fraction digits");
        if (n > 9)
            return bad_time(iso8601, "more than 9 fraction digits");
        /* Keep the first 6 digits; dropping the rest rounds toward the
         * earlier instant, since the fraction is always added. */
        for (int i = 0; i < 6; i++)
            usec = usec * 10 + (i < n ? p[i] - '0' : 0);
        p += n;
    }

    int64_t offset = 0; /* seconds east of UTC */
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;
        p++;
        if (!read_digits(&p, 2, &oh) || !expect(&p, ':', 0) ||
            !read_digits(&p, 2, &om))
            return bad_time(iso8601, "expected an offset \"+HH:MM\" or \"-HH:MM\"");
        if (oh > 23 || om > 59)
            return bad_time(iso8601, "offset out of range (at most 23:59)");
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return bad_time(iso8601, "expected 'Z' or an offset \"+HH:MM\"/\"-HH:MM\"");
    }
    if (*p != '\0')
        return bad_time(iso8601, "trailing characters after the offset");

    /* Years 1..9999 and offsets under a day keep this far from overflow. */
    int64_t secs = days_from_civil(year, month, day) * SEC_PER_DAY +
                   hour * 3600 + minute * 60 + second - offset;
    int64_t t = secs * USEC_PER_SEC + usec;
    if (t < PL_TIME_MIN || t > PL_TIME_MAX)
        return bad_time(iso8601, "outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999Z");
    *out = t;
    return PL_OK;
}

/* ------------------------------------------------------------------------ */
/* Formatting                                                                */
/* ------------------------------------------------------------------------ */

/* Writes v as exactly n decimal digits, zero-padded, at p; returns p + n. */
static char *put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

size_t pl_time_format(char *buf, size_t len, pl_time t)
{
    char text[PL_TIME_BUFSIZE];
    const char *s = text;

    if (t == PL_TIME_INFINITY) {
        s = "infinity";
    } else if (t == PL_TIME_NOW) {
        s = "now";
    } else if (t == PL_TIME_ANY) {
        s = "any";
    } else if (t < PL_TIME_MIN || t > PL_TIME_MAX) {
        if (len > 0)
            buf[0] = '\0';
        return 0;
    } else {
        int64_t days = floor_div(t, USEC_PER_DAY);
        int64_t in_day = floor_mod(t, USEC_PER_DAY);
        int64_t secs = in_day / USEC_PER_SEC;
        int64_t year;
        int month, day;
        civil_from_days(days, &year, &month, &day);

        char *p = text;
        p = put_digits(p, year, 4);
        *p++ = '-';
        p = put_digits(p, month, 2);
        *p++ = '-';
        p = put_digits(p, day, 2);
        *p++ = 'T';
        p = put_digits(p, secs / 3600, 2);
        *p++ = ':';
        p = put_digits(p, secs / 60 % 60, 2);
        *p++ = ':';
        p = put_digits(p, secs % 60, 2);
        *p++ = '.';
        p = put_digits(p, in_day % USEC_PER_SEC, 6);
        *p++ = 'Z';
        *p = '\0';
    }

    size_t n = strlen(s);
    if (len > 0) {
        size_t k = n < len ? n : len - 1;
        memcpy(buf, s, k);
        buf[k] = '\0';
    }
    return n;
}

pl_time pl_time_now(void)
{
    struct timespec ts = {0, 0};
    /* CLOCK_REALTIME cannot fail with a valid clock id and pointer. */
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (pl_time)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}
