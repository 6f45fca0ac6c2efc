-- name: pl_seal_xmin
-- symbol: PL_SQL_SEAL_XMIN
-- params: none
-- param-format: text
-- result-format: text
-- class: maintenance
-- Every transaction below this one has ended: its records are final.
SELECT pg_snapshot_xmin(pg_current_snapshot())::text
