-- Every prediction row of the date, all systems, active or not: what Phase 6 counts before it exports
-- (docs/platform.md §9.2, fewer than 10 and it stops).
SELECT COUNT(*) AS prediction_rows
FROM {{ tables.predictions }}
WHERE game_date = @game_date
