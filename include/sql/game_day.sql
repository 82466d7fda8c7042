-- Games on the schedule for game_date, and around it: no games at all in the surrounding weeks is a
-- schedule outage, not an off day. The table appends on every update: count distinct game ids.
SELECT
  COUNT(DISTINCT IF(game_date = @game_date, game_id, NULL)) AS games,
  COUNT(DISTINCT game_id) AS games_around
FROM {{ tables.schedule }}
WHERE game_date BETWEEN DATE_SUB(@game_date, INTERVAL 14 DAY) AND DATE_ADD(@game_date, INTERVAL 14 DAY)
  -- All-Star events are in the table too, and no props are predicted for them.
  AND NOT COALESCE(is_all_star, FALSE)
