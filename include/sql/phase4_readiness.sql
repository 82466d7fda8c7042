-- Is Phase 4 done for game_date (docs/platform.md §3.3, §3.4)? Its latest run-history row with a status that
-- means it ran (success or partial, by processed_at), and how many players it made production-ready.
WITH phase4_runs AS (
  SELECT status, processed_at
  FROM {{ tables.run_history }}
  WHERE data_date = @game_date
    AND processor_name = @phase4_processor
    AND status IN UNNEST(@phase4_ran_statuses)
),
phase4_run AS (
  SELECT COUNT(*) AS runs, MAX(processed_at) AS processed_at
  FROM phase4_runs
),
players AS (
  SELECT COUNTIF(is_production_ready) AS players_ready, COUNT(*) AS players_total
  FROM {{ tables.feature_store }}
  WHERE game_date = @game_date
),
verdict AS (
  SELECT
    phase4_run.runs > 0 AS phase4_ran,
    (SELECT status FROM phase4_runs WHERE processed_at = phase4_run.processed_at LIMIT 1) AS phase4_status,
    phase4_run.processed_at AS phase4_processed_at,
    players.players_ready,
    players.players_total,
    COALESCE(100 * SAFE_DIVIDE(players.players_ready, players.players_total), 0) AS exact_pct
  FROM phase4_run CROSS JOIN players
),
judged AS (
  SELECT
    * EXCEPT (exact_pct),
    ROUND(exact_pct, 1) AS ready_pct,
    -- Ready: at least min_ready_pct of the players, or at least min_ready_players of them.
    phase4_ran AND (exact_pct >= @min_ready_pct OR players_ready >= @min_ready_players) AS done
  FROM verdict
)
SELECT
  *,
  -- Ready, or after the wait enough to proceed degraded; otherwise the day stops (critical). A small
  -- slate that is ready (27 of 30) proceeds even with fewer players than the degraded floor.
  done OR (phase4_ran AND players_ready >= @degraded_min_players) AS can_proceed
FROM judged
