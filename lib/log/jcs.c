/* RFC 8785 canonical JSON (see jcs.h): a strict recursive-descent parser
 * that writes the canonical form as it goes; an object's members are
 * written to a scratch buffer each, then sorted. Numbers go through the
 * "C" locale whatever the host program set. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* newlocale, strtod_l */
#endif
#include "jcs.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "provledger.h"

#define MAX_DEPTH 1000

typedef struct parser {
    const char *p, *end;
    int depth;
    int rc; /* first failure */
} parser;

static int fail(parser *ps, int rc)
{
    if (!ps->rc)
        ps->rc = rc;
    return -1;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static void put_utf8(pl_buf *b, unsigned cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    pl_buf_put(b, u, n);
}

/* One UTF-8 character of s (n > 0 bytes): its code point and length, or
 * 0 for invalid UTF-8 (overlong, surrogate, out of range, cut). */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t k;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        k = 2, min = 0x80, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        k = 3, min = 0x800, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        k = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return k;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* Decodes a string token at ps->p (at its quote) into raw UTF-8. */
static int decode_string(parser *ps, pl_buf *raw)
{
    ps->p++;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            return 0;
        }
        if (c < 0x20)
            return fail(ps, pl_fail(PL_EINVAL, "JSON: a control character inside a string"));
        if (c == '\\') {
            if (ps->end - ps->p < 2)
                break;
            char e = ps->p[1];
            ps->p += 2;
            unsigned cp;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (ps->end - ps->p < 4 || hex4(ps->p, &cp))
                    return fail(ps, pl_fail(PL_EINVAL, "JSON: a bad \\u escape"));
                ps->p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || hex4(ps->p + 2, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return fail(ps, pl_fail(PL_EINVAL, "JSON: a lone surrogate"));
                    ps->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return fail(ps, pl_fail(PL_EINVAL, "JSON: a lone surrogate"));
                }
                break;
            default:
                return fail(ps, pl_fail(PL_EINVAL, "JSON: a bad escape"));
            }
            put_utf8(raw, cp);
            continue;
        }
        unsigned cp;
        size_t k = utf8_next((const unsigned char *)ps->p, (size_t)(ps->end - ps->p), &cp);
        if (!k)
            return fail(ps, pl_fail(PL_EINVAL, "JSON: a string is not valid UTF-8"));
        pl_buf_put(raw, ps->p, k);
        ps->p += k;
    }
    return fail(ps, pl_fail(PL_EINVAL, "JSON: an unterminated string"));
}

/* Writes raw UTF-8 as a JCS string. */
static void write_string(pl_buf *out, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    pl_buf_put(out, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc) {
            pl_buf_put(out, esc, 2);
        } else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15]};
            pl_buf_put(out, u, 6);
        } else {
            pl_buf_put(out, &s[i], 1);
        }
    }
    pl_buf_put(out, "\"", 1);
}

static locale_t c_locale(void)
{
    static locale_t loc;
    static int tried;
    if (!tried) {
        /* Benign race: every thread computes the same value. */
        loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        tried = 1;
    }
    return loc;
}

