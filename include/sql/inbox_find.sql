-- The Phase 4 events recorded for game_date, whichever run pulled them, oldest first. Only the feature
-- store's ready events are recorded; inbox.find still checks each row and takes the first that is one,
-- so one unusable row never hides a good one behind it (docs/platform.md §1.3).
SELECT message_id, received_at, event
FROM {{ tables.event_inbox }}
WHERE game_date = @game_date
ORDER BY received_at, message_id
LIMIT 10
