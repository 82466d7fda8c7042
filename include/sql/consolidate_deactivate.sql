-- After a consolidation (docs/platform.md §8.2): only the newest active row per (game, player, system)
-- of the date stays active. The workers never supersede, so this is where a forced batch's new rows
-- replace the old ones: each row deactivated here names the row that replaced it in superseded_by.
-- Newest is the latest write: a row the MERGE just updated keeps its old created_at but has a new
-- updated_at (the platform orders by created_at alone, which can keep a stale row active instead).
MERGE {{ tables.predictions }} AS T
USING (
  SELECT prediction_id, newest_id
  FROM (
    SELECT
      prediction_id,
      FIRST_VALUE(prediction_id) OVER newest AS newest_id,
      ROW_NUMBER() OVER newest AS row_num
    FROM {{ tables.predictions }}
    WHERE game_date = @game_date
      AND is_active
    WINDOW newest AS (
      PARTITION BY game_id, player_lookup, system_id
      ORDER BY COALESCE(updated_at, created_at) DESC, created_at DESC, prediction_id DESC
    )
  )
  WHERE row_num > 1
) AS S
ON T.game_date = @game_date
  AND T.prediction_id = S.prediction_id
WHEN MATCHED THEN UPDATE SET
  is_active = FALSE,
  superseded_by = S.newest_id,
  updated_at = CURRENT_TIMESTAMP()
