/* RFC 8785 JSON Canonicalization Scheme (JCS) of JSON text. */
#ifndef PL_JCS_H
#define PL_JCS_H

#include <stddef.h>

#include "wire.h"

/* Returned when the text holds a number no IEEE-754 double can hold
 * (1e400: PostgreSQL's numeric can): JCS has no form for it. */
#define PL_JCS_UNREPRESENTABLE 1

/* Appends the canonical form of the JSON text json[0..len) to out:
 * members sorted by their names' UTF-16 code units, strings escaped as
 * RFC 8785 3.2.2.2 says, numbers as ECMAScript prints the nearest double.
 * PL_OK, PL_JCS_UNREPRESENTABLE, PL_EINVAL (malformed, duplicate names,
 * lone surrogates) or PL_ENOMEM. */
int pl_jcs(pl_buf *out, const char *json, size_t len);

#endif
