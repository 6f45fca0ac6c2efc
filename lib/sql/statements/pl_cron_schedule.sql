-- name: pl_cron_schedule
-- symbol: pl_sql_cron_schedule
-- params: text, text, text
-- param-format: text
-- result-format: text
-- class: write
-- $1 job name, $2 schedule, $3 command.
SELECT cron.schedule($1::text, $2::text, $3::text)
