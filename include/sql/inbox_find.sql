-- The first Phase 4 event recorded for game_date, whichever run pulled it.
SELECT message_id, received_at, event
FROM {{ tables.event_inbox }}
WHERE game_date = @game_date
ORDER BY received_at, message_id
LIMIT 1
