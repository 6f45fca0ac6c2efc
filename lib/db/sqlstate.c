/* The SQLSTATE table (see sqlstate.h). Order matters: the first match wins,
 * so exact states come before the class prefixes that contain them. */
#include "sqlstate.h"

#include <string.h>

#include "provledger.h"

static const pl_sqlstate_rule rules[] = {
    /* The client's deadline cancelled it (pool.c sends the cancel). */
    {"57014", NULL, PL_ETIMEOUT, PL_STATE_CANCELLED, NULL},
    /* Connection exceptions, and the operator stopping the server. */
    {"08", NULL, PL_ECONNECT, PL_STATE_BROKEN, NULL},
    {"57P", NULL, PL_ECONNECT, PL_STATE_BROKEN, NULL},
    /* The schema is missing or another version: an undefined table,
     * function, schema or column. */
    {"42P01", NULL, PL_ESCHEMA, PL_STATE_PLAIN, NULL},
    {"42883", NULL, PL_ESCHEMA, PL_STATE_PLAIN, NULL},
    {"3F000", NULL, PL_ESCHEMA, PL_STATE_PLAIN, NULL},
    {"42703", NULL, PL_ESCHEMA, PL_STATE_PLAIN, NULL},
    /* The ledger's own: a reused idempotency key, times out of order. */
    {"PLC01", NULL, PL_ECONFLICT, PL_STATE_PLAIN, NULL},
    {"PLC02", NULL, PL_ECONFLICT, PL_STATE_PLAIN, NULL},
    /* Append-only guards, and the server refusing a privilege. */
    {"PLA01", NULL, PL_EPERM, PL_STATE_PLAIN, NULL},
    {"42501", NULL, PL_EPERM, PL_STATE_PLAIN, NULL},
    {"40P01", NULL, PL_EDB, PL_STATE_ROLLED_BACK, NULL},
    {"40001", NULL, PL_EDB, PL_STATE_ROLLED_BACK, NULL},
    {"23514", "provenance_valid_interval", PL_EINVAL, PL_STATE_PLAIN,
     "valid_to: must be after valid_from (which defaults to the transaction time)"},
    /* Data exceptions: the caller's values. */
    {"22", NULL, PL_EINVAL, PL_STATE_PLAIN, NULL},
    {"", NULL, PL_EDB, PL_STATE_PLAIN, NULL},
};

const pl_sqlstate_rule *pl_sqlstate_lookup(const char *state, const char *constraint)
{
    const size_t n = sizeof rules / sizeof rules[0];
    for (size_t i = 0; i + 1 < n; i++) {
        const pl_sqlstate_rule *r = &rules[i];
        if (strncmp(state, r->state, strlen(r->state)) != 0)
            continue;
        if (r->constraint && !(constraint && strcmp(constraint, r->constraint) == 0))
            continue;
        return r;
    }
    return &rules[n - 1];
}