/* ECMAScript Number::toString of a finite double (RFC 8785 3.2.2.3). */
static void write_number(pl_buf *out, double d)
{
    if (d == 0) {
        pl_buf_put(out, "0", 1);
        return;
    }
    if (d < 0) {
        pl_buf_put(out, "-", 1);
        d = -d;
    }
    locale_t loc = c_locale();
    locale_t old = uselocale(loc);
    char buf[40], digits[20] = {0}; /* zeroed: the analyzer cannot see "%e" writes a digit */
    int exp10 = 0, k = 0;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod_l(buf, NULL, loc) == d || prec == 17) {
            /* "d.ddde+XX": the digits and the exponent. */
            k = 0;
            const char *q = buf;
            for (; *q && *q != 'e'; q++)
                if (*q >= '0' && *q <= '9')
                    digits[k++] = *q;
            exp10 = atoi(q + 1); /* NOLINT(cert-err34-c): printf's own "%e" exponent */
            break;
        }
    }
    uselocale(old);
    while (k > 1 && digits[k - 1] == '0')
        k--;
    int n = exp10 + 1; /* value = 0.digits * 10^n */
    char s[64];
    int w = 0;
    if (k <= n && n <= 21) {
        memcpy(s, digits, (size_t)k);
        w = k;
        for (int i = 0; i < n - k; i++)
            s[w++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(s, digits, (size_t)n);
        w = n;
        s[w++] = '.';
        /* cppcheck-suppress pointerOutOfBoundsCond ; here n < k <= 17 */
        memcpy(s + w, digits + n, (size_t)(k - n));
        w += k - n;
    } else if (-6 < n && n <= 0) {
        s[w++] = '0';
        s[w++] = '.';
        for (int i = 0; i < -n; i++)
            s[w++] = '0';
        memcpy(s + w, digits, (size_t)k);
        w += k;
    } else {
        s[w++] = digits[0];
        if (k > 1) {
            s[w++] = '.';
            memcpy(s + w, digits + 1, (size_t)(k - 1));
            w += k - 1;
        }
        w += snprintf(s + w, sizeof s - (size_t)w, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    pl_buf_put(out, s, (size_t)w);
}

static int value(parser *ps, pl_buf *out);

static int number(parser *ps, pl_buf *out)
{
    const char *s = ps->p;
    const char *p = s;
    if (p < ps->end && *p == '-')
        p++;
    if (p >= ps->end || *p < '0' || *p > '9')
        return fail(ps, pl_fail(PL_EINVAL, "JSON: a bad value"));
    if (*p == '0')
        p++;
    else
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    if (p < ps->end && *p == '.') {
        p++;
        if (p >= ps->end || *p < '0' || *p > '9')
            return fail(ps, pl_fail(PL_EINVAL, "JSON: a bad number"));
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < ps->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= ps->end || *p < '0' || *p > '9')
            return fail(ps, pl_fail(PL_EINVAL, "JSON: a bad number"));
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - s);
    char small[128];
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy)
        return fail(ps, pl_fail(PL_ENOMEM, "out of memory"));
    memcpy(copy, s, n);
    copy[n] = '\0';
    double d = strtod_l(copy, NULL, c_locale());
    if (copy != small)
        free(copy);
    ps->p = p;
    if (!isfinite(d))
        return fail(ps, PL_JCS_UNREPRESENTABLE);
    write_number(out, d);
    return 0;
}

/* Compares two UTF-8 names by UTF-16 code units. */
static int utf16_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;
    unsigned pa = 0, pb = 0; /* pending low surrogates */
    while ((i < an || pa) && (j < bn || pb)) {
        unsigned ua, ub, cp;
        if (pa) {
            ua = pa;
            pa = 0;
        } else {
            size_t k = utf8_next((const unsigned char *)a + i, an - i, &cp);
            i += k ? k : 1;
            if (cp >= 0x10000) {
                ua = 0xd800 + ((cp - 0x10000) >> 10);
                pa = 0xdc00 + ((cp - 0x10000) & 0x3ff);
            } else {
                ua = cp;
            }
        }
        if (pb) {
            ub = pb;
            pb = 0;
        } else {
            size_t k = utf8_next((const unsigned char *)b + j, bn - j, &cp);
            j += k ? k : 1;
            if (cp >= 0x10000) {
                ub = 0xd800 + ((cp - 0x10000) >> 10);
                pb = 0xdc00 + ((cp - 0x10000) & 0x3ff);
            } else {
                ub = cp;
            }
        }
        if (ua != ub)
            return ua < ub ? -1 : 1;
    }
    int a_left = i < an || pa, b_left = j < bn || pb;
    return a_left - b_left;
}

typedef struct member {
    size_t name_at, name_len; /* raw name in names */
    size_t out_at, out_len;   /* canonical "name":value in members */
} member;

static _Thread_local const pl_buf *sort_names;

static int member_cmp(const void *x, const void *y)
{
    const member *a = x, *b = y;
    return utf16_cmp(sort_names->data + a->name_at, a->name_len, sort_names->data + b->name_at, b->name_len);
}

