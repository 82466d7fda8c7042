-- This run's row in the shared run history, if any (its status says whether the recorder ran; its
-- summary keeps the batch and correlation ids a run that dies must not lose).
SELECT status, TO_JSON_STRING(summary) AS summary
FROM {{ tables.run_history }}
WHERE data_date = @data_date
  AND processor_name = @processor_name
  AND run_id = @run_id
