/* The ledger's SQL, as the library sees it: ordered migrations and a
 * registry of every statement it runs. The SQL itself lives in .sql files
 * under lib/sql/ (migrations/NNN_slug.sql, statements/<name>.sql); at build
 * time lib/sql/embed.py turns them into the build directory's
 * sql_registry.c (the definitions below) and sql_registry.h (the enum
 * pl_sql_id). Texts are templates: "@S@" stands for the
 * configured schema as a quoted identifier and "@s@" for its bare name
 * (validated to [a-z0-9_]); pl_sql_expand fills them in. */
#ifndef PL_SCHEMA_H
#define PL_SCHEMA_H

#include <stddef.h>

/* enum pl_sql_id: PL_SQL_<X>, one per statement file (its "-- symbol:"),
 * in the order lib/meson.build lists them, then PL_SQL_COUNT. */
#include "sql_registry.h"

/* How a statement runs (the "-- class:" of its file; db/exec.c). */
enum pl_sql_class {
    PL_CLASS_POINT,      /* a short read on the ordinary pool share */
    PL_CLASS_WRITE,      /* changes state: retried only if never sent */
    PL_CLASS_HEAVY,      /* a long read: the heavy pool share */
    PL_CLASS_MAINTENANCE, /* DDL, refresh, archival: the long deadline */
    PL_CLASS_KEYSET      /* a point read planned for its parameters each time
                            (unnamed): keyset pages, whose generic plan cannot
                            know how few rows the position leaves */
};

typedef struct pl_stmt_def {
    const char *name;       /* prepared statement name (= its file name) */
    const char *sql;        /* template with @S@ / @s@ */
    int nparams;
    unsigned int types[12]; /* parameter type OIDs; 0: the server infers */
    int class;              /* enum pl_sql_class */
    int params_binary;      /* 1: parameters sent in binary, 0: as text */
    int result_binary;      /* 1: results read in binary, 0: as text */
} pl_stmt_def;

/* Every statement the library runs, by enum pl_sql_id. db/exec.c runs
 * them: its class decides the pool share, the deadline, the retry rules
 * and whether it is a named prepared statement. */
extern const pl_stmt_def pl_sql_registry[PL_SQL_COUNT];

/* Migrations, in order: migration i brings the schema to version i + 1. */
typedef struct pl_migration {
    const char *description;
    const char *text;       /* the script, run as one (template) */
    int version;            /* its number: i + 1 (tests/check_sql.c) */
    const char *file;       /* its file under lib/sql/migrations/ */
} pl_migration;

extern const pl_migration pl_migrations[];
extern const size_t pl_migration_count;

/* Expands a template for one schema; returns malloc'd text or NULL. */
char *pl_sql_expand(const char *template_sql, const char *schema);

/* 1 when name is a safe schema identifier: [a-z_][a-z0-9_]{0,62}. */
int pl_schema_name_valid(const char *name);

#endif
