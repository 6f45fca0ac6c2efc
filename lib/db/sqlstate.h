/* What a PostgreSQL error means to the library: the status code a SQLSTATE
 * maps to, and what it says about the connection and about retrying. One
 * table (sqlstate.c), read by the pool when a statement fails. */
#ifndef PL_SQLSTATE_H
#define PL_SQLSTATE_H

/* What an error says besides its status code. */
enum pl_sqlstate_effect {
    PL_STATE_PLAIN = 0,        /* the statement failed, nothing more */
    PL_STATE_BROKEN = 1,       /* the connection is gone (admin shutdown,
                                  connection failure): drop it and treat
                                  its siblings as suspect */
    PL_STATE_ROLLED_BACK = 2,  /* deadlock or serialization failure: the
                                  server rolled back, the whole call may
                                  simply run again */
    PL_STATE_CANCELLED = 3     /* query_canceled: our statement deadline */
};

typedef struct pl_sqlstate_rule {
    const char *state;      /* SQLSTATE, or a class prefix ("08") */
    const char *constraint; /* only for violations of this constraint, or NULL */
    int code;               /* PL_* status */
    int effect;             /* enum pl_sqlstate_effect */
    const char *message;    /* replaces the server's, or NULL */
} pl_sqlstate_rule;

/* The first rule matching state (and constraint, may be NULL); never NULL:
 * the last rule maps everything else to PL_EDB. */
const pl_sqlstate_rule *pl_sqlstate_lookup(const char *state, const char *constraint);

#endif
