/*
 * provledger: a raw JSON scanner, so that JSON texts reach the library as
 * the user wrote them.
 *
 * The library is the one judge of JSON values (pl_insert, pl_search_metadata
 * check them, and accept numbers such as 1e400 that a double cannot hold).
 * The tool only has to find where each member of an input line's object
 * starts and ends; a decoder such as jansson would both refuse such numbers
 * and re-format the ones it keeps. So this scanner checks structure only as
 * far as it needs to find the slices (brackets, strings, commas, colons) and
 * leaves the values themselves to the library.
 *
 * The canonical form of a search query, in the same spirit, only removes
 * whitespace and sorts object members: every number and string keeps its
 * bytes.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Positions                                                                */
/* ------------------------------------------------------------------------ */

size_t cli_utf8_column(const char *text, size_t off)
{
    /* One column per character: a UTF-8 lead byte or a byte that is not
     * part of a well-formed sequence (so bad input still counts sensibly). */
    size_t col = 1;
    for (size_t i = 0; i < off;) {
        size_t n = cli_utf8_decode(text + i, off - i, NULL);
        i += n;
        col++;
    }
    return col;
}

size_t cli_utf8_decode(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned c = p[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        if (cp)
            *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        goto bad;
    }
    if (len < n)
        goto bad;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            goto bad;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        goto bad;
    if (cp)
        *cp = v;
    return n;
bad:
    if (cp)
        *cp = 0xfffd;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Scanning                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct scan {
    const char *s, *end;
    const char *err_at;  /* where the first error is */
    const char *err;     /* what it is (static text) */
} scan;

static int fail(scan *sc, const char *at, const char *why)
{
    sc->err_at = at;
    sc->err = why;
    return 1;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* *p is at '"'; moves it past the closing quote. Escapes are only skipped
 * here: whoever reads the string checks them. */
static int skip_string(scan *sc, const char **p)
{
    const char *q = *p + 1;
    while (q < sc->end && *q != '"') {
        if ((unsigned char)*q < 0x20)
            return fail(sc, q, "control character in a string (write it as an escape)");
        if (*q == '\\') {
            if (q + 1 >= sc->end) {
                q = sc->end; /* a backslash last: not closed */
                break;
            }
            q++;
        }
        q++;
    }
    if (q >= sc->end)
        return fail(sc, *p, "string not closed");
    *p = q + 1;
    return 0;
}

/* A character that ends a bare value (number, true, false, null). */
static int ends_scalar(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ':' ||
           c == '}' || c == ']' || c == '{' || c == '[' || c == '"';
}

/* *p is at the start of a value; moves it past the value. Nested values
 * are followed by their brackets only (a mismatched bracket is reported
 * where it is); what lies between is the library's to judge. */
static int skip_value(scan *sc, const char **p)
{
    const char *q = *p;
    if (q >= sc->end)
        return fail(sc, q, "expected a value");
    if (*q == '"')
        return skip_string(sc, p);
    if (*q != '{' && *q != '[') {
        while (q < sc->end && !ends_scalar(*q))
            q++;
        if (q == *p)
            return fail(sc, q, "expected a value");
        *p = q;
        return 0;
    }
    /* A stack of the closers awaited, grown as deep as the text goes:
     * the library sets the depth limit, not the tool. */
    char small[64], *stack = small;
    size_t depth = 0, cap = sizeof small;
    int rc = 0;
    while (q < sc->end) {
        char c = *q;
        if (c == '"') {
            if ((rc = skip_string(sc, &q)))
                break;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == cap) {
                char *bigger = malloc(cap * 2);
                if (!bigger) {
                    rc = -1;
                    break;
                }
                memcpy(bigger, stack, depth);
                if (stack != small)
                    free(stack);
                stack = bigger;
                cap *= 2;
            }
            stack[depth++] = c == '{' ? '}' : ']';
        } else if (c == '}' || c == ']') {
            if (stack[depth - 1] != c) {
                rc = fail(sc, q, stack[depth - 1] == '}' ? "expected '}' to close the object"
                                                          : "expected ']' to close the array");
                break;
            }
            if (--depth == 0) {
                q++;
                break;
            }
        }
        q++;
    }
    if (rc == 0 && depth > 0)
        rc = fail(sc, *p, **p == '{' ? "object not closed" : "array not closed");
    if (stack != small)
        free(stack);
    if (rc == 0)
        *p = q;
    return rc;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int cli_json_string(const char *raw, size_t len, char **out, size_t *err_off, const char **why)
{
    *out = NULL;
    *err_off = 0;
    *why = NULL;
    if (len < 2 || raw[0] != '"' || raw[len - 1] != '"') {
        *why = "expected a string";
        return 1;
    }
    /* Escapes never grow: \uXXXX (6 bytes) is at most 4 bytes of UTF-8,
     * a surrogate pair (12) exactly 4. */
    char *o = malloc(len);
    if (!o)
        return -1;
    size_t n = 0;
    const char *end = raw + len - 1;
    for (const char *p = raw + 1; p < end;) {
        if ((unsigned char)*p < 0x20) {
            *err_off = (size_t)(p - raw);
            *why = "control character in a string (write it as an escape)";
            goto bad;
        }
        if (*p != '\\') {
            o[n++] = *p++;
            continue;
        }
        const char *esc = p;
        p++;
        char c = p < end ? *p++ : '\0'; /* NOLINT(bugprone-narrowing-conversions): a char, via ?:'s int */
        switch (c) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (end - p < 4 || hex4(p, &cp) < 0) {
                *err_off = (size_t)(esc - raw);
                *why = "bad \\u escape (four hex digits expected)";
                goto bad;
            }
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
                    lo < 0xdc00 || lo > 0xdfff) {
                    *err_off = (size_t)(esc - raw);
                    *why = "lone UTF-16 surrogate in a \\u escape";
                    goto bad;
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                *err_off = (size_t)(esc - raw);
                *why = "lone UTF-16 surrogate in a \\u escape";
                goto bad;
            }
            if (cp == 0) {
                /* The library takes C strings: a NUL would cut the text. */
                *err_off = (size_t)(esc - raw);
                *why = "\\u0000 is not allowed in this string";
                goto bad;
            }
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            *err_off = (size_t)(esc - raw);
            *why = "bad escape in a string";
            goto bad;
        }
    }
    o[n] = '\0';
    *out = o;
    return 0;
bad:
    free(o);
    return 1;
}