static int object(parser *ps, pl_buf *out)
{
    ps->p++;
    pl_buf names = {0}, body = {0};
    member *m = NULL;
    size_t count = 0, cap = 0;
    skip_ws(ps);
    int rc = 0;
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        for (;;) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"') {
                rc = fail(ps, pl_fail(PL_EINVAL, "JSON: an object member needs a string name"));
                break;
            }
            if (count == cap) {
                cap = cap ? cap * 2 : 8;
                member *nm = realloc(m, cap * sizeof *m);
                if (!nm) {
                    rc = fail(ps, pl_fail(PL_ENOMEM, "out of memory"));
                    break;
                }
                m = nm;
            }
            member *cur = &m[count];
            cur->name_at = names.len;
            if ((rc = decode_string(ps, &names)))
                break;
            cur->name_len = names.len - cur->name_at;
            cur->out_at = body.len;
            write_string(&body, names.data ? names.data + cur->name_at : "", cur->name_len);
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                rc = fail(ps, pl_fail(PL_EINVAL, "JSON: ':' expected"));
                break;
            }
            ps->p++;
            pl_buf_put(&body, ":", 1);
            if ((rc = value(ps, &body)))
                break;
            cur->out_len = body.len - cur->out_at;
            count++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                break;
            }
            rc = fail(ps, pl_fail(PL_EINVAL, "JSON: ',' or '}' expected"));
            break;
        }
    }
    if (!rc && (names.failed || body.failed))
        rc = fail(ps, pl_fail(PL_ENOMEM, "out of memory"));
    if (!rc) {
        sort_names = &names;
        if (count > 1)
            qsort(m, count, sizeof *m, member_cmp);
        pl_buf_put(out, "{", 1);
        for (size_t i = 0; i < count; i++) {
            if (i > 0 && member_cmp(&m[i - 1], &m[i]) == 0) {
                rc = fail(ps, pl_fail(PL_EINVAL, "JSON: a duplicate member name"));
                break;
            }
            if (i)
                pl_buf_put(out, ",", 1);
            pl_buf_put(out, body.data + m[i].out_at, m[i].out_len);
        }
        pl_buf_put(out, "}", 1);
    }
    free(m);
    pl_buf_free(&names);
    pl_buf_free(&body);
    return rc;
}

static int array(parser *ps, pl_buf *out)
{
    ps->p++;
    pl_buf_put(out, "[", 1);
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        pl_buf_put(out, "]", 1);
        return 0;
    }
    for (int first = 1;; first = 0) {
        if (!first)
            pl_buf_put(out, ",", 1);
        if (value(ps, out))
            return -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            pl_buf_put(out, "]", 1);
            return 0;
        }
        return fail(ps, pl_fail(PL_EINVAL, "JSON: ',' or ']' expected"));
    }
}

static int literal(parser *ps, pl_buf *out, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, pl_fail(PL_EINVAL, "JSON: a bad value"));
    ps->p += n;
    pl_buf_put(out, word, n);
    return 0;
}

static int value(parser *ps, pl_buf *out)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, pl_fail(PL_EINVAL, "JSON: a value expected"));
    if (++ps->depth > MAX_DEPTH)
        return fail(ps, pl_fail(PL_EINVAL, "JSON: nested deeper than %d", MAX_DEPTH));
    int rc;
    switch (*ps->p) {
    case '{': rc = object(ps, out); break;
    case '[': rc = array(ps, out); break;
    case '"': {
        pl_buf raw = {0};
        rc = decode_string(ps, &raw);
        if (!rc)
            write_string(out, raw.data ? raw.data : "", raw.len);
        pl_buf_free(&raw);
        break;
    }
    case 't': rc = literal(ps, out, "true"); break;
    case 'f': rc = literal(ps, out, "false"); break;
    case 'n': rc = literal(ps, out, "null"); break;
    default: rc = number(ps, out); break;
    }
    ps->depth--;
    return rc;
}

int pl_jcs(pl_buf *out, const char *json, size_t len)
{
    parser ps = {.p = json, .end = json + len};
    if (!c_locale())
        return pl_fail(PL_ENOMEM, "out of memory");
    if (value(&ps, out) == 0) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            fail(&ps, pl_fail(PL_EINVAL, "JSON: text after the value"));
    }
    if (!ps.rc && out->failed)
        return pl_fail(PL_ENOMEM, "out of memory");
    return ps.rc;
}
