/* Validation of user input (see validate.h). */
#include "validate.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int pl_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c == 0)
                return 0;
            p++;
            continue;
        }
        size_t len;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - p) < len)
            return 0;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += len;
    }
    return 1;
}

int pl_check_text(const char *what, const char *s, size_t max, int required)
{
    if (!s)
        return required ? pl_fail(PL_EINVAL, "%s: required, got NULL", what) : PL_OK;
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return pl_fail(PL_EINVAL, "%s: longer than %zu bytes", what, max);
    if (required && n == 0)
        return pl_fail(PL_EINVAL, "%s: must not be empty", what);
    if (!pl_utf8_valid(s, n))
        return pl_fail(PL_EINVAL, "%s: not valid UTF-8", what);
    return PL_OK;
}

/* Length of the JSON number at p (RFC 8259 grammar), 0 when none. */
static size_t number_len(const char *p)
{
    const char *q = p;
    if (*q == '-')
        q++;
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (*q >= '0' && *q <= '9')
            q++;
    } else {
        return 0;
    }
    if (*q == '.') {
        if (!(q[1] >= '0' && q[1] <= '9'))
            return 0;
        q++;
        while (*q >= '0' && *q <= '9')
            q++;
    }
    if (*q == 'e' || *q == 'E') {
        const char *e = q + 1;
        if (*e == '+' || *e == '-')
            e++;
        if (!(*e >= '0' && *e <= '9'))
            return 0;
        while (*e >= '0' && *e <= '9')
            e++;
        q = e;
    }
    return (size_t)(q - p);
}

/* PostgreSQL's numeric, which jsonb stores numbers in, holds at most this
 * many decimal digits before the point and after it (its weight and
 * display scale limits); a number outside fails the insert with "value
 * overflows numeric format", naming no field. */
#define NUMERIC_MAX_INT_DIGITS 131072
#define NUMERIC_MAX_SCALE 16383

/* Whether the JSON number p[0..k) (grammar already checked) fits numeric:
 * its display scale (fraction digits written, less the exponent) and the
 * position of its leading nonzero digit (after the exponent) are in range.
 * A zero has no leading digit: only its scale counts. */
static int number_storable(const char *p, size_t k)
{
    const char *end = p + k, *q = p;
    if (*q == '-')
        q++;
    int64_t int_sig = 0, frac = 0, first_frac_nonzero = 0, seen_nonzero = 0;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        if (*q != '0')
            seen_nonzero = 1;
        if (seen_nonzero)
            int_sig++;
    }
    if (q < end && *q == '.') {
        for (q++; q < end && *q >= '0' && *q <= '9'; q++) {
            frac++;
            if (*q != '0' && !seen_nonzero && !first_frac_nonzero)
                first_frac_nonzero = frac;
        }
    }
    int64_t exp = 0;
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        int neg = *q == '-';
        if (*q == '+' || *q == '-')
            q++;
        /* Saturate: past a billion the answer no longer changes. */
        for (; q < end; q++)
            exp = exp < 1000000000 ? exp * 10 + (*q - '0') : exp;
        exp = neg ? -exp : exp;
    }
    if (frac - exp > NUMERIC_MAX_SCALE)
        return 0;
    if (int_sig > 0)
        return int_sig + exp <= NUMERIC_MAX_INT_DIGITS;
    if (first_frac_nonzero > 0)
        return exp - first_frac_nonzero + 1 <= NUMERIC_MAX_INT_DIGITS;
    return 1; /* zero */
}

/* JSON numbers have no size limit, jansson's int64 and double have: check
 * each number's grammar and range here and hand jansson a copy in which
 * every number is a plain 0, so it judges only structure, strings and
 * duplicate keys. NULL with *bad set at a malformed (*malformed) or
 * unstorable number. */
