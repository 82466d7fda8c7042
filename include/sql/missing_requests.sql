-- The players to request: production-ready, without their prediction, staged or consolidated (with force:
-- one made by this batch), and with no request in flight (accepted by Pub/Sub less than the in-flight window ago).
WITH {% include "_prediction_state.sql" %}
SELECT player_lookup, game_id, opponent_team_abbr, is_home
FROM state
WHERE NOT has_prediction
  AND NOT in_flight
ORDER BY player_lookup
