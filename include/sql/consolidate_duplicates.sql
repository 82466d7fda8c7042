-- The platform's check after a consolidation (docs/platform.md §8.2): active rows of the date that share
-- the MERGE's key. Any at all and the consolidation fails, keeping the staging tables for a person.
SELECT COUNT(*) AS duplicate_keys
FROM (
  SELECT game_id, player_lookup, system_id, CAST(COALESCE(current_points_line, -1) AS INT64) AS line
  FROM {{ tables.predictions }}
  WHERE game_date = @game_date
    AND is_active
  GROUP BY game_id, player_lookup, system_id, line
  HAVING COUNT(*) > 1
)
