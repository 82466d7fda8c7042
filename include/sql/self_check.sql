-- The post-deploy self-check's query job (dags/nba_phase5_self_check.py, nba_phase5.airflow.self_check): one
-- partition of a table in each of the package's datasets, so the job runs only where they are. Created in
-- another location it fails ("Not found: Dataset ... was not found in location ...", docs/platform.md §0);
-- without read access it fails too. Every column is true when the job runs at all.
SELECT
  (SELECT COUNT(*) FROM {{ tables.run_history }} WHERE data_date = @probe_date) >= 0 AS run_history_readable,
  (SELECT COUNT(*) FROM {{ tables.predictions }} WHERE game_date = @probe_date) >= 0 AS predictions_readable,
  (SELECT COUNT(*) FROM {{ tables.schedule }} WHERE game_date = @probe_date) >= 0 AS schedule_readable
