-- A partial (leading underscore), included by prediction_coverage.sql and missing_requests.sql: per
-- ready player, whether it has its prediction and whether a request for it is in flight.
-- With force, the batch is a new generation: only the predictions it made and the requests it sent (at
-- or after batch_started_at) count. A request Pub/Sub accepted less than in_flight_seconds ago is in
-- flight (the ledger) and is never sent again while it is. (No parameter markers in comments: the
-- BigQuery emulator counts them as parameters.)
ready AS (
  SELECT player_lookup, ANY_VALUE(game_id) AS game_id
  FROM {{ tables.feature_store }}
  WHERE game_date = @game_date
    AND is_production_ready
  GROUP BY player_lookup
),
predicted AS (
  SELECT DISTINCT player_lookup
  FROM {{ tables.predictions }}
  WHERE game_date = @game_date
    AND is_active
    AND (NOT @force OR created_at >= @batch_started_at)
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
    predicted.player_lookup IS NOT NULL AS has_prediction,
    in_flight.player_lookup IS NOT NULL AS in_flight
  FROM ready
  LEFT JOIN predicted USING (player_lookup)
  LEFT JOIN in_flight USING (player_lookup)
)
