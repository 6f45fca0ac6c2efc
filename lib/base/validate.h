/* Input validation: everything a write or query takes is checked here,
 * before any I/O, so bad input never reaches the server. */
#ifndef PL_VALIDATE_H
#define PL_VALIDATE_H

#include <stddef.h>

#include "provledger.h"

/* Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) of n bytes. Returns 1 when valid. */
int pl_utf8_valid(const char *s, size_t n);

/* A required or optional text argument: valid UTF-8, within max bytes,
 * non-empty when required. `what` names it in the error message. */
int pl_check_text(const char *what, const char *s, size_t max, int required);

/* JSON text (duplicate keys rejected); object_only demands an object. */
int pl_check_json(const char *what, const char *s, int object_only);

/* A stored instant in [PL_TIME_MIN, PL_TIME_MAX]. */
int pl_check_instant(const char *what, pl_time t);

/* A query time: an instant, PL_TIME_NOW or PL_TIME_ANY. */
int pl_check_query_time(const char *what, pl_time t);

/* A whole change; `index` is its position in a batch, or -1 alone. */
int pl_check_change(const pl_change *c, long index);

#endif
