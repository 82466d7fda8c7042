-- How far the batch for game_date has got: players with every prop predicted, with some, with none.
WITH
{% include '_requests.sql' %},
per_player AS (
  SELECT player_lookup, COUNTIF(has_prediction) AS props_done, COUNT(*) AS props_wanted
  FROM requests
  GROUP BY player_lookup
)
SELECT
  COUNT(*) AS players_ready,
  COUNTIF(props_done = props_wanted) AS players_complete,
  COUNTIF(props_done > 0) AS players_started,
  SUM(props_wanted) AS requests_wanted,
  SUM(props_done) AS requests_done
FROM per_player
