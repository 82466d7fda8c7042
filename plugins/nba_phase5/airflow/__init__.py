"""What runs inside Airflow: the hooks, operators and triggers, the DAG's Python tasks, its params, alerts, SLA
deadline, job labels and the batch's claim on its date.
"""
