-- Record validated Phase 4 events before they are acked: one row per Pub/Sub message id, so a
-- redelivered or re-pulled message never makes a second row.
MERGE {{ tables.event_inbox }} AS target
USING (
  SELECT r.message_id, r.game_date, r.received_at, r.event, r.pulled_for_date
  FROM UNNEST(@rows) AS r
) AS source
-- The constant date list lets BigQuery prune partitions (the table requires a partition filter).
ON target.game_date IN UNNEST(@game_dates)
  AND target.game_date = source.game_date
  AND target.message_id = source.message_id
WHEN NOT MATCHED THEN INSERT (message_id, game_date, received_at, event, pulled_for_date)
VALUES (source.message_id, source.game_date, source.received_at, source.event, source.pulled_for_date)
