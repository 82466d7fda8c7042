"""NBA props platform: the Phase 4 → Phase 5 hand-off as an Airflow 3 DAG package."""
