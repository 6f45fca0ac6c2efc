/* The ledger's SQL: ordered migrations and the named statements the library
 * runs. SQL lives only here; "@S@" stands for the configured schema as a
 * quoted identifier and "@s@" for its bare name (validated to [a-z0-9_]). */
#ifndef PL_SCHEMA_H
#define PL_SCHEMA_H

#include <stddef.h>

/* Named statements, prepared once per pooled connection. */
enum pl_stmt_id {
    PL_STMT_APPEND,
    PL_STMT_CURRENT,
    PL_STMT_CURRENT_PLAIN,
    PL_STMT_SNAPSHOT_CURRENT,
    PL_STMT_ASOF_TV,
    PL_STMT_ASOF_T,
    PL_STMT_SNAPSHOT_TV,
    PL_STMT_SNAPSHOT_T,
    PL_STMT_RANGE_FIELD,
    PL_STMT_RANGE_ALL,
    PL_STMT_HISTORY_FIELD,
    PL_STMT_HISTORY_ALL,
    PL_STMT_CACHE_LEASE,
    PL_STMT_CACHE_DISABLE,
    PL_STMT_REPLICA_LAG,
    PL_STMT_CACHE_SECRET,
    PL_STMT_CACHE_RECOVER,
    PL_STMT_COUNT
};

typedef struct pl_stmt_def {
    const char *name;      /* prepared statement name */
    const char *sql;       /* template with @S@ / @s@ */
    int nparams;
    unsigned int types[12]; /* parameter type OIDs */
} pl_stmt_def;

extern const pl_stmt_def pl_stmt_defs[PL_STMT_COUNT];

/* Migrations, in order: migration i brings the schema to version i + 1. */
typedef struct pl_migration {
    const char *description;
    const char *const *sql; /* NULL-terminated parts, run as one script */
} pl_migration;

extern const pl_migration pl_migrations[];
extern const size_t pl_migration_count;

/* Expands a template for one schema; returns malloc'd text or NULL. */
char *pl_sql_expand(const char *template_sql, const char *schema);

/* 1 when name is a safe schema identifier: [a-z_][a-z0-9_]{0,62}. */
int pl_schema_name_valid(const char *name);

#endif
