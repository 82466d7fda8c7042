-- Do predictions cover every wanted request yet? `done` ends the straggler wait.
WITH
{% include '_requests.sql' %}
SELECT
  COUNT(*) AS requests_wanted,
  COUNTIF(has_prediction) AS requests_done,
  COUNTIF(NOT has_prediction) AS requests_missing,
  COUNT(DISTINCT IF(has_prediction, NULL, player_lookup)) AS players_missing,
  COUNT(DISTINCT player_lookup) AS players_wanted,
  COUNTIF(NOT has_prediction) = 0 AS done
FROM requests
