-- name: pl_seal_keys
-- symbol: PL_SQL_SEAL_KEYS
-- params: text[], bytea[]
-- param-format: binary
-- result-format: binary
-- class: maintenance
-- The commitment keys of these entities ($2: candidates for the missing).
SELECT entity_id, value_key, sealed_tt FROM @S@.pl_seal_keys($1, $2)
