-- The players to request (kind 'request'): production-ready, without their prediction, staged or
-- consolidated (with force: one made by this batch), and with no request in flight (accepted by Pub/Sub
-- less than the in-flight window ago). With with_claims (the first fan-out's one-batch-per-date guard),
-- the same job also returns the date's claims as batch_claims.sql gives them (kind 'claim'): the guard
-- and the players in one query, read at the same moment.
WITH {% include "_prediction_state.sql" %}
SELECT
  'request' AS kind,
  player_lookup,
  game_id,
  opponent_team_abbr,
  is_home,
  CAST(NULL AS STRING) AS run_id,
  CAST(NULL AS TIMESTAMP) AS started_at,
  CAST(NULL AS TIMESTAMP) AS first_claimed_at
FROM state
WHERE NOT has_prediction
  AND NOT in_flight
{%- if with_claims | default(false) %}
UNION ALL
SELECT
  'claim' AS kind,
  CAST(NULL AS STRING) AS player_lookup,
  CAST(NULL AS STRING) AS game_id,
  CAST(NULL AS STRING) AS opponent_team_abbr,
  CAST(NULL AS BOOL) AS is_home,
  run_id,
  started_at,
  first_claimed_at
FROM (
{% include "batch_claims.sql" %})
{%- endif %}
ORDER BY kind, player_lookup
