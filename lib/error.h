/* Per-thread error messages: every failing call records why. */
#ifndef PL_ERROR_H
#define PL_ERROR_H

#include "provledger.h"

/* Records a formatted message for the calling thread and returns code, so a
 * failure path reads `return pl_fail(PL_EINVAL, "entity_id: empty");`. */
int pl_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
