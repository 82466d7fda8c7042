-- When each of these dates' batches last finished (this DAG's or the coordinator's rows, which share a
-- name): a Phase 4 event for the date published after that came too late to be acted on.
SELECT data_date, MAX(processed_at) AS finished_at
FROM {{ tables.run_history }}
WHERE data_date IN UNNEST(@dates)
  AND processor_name = @processor_name
  AND status IN UNNEST(@finished_statuses)
GROUP BY data_date