void cli_jmembers_free(cli_jmember *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].key);
    free(m);
}

int cli_json_members(const char *text, size_t len, cli_jmember **out, size_t *n,
                     size_t *err_off, const char **err)
{
    scan sc = {text, text + len, NULL, NULL};
    cli_jmember *m = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    *out = NULL;
    *n = 0;
    const char *p = skip_ws(text, sc.end);
    if (p >= sc.end || *p != '{') {
        rc = fail(&sc, p, "expected a JSON object");
        goto done;
    }
    p = skip_ws(p + 1, sc.end);
    if (p < sc.end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p >= sc.end || *p != '"') {
                rc = fail(&sc, p, "expected a member name (a string)");
                goto done;
            }
            const char *name = p;
            if ((rc = skip_string(&sc, &p)))
                goto done;
            if (count == cap) {
                size_t c2 = cap ? cap * 2 : 16;
                cli_jmember *bigger = realloc(m, c2 * sizeof *m);
                if (!bigger) {
                    rc = -1;
                    goto done;
                }
                m = bigger;
                cap = c2;
            }
            cli_jmember *mb = &m[count];
            memset(mb, 0, sizeof *mb);
            size_t off;
            const char *why;
            rc = cli_json_string(name, (size_t)(p - name), &mb->key, &off, &why);
            if (rc < 0)
                goto done;
            if (rc > 0) {
                rc = fail(&sc, name + off, why);
                goto done;
            }
            count++;
            mb->name = name;
            p = skip_ws(p, sc.end);
            if (p >= sc.end || *p != ':') {
                rc = fail(&sc, p, "expected ':' after the member name");
                goto done;
            }
            p = skip_ws(p + 1, sc.end);
            const char *v = p;
            if ((rc = skip_value(&sc, &p)))
                goto done;
            mb->val = v;
            mb->val_len = (size_t)(p - v);
            p = skip_ws(p, sc.end);
            if (p < sc.end && *p == ',') {
                p = skip_ws(p + 1, sc.end);
                continue;
            }
            if (p < sc.end && *p == '}') {
                p++;
                break;
            }
            rc = fail(&sc, p, "expected ',' or '}' after the member's value");
            goto done;
        }
    }
    p = skip_ws(p, sc.end);
    if (p < sc.end)
        rc = fail(&sc, p, "unexpected text after the object");
done:
    if (rc != 0) {
        cli_jmembers_free(m, count);
        if (rc > 0) {
            *err_off = (size_t)(sc.err_at - text);
            *err = sc.err;
        }
        return rc;
    }
    *out = m;
    *n = count;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The canonical form of a query                                            */
/* ------------------------------------------------------------------------ */

/* Deep enough for any real query, far below the library's JSON depth
 * limit, so that a text canonicalised here is never refused for depth. */
#define CANON_MAX_DEPTH 128

typedef struct buf {
    char *s;
    size_t len, cap;
    int oom;
} buf;

