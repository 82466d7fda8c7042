-- Whether this batch was already announced to Phase 6 (the handoffs table, this package's own).
SELECT message_id, run_id, published_at
FROM {{ tables.handoffs }}
WHERE game_date = @game_date
  AND batch_id = @batch_id
ORDER BY published_at
LIMIT 1
