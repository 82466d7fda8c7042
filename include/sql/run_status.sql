-- This run's row in the shared run history, if any (its status says whether the recorder ran).
SELECT status
FROM {{ tables.run_history }}
WHERE data_date = @data_date
  AND processor_name = @processor_name
  AND run_id = @run_id
