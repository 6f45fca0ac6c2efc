/* The ledger's SQL, as the library sees it: ordered migrations and a
 * registry of every statement it runs. The SQL itself lives in .sql files
 * under lib/sql/ (migrations/NNN_slug.sql, statements/<name>.sql); at build
 * time lib/sql/embed.py turns them into the build directory's
 * sql_registry.c (the definitions below) and sql_registry.h (the enums
 * pl_stmt_id and pl_sql_id). Texts are templates: "@S@" stands for the
 * configured schema as a quoted identifier and "@s@" for its bare name
 * (validated to [a-z0-9_]); pl_sql_expand fills them in. */
#ifndef PL_SCHEMA_H
#define PL_SCHEMA_H

#include <stddef.h>

/* enum pl_stmt_id: PL_STMT_<X>, one per statement file whose symbol is
 * PL_STMT_<X> (the core's named statements, prepared once per pooled
 * connection), in the order lib/meson.build lists them, then PL_STMT_COUNT.
 * enum pl_sql_id: PL_SQL_<X>, one per statement of the registry, the
 * core's first (so PL_SQL_<X> == PL_STMT_<X>), then PL_SQL_COUNT. */
#include "sql_registry.h"

/* How a statement runs today (the "-- class:" of its file). */
enum pl_sql_class {
    PL_CLASS_POINT,      /* a short read on the ordinary pool share */
    PL_CLASS_WRITE,      /* changes state: retried only if never sent */
    PL_CLASS_HEAVY,      /* a long read: the heavy pool share */
    PL_CLASS_MAINTENANCE /* DDL, refresh, archival: the long deadline */
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

/* The core's statements, by enum pl_stmt_id (pool.c prepares them). */
extern const pl_stmt_def pl_stmt_defs[PL_STMT_COUNT];

/* Every statement the library runs, by enum pl_sql_id: the core's (the
 * same entries as pl_stmt_defs) and those of operations, analytics and
 * health, whose texts are also the pl_sql_* arrays of schema_ops.h. Those
 * run today as text with no declared types (pl_ops_exec, pl_cursor_open);
 * their types record the cast each placeholder gets in the text. */
extern const pl_stmt_def pl_sql_registry[PL_SQL_COUNT];

/* Migrations, in order: migration i brings the schema to version i + 1. */
typedef struct pl_migration {
    const char *description;
    const char *const *sql; /* NULL-terminated parts, run as one script */
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