static char *neutralize_numbers(const char *s, size_t n, const char **bad, size_t *bad_len,
                                int *malformed)
{
    *bad = NULL;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    int in_string = 0;
    for (const char *p = s; *p;) {
        if (in_string) {
            if (*p == '\\' && p[1]) {
                *o++ = *p++;
                *o++ = *p++;
                continue;
            }
            if (*p == '"')
                in_string = 0;
            *o++ = *p++;
            continue;
        }
        if (*p == '"') {
            in_string = 1;
            *o++ = *p++;
            continue;
        }
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            size_t k = number_len(p);
            if (k == 0) {
                *o++ = *p++; /* not a number: let jansson report it */
                continue;
            }
            /* "1.5.5", "1e5.5", "01": a number must not run on into more
             * of one (replaced by 0 piecewise, jansson would see "0.0"). */
            char next = p[k];
            int runs_on = next == '.' || next == 'e' || next == 'E' || next == '+' || next == '-' ||
                          (next >= '0' && next <= '9');
            if (runs_on || !number_storable(p, k)) {
                free(out);
                *bad = p;
                *bad_len = k;
                *malformed = runs_on;
                return NULL;
            }
            *o++ = '0';
            p += k;
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
    return out;
}

int pl_check_json(const char *what, const char *s, int object_only)
{
    int rc = pl_check_text(what, s, PL_MAX_VALUE_BYTES, 1);
    if (rc)
        return rc;
    const char *bad;
    size_t bad_len;
    int malformed = 0;
    char *copy = neutralize_numbers(s, strlen(s), &bad, &bad_len, &malformed);
    if (!copy && bad && malformed) {
        int line = 1;
        for (const char *q = s; q < bad; q++)
            line += *q == '\n';
        return pl_fail(PL_EINVAL, "%s: invalid JSON near line %d: malformed number at byte %zu", what, line,
                       (size_t)(bad - s) + 1);
    }
    if (!copy && bad)
        return pl_fail(PL_EINVAL,
                       "%s: the number %.*s%s at byte %zu is outside what PostgreSQL can store (at most "
                       "%d digits before the decimal point and %d after)",
                       what, bad_len > 40 ? 40 : (int)bad_len, bad, bad_len > 40 ? "..." : "",
                       (size_t)(bad - s) + 1, NUMERIC_MAX_INT_DIGITS, NUMERIC_MAX_SCALE);
    if (!copy)
        return pl_fail(PL_ENOMEM, "out of memory");
    json_error_t err;
    json_t *j = json_loads(copy, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    free(copy);
    if (!j)
        return pl_fail(PL_EINVAL, "%s: invalid JSON near line %d: %s", what, err.line, err.text);
    int is_object = json_is_object(j);
    json_decref(j);
    if (object_only && !is_object)
        return pl_fail(PL_EINVAL, "%s: must be a JSON object", what);
    return PL_OK;
}

int pl_check_instant(const char *what, pl_time t)
{
    if (t < PL_TIME_MIN || t > PL_TIME_MAX)
        return pl_fail(PL_EINVAL, "%s: %lld is outside 0001-01-01..9999-12-31", what, (long long)t);
    return PL_OK;
}

int pl_check_query_time(const char *what, pl_time t)
{
    if (t == PL_TIME_NOW || t == PL_TIME_ANY)
        return PL_OK;
    return pl_check_instant(what, t);
}

/* Prefixes messages with the batch index so callers can find the change. */
#define CHECK(expr)                                                                   \
    do {                                                                              \
        int rc_ = (expr);                                                             \
        if (rc_) {                                                                    \
            if (index >= 0)                                                           \
                return pl_fail(rc_, "changes[%ld].%s", index, pl_errmsg());          \
            return rc_;                                                               \
        }                                                                             \
    } while (0)

int pl_check_change(const pl_change *c, long index)
{
    if (!c)
        return pl_fail(PL_EINVAL, "change: NULL");
    CHECK(pl_check_text("entity_id", c->entity_id, PL_MAX_KEY_BYTES, 1));
    CHECK(pl_check_text("field_name", c->field_name, PL_MAX_KEY_BYTES, 1));
    CHECK(pl_check_text("source_type", c->source_type, PL_MAX_KEY_BYTES, 1));
    CHECK(pl_check_text("change_reason", c->change_reason, PL_MAX_REASON_BYTES, 0));
    CHECK(pl_check_text("idempotency_key", c->idempotency_key, PL_MAX_KEY_BYTES, 0));
    if (c->idempotency_key && !c->idempotency_key[0])
        CHECK(pl_fail(PL_EINVAL, "idempotency_key: must not be empty (use NULL for none)"));
    CHECK(pl_check_json("new_value", c->new_value, 0));
    if (c->old_value)
        CHECK(pl_check_json("old_value", c->old_value, 0));
    if (c->metadata)
        CHECK(pl_check_json("metadata", c->metadata, 1));
    if (c->valid_from != PL_TIME_NOW)
        CHECK(pl_check_instant("valid_from", c->valid_from));
    if (c->valid_to != PL_TIME_INFINITY)
        CHECK(pl_check_instant("valid_to", c->valid_to));
    if (c->valid_from != PL_TIME_NOW && c->valid_from >= c->valid_to)
        CHECK(pl_fail(PL_EINVAL, "valid_from: must be before valid_to"));
    return PL_OK;
}
