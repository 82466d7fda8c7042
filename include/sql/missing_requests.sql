-- The players to request: production-ready without an active prediction, or all of them with force.
WITH ready AS (
  SELECT player_lookup, ANY_VALUE(game_id) AS game_id
  FROM nba_predictions.ml_feature_store_v2
  WHERE game_date = @game_date
    AND is_production_ready
  GROUP BY player_lookup
),
predicted AS (
  SELECT DISTINCT player_lookup
  FROM nba_predictions.player_prop_predictions
  WHERE game_date = @game_date
    AND is_active
)
SELECT ready.player_lookup, ready.game_id
FROM ready
LEFT JOIN predicted USING (player_lookup)
WHERE @force OR predicted.player_lookup IS NULL
ORDER BY ready.player_lookup
