-- The (player, prop type) requests to publish: those without a prediction, or all of them with force.
WITH
{% include '_requests.sql' %}
SELECT player_lookup, prop_type
FROM requests
WHERE @force OR NOT has_prediction
ORDER BY player_lookup, prop_type
