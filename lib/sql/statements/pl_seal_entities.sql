-- name: pl_seal_entities
-- symbol: PL_SQL_SEAL_ENTITIES
-- params: int8
-- param-format: text
-- result-format: text
-- class: maintenance
-- After a seal's last chunk: each entity's sealed time moves to its
-- latest record among the leaves from index $1 (the tree's size before).
SELECT @S@.pl_seal_entities($1::int8)