static void bput(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Length of the JSON number at p (RFC 8259 grammar), 0 when none. */
static size_t number_len(const char *p, const char *end)
{
    const char *q = p;
#define DIGIT(x) ((x) < end && *(x) >= '0' && *(x) <= '9')
    if (q < end && *q == '-')
        q++;
    if (q < end && *q == '0')
        q++;
    else if (DIGIT(q))
        while (DIGIT(q))
            q++;
    else
        return 0;
    if (q < end && *q == '.') {
        q++;
        if (!DIGIT(q))
            return 0;
        while (DIGIT(q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (!DIGIT(q))
            return 0;
        while (DIGIT(q))
            q++;
    }
#undef DIGIT
    return (size_t)(q - p);
}

typedef struct canon_member {
    char *key;      /* decoded, for sorting */
    const char *name;
    size_t name_len;
    char *value;    /* canonical */
    size_t value_len;
} canon_member;

static int member_cmp(const void *a, const void *b)
{
    const canon_member *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* Appends the canonical form of the value at *p to B; 0, or 1 when the
 * text is not plain valid JSON (the caller then keeps the original). */
static int canon_value(const char **p, const char *end, buf *b, int depth);

static int canon_string(const char **p, const char *end, buf *b, char **key)
{
    scan sc = {*p, end, NULL, NULL};
    const char *start = *p;
    if (skip_string(&sc, p))
        return 1;
    char *dec;
    size_t off;
    const char *why;
    if (cli_json_string(start, (size_t)(*p - start), &dec, &off, &why) != 0)
        return 1;
    if (key)
        *key = dec;
    else
        free(dec);
    bput(b, start, (size_t)(*p - start));
    return 0;
}

static int canon_object(const char **p, const char *end, buf *b, int depth)
{
    canon_member *m = NULL;
    size_t n = 0, cap = 0;
    int rc = 1;
    const char *q = skip_ws(*p + 1, end);
    if (q < end && *q == '}') {
        q++;
        goto sorted;
    }
    for (;;) {
        if (q >= end || *q != '"')
            goto out;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 8;
            canon_member *bigger = realloc(m, c2 * sizeof *m);
            if (!bigger)
                goto out;
            m = bigger;
            cap = c2;
        }
        canon_member *mb = &m[n];
        memset(mb, 0, sizeof *mb);
        buf name = {0};
        mb->name = q;
        if (canon_string(&q, end, &name, &mb->key) != 0) {
            free(name.s);
            goto out;
        }
        n++;
        mb->name_len = name.len;
        free(name.s);
        q = skip_ws(q, end);
        if (q >= end || *q != ':')
            goto out;
        q = skip_ws(q + 1, end);
        buf v = {0};
        if (canon_value(&q, end, &v, depth + 1) != 0 || v.oom) {
            free(v.s);
            goto out;
        }
        mb->value = v.s;
        mb->value_len = v.len;
        q = skip_ws(q, end);
        if (q < end && *q == ',') {
            q = skip_ws(q + 1, end);
            continue;
        }
        if (q < end && *q == '}') {
            q++;
            break;
        }
        goto out;
    }
sorted:
    if (n > 1)
        qsort(m, n, sizeof *m, member_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(m[i - 1].key, m[i].key) == 0)
            goto out; /* a duplicate: the library's to report, on the original */
    bput(b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            bput(b, ",", 1);
        bput(b, m[i].name, m[i].name_len);
        bput(b, ":", 1);
        bput(b, m[i].value, m[i].value_len);
    }
    bput(b, "}", 1);
    *p = q;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        free(m[i].key);
        free(m[i].value);
    }
    free(m);
    return rc;
}

static int canon_value(const char **p, const char *end, buf *b, int depth)
{
    const char *q = *p;
    if (q >= end || depth > CANON_MAX_DEPTH)
        return 1;
    if (*q == '"')
        return canon_string(p, end, b, NULL);
    if (*q == '{')
        return canon_object(p, end, b, depth);
    if (*q == '[') {
        bput(b, "[", 1);
        q = skip_ws(q + 1, end);
        if (q < end && *q == ']') {
            bput(b, "]", 1);
            *p = q + 1;
            return 0;
        }
        for (int first = 1;; first = 0) {
            if (!first)
                bput(b, ",", 1);
            if (canon_value(&q, end, b, depth + 1) != 0)
                return 1;
            q = skip_ws(q, end);
            if (q < end && *q == ',') {
                q = skip_ws(q + 1, end);
                continue;
            }
            if (q < end && *q == ']') {
                bput(b, "]", 1);
                *p = q + 1;
                return 0;
            }
            return 1;
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t k = strlen(words[i]);
        if ((size_t)(end - q) >= k && memcmp(q, words[i], k) == 0 &&
            (q + k == end || ends_scalar(q[k]))) {
            bput(b, q, k);
            *p = q + k;
            return 0;
        }
    }
    size_t k = number_len(q, end);
    if (k == 0 || (q + k < end && !ends_scalar(q[k])))
        return 1;
    bput(b, q, k); /* every digit as written: 1e400 stays 1e400 */
    *p = q + k;
    return 0;
}

char *cli_json_canonical(const char *text)
{
    size_t len = strlen(text);
    const char *end = text + len;
    const char *p = skip_ws(text, end);
    if (p >= end || *p != '{')
        return NULL;
    buf b = {0};
    if (canon_value(&p, end, &b, 0) != 0 || skip_ws(p, end) != end || b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
