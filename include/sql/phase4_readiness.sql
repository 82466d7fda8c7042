-- Is Phase 4 done for game_date? Its run-history success row, and enough production-ready players.
WITH phase4_run AS (
  SELECT COUNT(*) AS successful_runs, MAX(completed_at) AS completed_at
  FROM nba_reference.processor_run_history
  WHERE data_date = @game_date
    AND processor_name = 'ml_feature_store_v2'
    AND status = 'success'
),
players AS (
  SELECT COUNTIF(is_production_ready) AS players_ready, COUNT(*) AS players_total
  FROM nba_predictions.ml_feature_store_v2
  WHERE game_date = @game_date
)
SELECT
  phase4_run.successful_runs > 0 AS phase4_run_succeeded,
  phase4_run.completed_at AS phase4_completed_at,
  players.players_ready,
  players.players_total,
  players.players_ready >= @min_ready_players AS enough_ready_players,
  COALESCE(100 * SAFE_DIVIDE(players.players_ready, players.players_total), 0) >= @min_ready_pct AS enough_ready_pct,
  phase4_run.successful_runs > 0
    AND players.players_ready >= @min_ready_players
    AND COALESCE(100 * SAFE_DIVIDE(players.players_ready, players.players_total), 0) >= @min_ready_pct AS done
FROM phase4_run CROSS JOIN players
