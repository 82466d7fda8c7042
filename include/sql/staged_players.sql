-- The players a batch's workers have staged rows for (docs/platform.md §7.6), before consolidation
-- moves them into the predictions table. staging_tables come from list_tables, each checked against a
-- name pattern (nba_phase5.consolidation). The tables are unpartitioned; the date still narrows them.
SELECT DISTINCT player_lookup
FROM (
{%- for table in staging_tables %}
  SELECT player_lookup FROM {{ staging_dataset }}.{{ table }} WHERE game_date = @game_date
{%- if not loop.last %}
  UNION ALL
{%- endif %}
{%- endfor %}
)
