-- Shared CTEs: the requests a game date wants (production-ready players × prop_types) and the
-- predictions workers have already written for them.
wanted AS (
  SELECT features.player_lookup, prop_type
  FROM nba_predictions.ml_feature_store_v2 AS features
  CROSS JOIN UNNEST(@prop_types) AS prop_type
  WHERE features.game_date = @game_date
    AND features.is_production_ready
),
predicted AS (
  SELECT DISTINCT player_lookup, prop_type
  FROM nba_predictions.player_prop_predictions
  WHERE game_date = @game_date
),
requests AS (
  SELECT wanted.player_lookup, wanted.prop_type, predicted.player_lookup IS NOT NULL AS has_prediction
  FROM wanted
  LEFT JOIN predicted
    ON predicted.player_lookup = wanted.player_lookup AND predicted.prop_type = wanted.prop_type
)
