-- One row per (data_date, processor_name, run_id): rerunning the recorder updates it, never adds one.
MERGE nba_reference.processor_run_history AS target
USING (
  SELECT
    @data_date AS data_date,
    'phase5_coordinator' AS processor_name,
    @run_id AS run_id,
    @status AS status,
    @triggered_by AS triggered_by,
    @started_at AS started_at,
    @completed_at AS completed_at,
    @records_processed AS records_processed,
    @players_ready AS players_ready,
    @players_total AS players_total,
    @requests_published AS requests_published,
    @predictions_found AS predictions_found,
    @straggler_rounds AS straggler_rounds,
    @straggler_requests AS straggler_requests,
    @completion_pct AS completion_pct,
    @phase4_completed_at AS phase4_completed_at,
    @event_received_at AS event_received_at,
    @first_request_at AS first_request_at,
    @batch_completed_at AS batch_completed_at,
    @message AS message,
    CURRENT_TIMESTAMP() AS updated_at
) AS source
ON target.data_date = source.data_date
  AND target.processor_name = source.processor_name
  AND target.run_id = source.run_id
WHEN MATCHED THEN UPDATE SET
  status = source.status,
  triggered_by = source.triggered_by,
  started_at = source.started_at,
  completed_at = source.completed_at,
  records_processed = source.records_processed,
  players_ready = source.players_ready,
  players_total = source.players_total,
  requests_published = source.requests_published,
  predictions_found = source.predictions_found,
  straggler_rounds = source.straggler_rounds,
  straggler_requests = source.straggler_requests,
  completion_pct = source.completion_pct,
  phase4_completed_at = source.phase4_completed_at,
  event_received_at = source.event_received_at,
  first_request_at = source.first_request_at,
  batch_completed_at = source.batch_completed_at,
  message = source.message,
  updated_at = source.updated_at
WHEN NOT MATCHED THEN INSERT (
  data_date, processor_name, run_id, status, triggered_by, started_at, completed_at, records_processed, players_ready, players_total, requests_published, predictions_found, straggler_rounds, straggler_requests, completion_pct, phase4_completed_at, event_received_at, first_request_at, batch_completed_at, message, updated_at
) VALUES (
  source.data_date, source.processor_name, source.run_id, source.status, source.triggered_by, source.started_at, source.completed_at, source.records_processed, source.players_ready, source.players_total, source.requests_published, source.predictions_found, source.straggler_rounds, source.straggler_requests, source.completion_pct, source.phase4_completed_at, source.event_received_at, source.first_request_at, source.batch_completed_at, source.message, source.updated_at
)
