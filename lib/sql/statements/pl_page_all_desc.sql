-- name: pl_page_all_desc
-- symbol: PL_SQL_PAGE_ALL_DESC
-- params: text, timestamptz, timestamptz, timestamptz, int8, int8
-- param-format: text
-- result-format: binary
-- class: keyset
-- A keyset page (lib/api/page.c), all fields, newest first:
-- the records with transaction time in [$2, $3) (NULL: the entity's now, migration 11) strictly
-- before the position ($4 transaction time, $5 id) in (transaction_time,
-- id) order, at most $6 of them (NULL: all, for an iterator's cursor). The
-- position and the window are conditions on idx_prov_entity_tt (entity, time, id), migration 6,
-- so a page reads about $6 index entries whatever its depth.
-- Class keyset: planned for its parameters every time; a generic plan
-- estimates one row for the window and sorts the whole rest of the history.
-- Also the iterators' SELECT (pl_history_open, pl_range_open), as a cursor.
-- The first columns are PL_RECORD_COLUMNS (result.h), in its order.
SELECT id, entity_id, field_name, new_value, old_value, transaction_time, valid_time_start,
valid_time_end, source_type, change_reason, metadata, erased_at
FROM @S@.provenance_ledger
WHERE entity_id = $1::text
AND transaction_time >= coalesce($2::timestamptz, greatest(now(), (SELECT h.last_tt + interval '1 microsecond' FROM @S@.entity_head h WHERE h.entity_id = $1::text)))
AND transaction_time < coalesce($3::timestamptz, greatest(now(), (SELECT h.last_tt + interval '1 microsecond' FROM @S@.entity_head h WHERE h.entity_id = $1::text)))
AND (transaction_time, id) < ($4::timestamptz, $5::int8)
ORDER BY transaction_time DESC, id DESC LIMIT $6::int8
