"""
### NBA Phase 5 self-check: trigger it once after every deploy

Proves, in this environment, what a deploy cannot see from outside (docs/deploy.md, *After a deploy: the
self-check*):

* `bigquery_job_in_location`: one query job in the configured BigQuery location, reading a table of each of
  the package's datasets, then deferred on the package's `BigQueryJobTrigger`, which looks the job up in that
  location from the triggerer. Fails: wrong location, no BigQuery permission, or a triggerer that cannot
  import the package.
* `phase4_event_trigger`: records the check's own probe event in the durable inbox, then defers on
  `Phase4EventTrigger`, which finds it there at its first look. It never pulls `nba-phase5-trigger-sub`, so
  it takes no Phase 4 message from a prediction run. Fails: no write permission on the inbox, or the same
  triggerer and location problems.

No schedule: trigger it by hand. It writes one row, always the same (the probe), and nothing else.
"""

from __future__ import annotations

from airflow.sdk import dag

from nba_phase5 import config
from nba_phase5.airflow import self_check
from nba_phase5.airflow.operators.phase4_gate import Phase4GateOperator
from nba_phase5.airflow.operators.self_check import Phase4EventTriggerCheckOperator
from nba_phase5.bigquery import sql


@dag(
    dag_id=self_check.DAG_ID,
    schedule=None,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=self_check.RUN_TIMEOUT,
    template_searchpath=[str(config.include_dir() / "sql")],
    user_defined_macros=sql.macros(),
    tags=["nba", "phase5", "self-check"],
    doc_md=__doc__,
    default_args=self_check.DEFAULT_ARGS,
)
def nba_phase5_self_check() -> None:
    Phase4GateOperator(
        task_id=self_check.BIGQUERY_TASK,
        sql="self_check.sql",
        query_params=self_check.query_params(),
        always_defer=True,
        doc_md="One query job in the configured location, then a wait on BigQueryJobTrigger in the triggerer.",
    )
    Phase4EventTriggerCheckOperator(
        task_id=self_check.EVENT_TASK,
        doc_md="Records the probe in the inbox, then a wait on Phase4EventTrigger that finds it without a pull.",
    )


nba_phase5_self_check()
