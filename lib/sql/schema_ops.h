/* The SQL texts run by ops.c, analytics.c, iter.c and health.c, under the
 * names they have always had. Each is the text of one file of
 * lib/sql/statements/ (the file's symbol line names the array), embedded at
 * build time by lib/sql/embed.py into sql_registry.c, where the registry of
 * schema.h points at the same arrays. Migration 2 (materialized views,
 * their refresh log, partition archival, analytics indexes) is
 * lib/sql/migrations/002_views_partitions.sql. Templates use "@S@" (quoted
 * schema) and "@s@" (bare schema), expanded by pl_sql_expand. */
#ifndef PL_SCHEMA_OPS_H
#define PL_SCHEMA_OPS_H

/* Migration 2, NULL-terminated parts (also pl_migrations[1]). */
extern const char *const pl_migration_2[];

/* Partitions. */
extern const char pl_sql_partitions_ensure[];  /* $1 int4 months */
extern const char pl_sql_partitions_list[];
extern const char pl_sql_partitions_detach[];  /* $1 timestamptz */
extern const char pl_sql_partition_attach[];   /* $1 text name */

/* Materialized views. */
extern const char pl_sql_refresh[];
extern const char pl_sql_refresh_errors[];
extern const char pl_sql_cron_present[];
extern const char pl_sql_cron_schedule[];      /* $1 job, $2 schedule, $3 command */
extern const char pl_sql_cron_unschedule[];    /* $1 job */
extern const char pl_sql_freshness[];

/* Analytics. The first three are SELECTs whose first columns are
 * PL_RECORD_COLUMNS, opened as binary cursors. */
extern const char pl_sql_audit[];              /* $1 from, $2 to, $3 source */
extern const char pl_sql_search_setup[];       /* run first in the transaction */
extern const char pl_sql_search_setup_all[];   /* the same for the query {} */
extern const char pl_sql_search_first[];       /* $1 query, $2 limit */
extern const char pl_sql_search_next[];        /* $1 query, $2 limit, $3 tt, $4 id */
extern const char pl_sql_dashboard_base[];     /* $1 from, $2 to, $3 source */
extern const char pl_sql_dashboard_view_state[];
extern const char pl_sql_dashboard_view[];     /* $1 from, $2 to, $3 source */
extern const char pl_sql_corrections[];        /* $1 from, $2 to */

/* Monitoring. */
extern const char pl_sql_indexes[];            /* $1 schema */
extern const char pl_sql_pgss_present[];
extern const char pl_sql_slow_statements[];    /* $1 limit */

#endif
