"""The DAG's Python tasks, each a function of its inputs and the Airflow context (the DAG file only wires them)."""
