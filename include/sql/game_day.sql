-- Games on the schedule for game_date, and around it: no games at all in the surrounding weeks is a
-- schedule outage, not an off day. The table appends on every update: count distinct game ids.
-- In the same job, the date's batches (_date_batches.sql), read before this try claims the date: they
-- need not show its claim (a run adopts other runs' batches only, and a retry finds its first claim
-- among its earlier tries' claims), and an off day claims nothing.
WITH schedule AS (
  SELECT
    COUNT(DISTINCT IF(game_date = @game_date, game_id, NULL)) AS games,
    COUNT(DISTINCT game_id) AS games_around
  FROM {{ tables.schedule }}
  WHERE game_date BETWEEN DATE_SUB(@game_date, INTERVAL 14 DAY) AND DATE_ADD(@game_date, INTERVAL 14 DAY)
    -- All-Star events are in the table too, and no props are predicted for them.
    AND NOT COALESCE(is_all_star, FALSE)
),
batches AS (
{% include "_date_batches.sql" %}
)
SELECT
  games,
  games_around,
  ARRAY(SELECT AS STRUCT kind, name, happened_at FROM batches ORDER BY happened_at, kind, name) AS batches
FROM schedule
