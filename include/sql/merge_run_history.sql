-- This DAG's row in the platform's shared run history (production columns only, docs/platform.md §4):
-- one row per (processor_name, data_date, run_id). The batch writes it `running` when it starts and
-- finishes it at the end; rerunning the recorder updates the row, never adds one. Phase 5's own
-- figures travel in `summary`. Whether the run raised alerts is read from this run's pipeline_alerts rows.
MERGE {{ tables.run_history }} AS target
USING (
  SELECT
    @processor_name AS processor_name,
    @run_id AS run_id,
    @data_date AS data_date,
    @season_year AS season_year,
    @status AS status,
    @records_processed AS records_processed,
    @records_skipped AS records_skipped,
    @triggered_by AS triggered_by,
    @trigger_source AS trigger_source,
    @trigger_message_id AS trigger_message_id,
    PARSE_JSON(@trigger_message_data) AS trigger_message_data,
    @started_at AS started_at,
    @processed_at AS processed_at,
    @duration_seconds AS duration_seconds,
    @skipped AS skipped,
    @skip_reason AS skip_reason,
    @backfill_mode AS backfill_mode,
    @force_reprocess AS force_reprocess,
    @execution_host AS execution_host,
    @phase AS phase,
    @output_dataset AS output_dataset,
    @output_table AS output_table,
    @dependency_check_passed AS dependency_check_passed,
    PARSE_JSON(@upstream_dependencies) AS upstream_dependencies,
    PARSE_JSON(@summary) AS summary,
    alerts.alert_sent,
    alerts.alert_type
  FROM (
    SELECT
      COUNT(*) > 0 AS alert_sent,
      -- The most severe alert this run raised.
      ARRAY_AGG(
        severity ORDER BY CASE severity WHEN 'critical' THEN 4 WHEN 'error' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END DESC
        LIMIT 1
      )[SAFE_OFFSET(0)] AS alert_type
    FROM {{ tables.alerts }}
    WHERE game_date = @data_date
      AND run_id = @run_id
  ) AS alerts
) AS source
-- The constant date filter lets BigQuery prune partitions (the table may require a partition filter).
ON target.data_date = @data_date
  AND target.data_date = source.data_date
  AND target.processor_name = source.processor_name
  AND target.run_id = source.run_id
-- A `running` write (the batch starting, or its first task cleared alone) never reopens a finished row.
WHEN MATCHED AND (source.status != 'running' OR target.status = 'running') THEN UPDATE SET
  season_year = source.season_year,
  status = source.status,
  records_processed = source.records_processed,
  records_skipped = source.records_skipped,
  triggered_by = source.triggered_by,
  trigger_source = source.trigger_source,
  trigger_message_id = source.trigger_message_id,
  trigger_message_data = source.trigger_message_data,
  processed_at = source.processed_at,
  duration_seconds = source.duration_seconds,
  skipped = source.skipped,
  skip_reason = source.skip_reason,
  backfill_mode = source.backfill_mode,
  force_reprocess = source.force_reprocess,
  execution_host = source.execution_host,
  phase = source.phase,
  output_dataset = source.output_dataset,
  output_table = source.output_table,
  dependency_check_passed = source.dependency_check_passed,
  upstream_dependencies = source.upstream_dependencies,
  summary = source.summary,
  alert_sent = source.alert_sent,
  alert_type = source.alert_type
WHEN NOT MATCHED THEN INSERT (
  processor_name, run_id, data_date, season_year, status, records_processed, records_skipped, triggered_by,
  trigger_source,
  trigger_message_id, trigger_message_data, started_at, processed_at, duration_seconds, skipped, skip_reason,
  backfill_mode, force_reprocess, execution_host, phase, output_dataset, output_table, dependency_check_passed,
  upstream_dependencies, summary, alert_sent, alert_type
) VALUES (
  source.processor_name, source.run_id, source.data_date, source.season_year, source.status,
  source.records_processed, source.records_skipped, source.triggered_by, source.trigger_source, source.trigger_message_id,
  source.trigger_message_data, source.started_at, source.processed_at, source.duration_seconds, source.skipped,
  source.skip_reason, source.backfill_mode, source.force_reprocess, source.execution_host, source.phase,
  source.output_dataset, source.output_table, source.dependency_check_passed, source.upstream_dependencies,
  source.summary, source.alert_sent, source.alert_type
)
