-- Do active predictions cover every production-ready player yet? `done` ends the straggler wait.
WITH ready AS (
  SELECT DISTINCT player_lookup
  FROM nba_predictions.ml_feature_store_v2
  WHERE game_date = @game_date
    AND is_production_ready
),
predicted AS (
  SELECT DISTINCT player_lookup
  FROM nba_predictions.player_prop_predictions
  WHERE game_date = @game_date
    AND is_active
)
SELECT
  COUNT(*) AS players_ready,
  COUNTIF(predicted.player_lookup IS NOT NULL) AS players_complete,
  COUNTIF(predicted.player_lookup IS NULL) AS players_missing,
  COUNT(*) > 0 AND COUNTIF(predicted.player_lookup IS NULL) = 0 AS done
FROM ready
LEFT JOIN predicted USING (player_lookup)
