-- Do predictions cover every production-ready player yet? `done` ends the straggler wait;
-- `players_in_flight` (missing, but requested within the in-flight window) keeps it from settling.
WITH {% include "_prediction_state.sql" %}
SELECT
  COUNT(*) AS players_ready,
  COUNTIF(has_prediction) AS players_complete,
  COUNTIF(NOT has_prediction) AS players_missing,
  COUNTIF(NOT has_prediction AND in_flight) AS players_in_flight,
  COUNT(*) > 0 AND COUNTIF(NOT has_prediction) = 0 AS done
FROM state
