-- This DAG's run-history rows for a game date: the candidates for the date's one live batch (the
-- task asks Airflow which of these runs are still live). started_at never changes once written, so
-- every run orders the candidates the same way.
SELECT run_id, started_at, status
FROM nba_reference.processor_run_history
WHERE data_date = @game_date
  AND processor_name = @processor_name
ORDER BY started_at, run_id
LIMIT 50
