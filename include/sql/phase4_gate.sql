-- The readiness gate (Phase4GateOperator): Phase 4 ran and enough players are ready to proceed,
-- fully or degraded (every column must be true).
SELECT phase4_ran, can_proceed
FROM (
{% include 'phase4_readiness.sql' %}
)
