-- The coordinator's consolidation (docs/platform.md §8.2): the newest staged row per key from every
-- staging table of the batch, merged into the predictions table. The key is the platform's: date, game,
-- player, system and the line cast to INT64 (so 24.5 and 25.0 share a key). A matched row takes every
-- staged column but its key, prediction_id and created_at; an unmatched one is inserted whole.
-- staging_tables and columns come from list_tables and the first staging table's schema, each checked
-- against a name pattern (nba_phase5.consolidation); every value is a query parameter.
MERGE {{ tables.predictions }} AS T
USING (
  SELECT * EXCEPT (row_num)
  FROM (
    SELECT
      *,
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
) AS S
-- The constant date lets BigQuery prune the predictions table's partitions (it requires a filter).
ON T.game_date = @game_date
  AND T.game_date = S.game_date
  AND T.game_id = S.game_id
  AND T.player_lookup = S.player_lookup
  AND T.system_id = S.system_id
  AND CAST(COALESCE(T.current_points_line, -1) AS INT64) = CAST(COALESCE(S.current_points_line, -1) AS INT64)
WHEN MATCHED THEN UPDATE SET
{%- for column in update_columns %}
  {{ column }} = S.{{ column }},
{%- endfor %}
  updated_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN INSERT ({{ columns | join(', ') }})
VALUES ({% for column in columns %}S.{{ column }}{% if not loop.last %}, {% endif %}{% endfor %})
