-- name: pl_migrate_lock
-- symbol: PL_SQL_MIGRATE_LOCK
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- One migrator at a time per schema, across every process.
SELECT pg_advisory_xact_lock(hashtextextended('@s@.provledger.migrate', 0))
