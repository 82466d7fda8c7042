-- Whether this batch was already announced to Phase 6 (nba_reference.phase5_handoffs, this package's own).
SELECT message_id, run_id, published_at
FROM nba_reference.phase5_handoffs
WHERE game_date = @game_date
  AND batch_id = @batch_id
ORDER BY published_at
LIMIT 1
