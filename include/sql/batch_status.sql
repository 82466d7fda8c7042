-- check_batch_status in one job: the dedup coverage (prediction_coverage.sql), the runs that claimed
-- the date (batch_claims.sql's rows, ordered as it orders them) and Phase 4's readiness (phase4_readiness.sql's
-- row, as one STRUCT: its players_ready is not the coverage's). The task runs it only after this run's
-- claim has landed (claim_batch's, or a cleared run's new one), so the holder is judged from claims
-- that include this run's: the one-batch-per-date race needs the claim inserted before it is read. A run that
-- skips the event wait hands the readiness row to the readiness wait as its first poll (no job of its own).
WITH coverage AS (
{% include "prediction_coverage.sql" %}
),
claims AS (
  SELECT run_id, MAX(claimed_at) AS started_at, MIN(claimed_at) AS first_claimed_at
  FROM {{ tables.batch_claims }}
  WHERE game_date = @game_date
  GROUP BY run_id
),
phase4 AS (
{% include "phase4_readiness.sql" %}
)
SELECT
  coverage.*,
  ARRAY(SELECT AS STRUCT run_id, started_at, first_claimed_at FROM claims ORDER BY started_at, run_id) AS claims,
  -- The CTE's one row as a STRUCT value (coverage has one row too): every column of phase4_readiness.sql.
  phase4
FROM coverage CROSS JOIN phase4
