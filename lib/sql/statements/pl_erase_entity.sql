-- name: pl_erase_entity
-- symbol: PL_SQL_ERASE_ENTITY
-- params: text, text, int8[], bytea[]
-- param-format: binary
-- result-format: text
-- class: maintenance
-- Erases the values (see 005_transparency_log.sql); returns the count.
SELECT @S@.pl_erase_entity($1, $2, $3, $4)
