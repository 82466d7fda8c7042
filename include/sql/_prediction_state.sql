-- A partial (leading underscore), included by prediction_coverage.sql and missing_requests.sql: per
-- ready player, whether it has its prediction and whether a request for it is in flight.
-- A player has his prediction when an active one is in the predictions table or when this batch's
-- workers have staged active rows for him that consolidation has not merged yet (docs/platform.md §7.6):
-- a cleared or straggler round never requests a staged player again. staging_tables are the batch's
-- tables, from list_tables, each checked against a name pattern (nba_phase5.bigquery.consolidation), read in the
-- same job; none rendered (the dedup, the final check), only the predictions table counts. The staging
-- tables are unpartitioned; the date still narrows them.
-- With force, the batch is a new generation: only the predictions it made or updated and the requests
-- it sent (at or after batch_started_at) count. A request Pub/Sub accepted less than in_flight_seconds
-- ago is in flight (the ledger) and is never sent again while it is. (No parameter markers in comments:
-- the BigQuery emulator counts them as parameters.)
ready AS (
  SELECT
    player_lookup,
    ANY_VALUE(game_id) AS game_id,
    ANY_VALUE(opponent_team_abbr) AS opponent_team_abbr,
    ANY_VALUE(is_home) AS is_home
  FROM {{ tables.feature_store }}
  WHERE game_date = @game_date
    AND is_production_ready
  GROUP BY player_lookup
),
predicted AS (
  SELECT player_lookup
  FROM {{ tables.predictions }}
  WHERE game_date = @game_date
    AND is_active
    -- A consolidation that matched an existing row updates it in place (created_at kept).
    AND (NOT @force OR COALESCE(updated_at, created_at) >= @batch_started_at)
{%- for table in staging_tables | default([]) %}
  UNION DISTINCT
  SELECT player_lookup FROM {{ staging_dataset }}.{{ table }} WHERE game_date = @game_date AND is_active
{%- endfor %}
),
in_flight AS (
  SELECT DISTINCT player_lookup
  FROM {{ tables.request_ledger }}
  WHERE game_date = @game_date
    AND published_at > TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL @in_flight_seconds SECOND)
    AND (NOT @force OR published_at >= @batch_started_at)
),
state AS (
  SELECT
    ready.player_lookup,
    ready.game_id,
    ready.opponent_team_abbr,
    ready.is_home,
    predicted.player_lookup IS NOT NULL AS has_prediction,
    in_flight.player_lookup IS NOT NULL AS in_flight
  FROM ready
  LEFT JOIN predicted USING (player_lookup)
  LEFT JOIN in_flight USING (player_lookup)
)
