-- name: pl_cron_schedule
-- symbol: PL_SQL_CRON_SCHEDULE
-- params: text, text, text
-- param-format: text
-- result-format: text
-- class: write
-- $1 job name, $2 schedule, $3 command.
SELECT cron.schedule($1::text, $2::text, $3::text)
