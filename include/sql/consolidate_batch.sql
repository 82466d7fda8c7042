-- The coordinator's consolidation (docs/platform.md §8.2) in one statement, so one job. The newest staged
-- row per key from every staging table of the batch is merged into the predictions table: the key is the
-- platform's (date, game, player, system and the line cast to INT64, so 24.5 and 25.0 share a key); a
-- matched row takes every staged column but its key, prediction_id and created_at, an unmatched one is
-- inserted whole. In the same statement only the newest active row per (game, player, system) of the
-- date stays active, as the platform's second statement left it: every other one is deactivated and
-- names its replacement in superseded_by. Newest is the newest prediction: a stored row a staged row
-- updates here ranks by that staged row's time (it now holds that prediction, though it keeps its old
-- created_at, by which the platform alone orders, which can keep a stale row active), one left alone by
-- its last write; never by this statement's own time, so a rerun over the same staged rows ranks them
-- as the first run did. The statement computes the date's rows as the upsert leaves them to rank them,
-- and fails (ERROR, nothing written) rather than leave two active rows on one key. Nothing staged for
-- the date: nothing is written at all, and the task fails on the 0 rows (BSW 1059-1071).
-- staging_tables and columns come from list_tables and the first staging table's schema, each checked
-- against a name pattern (nba_phase5.bigquery.consolidation); every value is a query parameter.
MERGE {{ tables.predictions }} AS T
USING (
  WITH staged AS (
    SELECT * EXCEPT (row_num)
    FROM (
      SELECT
        *,
        CAST(COALESCE(current_points_line, -1) AS INT64) AS merge_line,
        ROW_NUMBER() OVER (
          PARTITION BY game_id, player_lookup, system_id, CAST(COALESCE(current_points_line, -1) AS INT64)
          ORDER BY created_at DESC, prediction_id DESC
        ) AS row_num
      FROM (
{%- for table in staging_tables %}
        SELECT {{ columns | join(', ') }} FROM {{ staging_dataset }}.{{ table }} WHERE game_date = @game_date
{%- if not loop.last %}
        UNION ALL
{%- endif %}
{%- endfor %}
      )
    )
    WHERE row_num = 1
  ),
  stored AS (
    SELECT *, CAST(COALESCE(current_points_line, -1) AS INT64) AS merge_line
    FROM {{ tables.predictions }}
    WHERE game_date = @game_date
  ),
  -- Every row of the date as the upsert leaves it: a stored row (with the staged row's time and is_active,
  -- when a staged row has its key), and each staged row no stored row has the key of (inserted).
  written AS (
    SELECT
      P.game_id,
      P.player_lookup,
      P.system_id,
      P.prediction_id,
      P.created_at,
      IF(
        S.merge_line IS NULL, COALESCE(P.updated_at, P.created_at), COALESCE(S.updated_at, S.created_at)
      ) AS written_at,
      IF(S.merge_line IS NULL, P.is_active, S.is_active) AS is_active,
      S.merge_line IS NULL AS untouched,
      P.merge_line
    FROM stored AS P
    LEFT JOIN staged AS S
      ON P.game_id = S.game_id
      AND P.player_lookup = S.player_lookup
      AND P.system_id = S.system_id
      AND P.merge_line = S.merge_line
    UNION ALL
    SELECT
      S.game_id,
      S.player_lookup,
      S.system_id,
      S.prediction_id,
      S.created_at,
      COALESCE(S.updated_at, S.created_at) AS written_at,
      S.is_active,
      FALSE AS untouched,
      S.merge_line
    FROM staged AS S
    LEFT JOIN stored AS P
      ON P.game_id = S.game_id
      AND P.player_lookup = S.player_lookup
      AND P.system_id = S.system_id
      AND P.merge_line = S.merge_line
    WHERE P.merge_line IS NULL
  ),
  ranked AS (
    SELECT
      *,
      FIRST_VALUE(prediction_id) OVER (
        PARTITION BY game_id, player_lookup, system_id
        ORDER BY written_at DESC, created_at DESC, prediction_id DESC
      ) AS newest_id
    FROM written
    WHERE is_active
  ),
  newest AS (
    SELECT DISTINCT game_id, player_lookup, system_id, newest_id
    FROM ranked
  ),
  -- The platform's check after its consolidation (BSW 1073-1111), made before anything is written: the
  -- rows that stay active may not share a key.
  checked AS (
    SELECT IF(COUNT(*) > 0, ERROR('consolidation would leave active duplicate keys'), TRUE) AS ok
    FROM (
      SELECT game_id
      FROM ranked
      WHERE prediction_id = newest_id
      GROUP BY game_id, player_lookup, system_id, merge_line
      HAVING COUNT(*) > 1
    )
  )
  -- The staged rows, each with its group's newest row once the upsert is done ...
  SELECT
{%- for column in columns %}
    S.{{ column }},
{%- endfor %}
    S.merge_line,
    CAST(NULL AS STRING) AS merge_target_id,
    N.newest_id AS merge_newest_id
  FROM staged AS S
  CROSS JOIN checked
  LEFT JOIN newest AS N
    ON S.game_id = N.game_id
    AND S.player_lookup = N.player_lookup
    AND S.system_id = N.system_id
  WHERE checked.ok
  UNION ALL
  -- ... and the stored active rows the upsert leaves untouched but that a newer row replaces.
  SELECT
{%- for column in columns %}
    P.{{ column }},
{%- endfor %}
    P.merge_line,
    P.prediction_id AS merge_target_id,
    R.newest_id AS merge_newest_id
  FROM ranked AS R
  CROSS JOIN checked
  JOIN stored AS P
    ON P.prediction_id = R.prediction_id
    AND P.game_id = R.game_id
    AND P.player_lookup = R.player_lookup
    AND P.system_id = R.system_id
    AND P.merge_line = R.merge_line
    AND P.is_active
  WHERE checked.ok
    AND R.untouched
    AND R.prediction_id != R.newest_id
    AND EXISTS (SELECT 1 FROM staged)
) AS S
-- The constant date lets BigQuery prune the predictions table's partitions (it requires a filter).
ON T.game_date = @game_date
  AND T.game_date = S.game_date
  AND T.game_id = S.game_id
  AND T.player_lookup = S.player_lookup
  AND T.system_id = S.system_id
  AND CAST(COALESCE(T.current_points_line, -1) AS INT64) = S.merge_line
  AND (S.merge_target_id IS NULL OR T.prediction_id = S.merge_target_id)
