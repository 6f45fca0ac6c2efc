/* Status texts and the per-thread last error message. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PL_ERRMSG_MAX sizeof(((pl_errsave *)0)->text)

static _Thread_local char last_message[PL_ERRMSG_MAX];

const char *pl_strerror(int code)
{
    switch (code) {
    case PL_OK: return "success";
    case PL_NOT_FOUND: return "no record answers the question";
    case PL_ITEROVER: return "iteration is over";
    case PL_EINVAL: return "invalid argument";
    case PL_ENOMEM: return "out of memory";
    case PL_ECONNECT: return "cannot connect to PostgreSQL, or the connection broke";
    case PL_EDB: return "PostgreSQL reported an error";
    case PL_ETIMEOUT: return "timed out";
    case PL_ESCHEMA: return "ledger schema missing or of another version";
    case PL_ECONFLICT: return "conflict with what the ledger already holds";
    case PL_EPERM: return "operation not permitted";
    case PL_EUNKNOWN: return "outcome of the write is unknown";
    case PL_EUNSUPPORTED: return "not supported by this server (a needed extension is missing)";
    case PL_EVERIFY: return "did not verify (evidence of tampering or corruption)";
    default: return "unknown status code";
    }
}

const char *pl_errmsg(void)
{
    return last_message;
}

void pl_error_save(pl_errsave *s)
{
    memcpy(s->text, last_message, sizeof s->text);
}

void pl_error_restore(const pl_errsave *s)
{
    memcpy(last_message, s->text, sizeof last_message);
}

/* (pl_fail): not the analyzer's macro of error.h */
int (pl_fail)(int code, const char *fmt, ...)
{
    /* Format aside first: callers may pass pl_errmsg() itself. */
    char buf[PL_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_message, buf, sizeof buf);
    return code;
}
