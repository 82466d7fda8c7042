-- The runs that claimed a game date's batch (the task asks Airflow which are still live). A run's
-- latest claim orders it, so a cleared run queues behind one already holding the date; its first
-- claim starts a forced batch's generation, which a cleared forced run keeps.
SELECT run_id, MAX(claimed_at) AS started_at, MIN(claimed_at) AS first_claimed_at
FROM {{ tables.batch_claims }}
WHERE game_date = @game_date
GROUP BY run_id
ORDER BY started_at, run_id
