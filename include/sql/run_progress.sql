-- How far the game date's run started at or after the given time has got, read from what its tasks write
-- (make run follows a run by this, not by its log): its run-history row, the events its wait stored,
-- the requests it published, the predictions made and the alerts raised since then.
SELECT
  (
    SELECT status
    FROM {{ tables.run_history }}
    WHERE data_date = @game_date AND processor_name = @processor_name AND started_at >= @since
    ORDER BY started_at DESC
    LIMIT 1
  ) AS run_status,
  (
    SELECT COUNT(*)
    FROM {{ tables.event_inbox }}
    WHERE game_date = @game_date AND received_at >= @since
  ) AS events,
  (
    SELECT COUNT(*)
    FROM {{ tables.request_ledger }}
    WHERE game_date = @game_date AND published_at >= @since
  ) AS requests,
  (
    SELECT COUNT(DISTINCT player_lookup)
    FROM {{ tables.predictions }}
    WHERE game_date = @game_date AND created_at >= @since
  ) AS players_predicted,
  (
    SELECT COUNT(*)
    FROM {{ tables.alerts }}
    WHERE game_date = @game_date AND created_at >= @since
  ) AS alerts
