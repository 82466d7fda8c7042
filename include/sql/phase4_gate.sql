-- The readiness gate for BigQueryCheckOperator: every column must be true.
SELECT phase4_run_succeeded, enough_ready_players, enough_ready_pct
FROM (
{% include 'phase4_readiness.sql' %}
)
