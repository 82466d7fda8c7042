-- The players a batch's workers have staged active rows for (docs/platform.md §7.6), before
-- consolidation moves them into the predictions table (a row the worker's sanity check failed is staged
-- inactive and does not count). staging_tables come from list_tables, each checked against a name
-- pattern (nba_phase5.consolidation). The tables are unpartitioned; the date still narrows them.
SELECT DISTINCT player_lookup
FROM (
{%- for table in staging_tables %}
  SELECT player_lookup FROM {{ staging_dataset }}.{{ table }} WHERE game_date = @game_date AND is_active
{%- if not loop.last %}
  UNION ALL
{%- endif %}
{%- endfor %}
)
