-- name: pl_page_field_asc
-- symbol: PL_SQL_PAGE_FIELD_ASC
-- params: text, text, timestamptz, timestamptz, timestamptz, int8, int8
-- param-format: text
-- result-format: binary
-- class: keyset
-- A keyset page (lib/api/page.c), one field, oldest first:
-- the records with transaction time in [$3, $4) (NULL: the entity's now, migration 11) strictly
-- after the position ($5 transaction time, $6 id) in (transaction_time,
-- id) order, at most $7 of them (NULL: all, for an iterator's cursor). The
-- position and the window are conditions on idx_prov_tt (entity, field, time DESC, id DESC),
-- so a page reads about $7 index entries whatever its depth.
-- Class keyset: planned for its parameters every time; a generic plan
-- estimates one row for the window and sorts the whole rest of the history.
-- Also the iterators' SELECT (pl_history_open, pl_range_open), as a cursor.
-- The first columns are PL_RECORD_COLUMNS (result.h), in its order.
SELECT id, entity_id, field_name, new_value, old_value, transaction_time, valid_time_start,
valid_time_end, source_type, change_reason, metadata, erased_at
FROM @S@.provenance_ledger
WHERE entity_id = $1::text AND field_name = $2::text
AND transaction_time >= coalesce($3::timestamptz, greatest(now(), (SELECT h.last_tt + interval '1 microsecond' FROM @S@.entity_head h WHERE h.entity_id = $1::text)))
AND transaction_time < coalesce($4::timestamptz, greatest(now(), (SELECT h.last_tt + interval '1 microsecond' FROM @S@.entity_head h WHERE h.entity_id = $1::text)))
AND (transaction_time, id) > ($5::timestamptz, $6::int8)
ORDER BY transaction_time, id LIMIT $7::int8