WHEN MATCHED AND S.merge_target_id IS NULL THEN UPDATE SET
{%- for column in update_columns %}
  {{ column }} = S.{{ column }},
{%- endfor %}
  is_active = IF(S.is_active AND T.prediction_id != S.merge_newest_id, FALSE, S.is_active),
  superseded_by = IF(S.is_active AND T.prediction_id != S.merge_newest_id, S.merge_newest_id, S.superseded_by),
  updated_at = CURRENT_TIMESTAMP()
WHEN MATCHED THEN UPDATE SET
  is_active = FALSE,
  superseded_by = S.merge_newest_id,
  updated_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED AND S.merge_target_id IS NULL THEN INSERT ({{ columns | join(', ') }})
VALUES (
{%- for column in columns %}
{%- if column == "is_active" %}
  IF(S.is_active AND S.prediction_id != S.merge_newest_id, FALSE, S.is_active)
{%- elif column == "superseded_by" %}
  IF(S.is_active AND S.prediction_id != S.merge_newest_id, S.merge_newest_id, S.superseded_by)
{%- elif column == "updated_at" %}
  IF(S.is_active AND S.prediction_id != S.merge_newest_id, CURRENT_TIMESTAMP(), S.updated_at)
{%- else %}
  S.{{ column }}
{%- endif %}
{%- if not loop.last %},{% endif %}
{%- endfor %}
)
