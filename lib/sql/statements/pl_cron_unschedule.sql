-- name: pl_cron_unschedule
-- symbol: PL_SQL_CRON_UNSCHEDULE
-- params: text
-- param-format: text
-- result-format: text
-- class: write
-- $1 job name.
SELECT count(cron.unschedule(j.jobid))
FROM cron.job j WHERE j.jobname = $1::text
