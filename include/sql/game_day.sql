-- Games on the schedule for the run's game date (0 on an off day).
SELECT COUNT(*) AS games
FROM nba_raw.nbac_schedule
WHERE game_date = @game_date
