"""
### System test: the package's own BigQuery pieces against real Google Cloud, in sandbox datasets

Written in the Google provider's system-test style (its tests/system/google/cloud/bigquery/example_bigquery_*.py):
an ENV_ID names the sandbox, setup and teardown are tasks (teardown with trigger_rule ALL_DONE), a watcher
fails the run when any task failed, and ``test_run`` runs the DAG once with ``dag.test()``. It does not depend
on Airflow's ``tests_common``: ``get_test_run`` and ``watcher`` are replicated below.

* **setup**: `create_sandbox`: datasets `<dataset>_st_<ENV_ID>` in the configured location
  (NBA_PHASE5_BIGQUERY_LOCATION, default us-west2), labelled with ENV_ID, with every table the package uses;
  `seed_phase4`: Phase 4's day (schedule, features, run-history row).
* **body**: `check_phase4_ready`: the readiness gate, `Phase4GateOperator` deferring on `BigQueryJobTrigger`;
  `inbox_merge`: `nba_phase5.bigquery.inbox.record` (twice: one row) and `find`; `consolidate_staged`: a staged table
  merged by `nba_phase5.bigquery.consolidation.consolidate` and deleted.
* **teardown**: `delete_sandbox`: the datasets this run labelled, and nothing else.

Run by `make system-test` (tools/system_test.py: the project in NBA_PHASE5_SYSTEM_TEST_PROJECT, Application
Default Credentials) and, in `make test`, against the emulators (tests/system/test_example_nba_phase5_bigquery.py).
Nothing here tells the two apart: only the endpoints and the credentials in the environment differ.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

# Before nba_phase5 is imported: config reads the dataset suffix once, at import (config.DATASET_SUFFIX_ENV).
ENV_ID = re.sub(r"[^a-z0-9_]", "_", (os.environ.get("SYSTEM_TESTS_ENV_ID") or uuid.uuid4().hex[:8]).lower())[:24]
os.environ.setdefault("SYSTEM_TESTS_ENV_ID", ENV_ID)  # a re-parse of this file (dag.test syncs it) agrees
os.environ.setdefault("NBA_PHASE5_DATASET_SUFFIX", f"_st_{ENV_ID}")

import nba_phase5_sandbox as sandbox  # noqa: E402
from airflow.sdk import DAG, TriggerRule, task  # noqa: E402
from airflow.sdk.exceptions import AirflowException  # noqa: E402

from nba_phase5 import config  # noqa: E402
from nba_phase5.airflow.operators.phase4_gate import Phase4GateOperator  # noqa: E402
from nba_phase5.bigquery import query_params, sql  # noqa: E402

if not config.DATASET_SUFFIX:
    raise SystemExit(f"refusing to run: nba_phase5 was imported before {config.DATASET_SUFFIX_ENV} was set")

DAG_ID = "example_nba_phase5_bigquery"
PROJECT_ID = os.environ.get("NBA_PHASE5_SYSTEM_TEST_PROJECT") or config.project_id()
GAME_DATE = datetime.now(UTC).date()  # today: the predictions table's partitions expire after 365 days
PLAYERS = 20
THRESHOLDS = config.DEFAULT_THRESHOLDS


def _hook() -> Any:
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

    return Phase5BigQueryHook(gcp_conn_id=config.GCP_CONN_ID)


@task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def watcher() -> None:
    """Fails the run when any task failed: teardown (ALL_DONE) succeeding would otherwise make it a success."""
    raise AirflowException("Failing task because one or more upstream tasks failed.")


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    tags=["nba", "phase5", "system-test"],
    doc_md=__doc__,
    template_searchpath=[str(config.include_dir() / "sql")],
    user_defined_macros=sql.macros(),
    params={
        "min_ready_pct": THRESHOLDS.min_ready_pct,
        "min_ready_players": THRESHOLDS.min_ready_players,
        "degraded_min_players": THRESHOLDS.degraded_min_players,
    },
    default_args={"owner": "nba-platform", "retries": 0},
) as dag:

    @task
    def create_sandbox() -> list[str]:
        return sandbox.create(PROJECT_ID, ENV_ID)

    @task
    def seed_phase4() -> int:
        return sandbox.seed_phase4(PROJECT_ID, GAME_DATE, PLAYERS)

    check_phase4_ready = Phase4GateOperator(
        task_id="check_phase4_ready",
        sql="phase4_gate.sql",
        query_params=query_params.readiness(GAME_DATE.isoformat()),
        # Defer even on a job done at insert: the run proves the trigger, not only the query.
        always_defer=True,
        poll_interval=1.0,
    )

    @task
    def inbox_merge() -> dict:
        return sandbox.inbox_round_trip(_hook(), GAME_DATE, f"st-{ENV_ID}")

    @task
    def consolidate_staged() -> dict:
        hook = _hook()
        return sandbox.consolidate_staged(hook, GAME_DATE, sandbox.ready_players(hook, GAME_DATE)[:3])

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def delete_sandbox() -> list[str]:
        return sandbox.delete(PROJECT_ID, ENV_ID)

    # TEST SETUP
    setup = create_sandbox() >> seed_phase4()
    # TEST BODY
    body = [check_phase4_ready, inbox_merge(), consolidate_staged()]
    setup >> body
    # TEST TEARDOWN
    body >> delete_sandbox()

    list(dag.tasks) >> watcher()


def get_test_run(dag: DAG) -> Any:
    """``tests_common.test_utils.system_tests.get_test_run``, replicated: run once, print each task's state."""

    def test_run() -> None:
        from airflow.models import DagRun
        from airflow.utils.session import create_session

        dag_run = dag.test(logical_date=datetime.now(UTC))
        with create_session() as session:
            run = session.get(DagRun, dag_run.id)
            assert run is not None
            states = sorted((str(ti.task_id), str(ti.state)) for ti in run.get_task_instances(session=session))
            state = str(run.state)
        print(f"EXECUTION SUMMARY ({DAG_ID}, sandbox suffix {config.DATASET_SUFFIX}, {config.bigquery_location()}):")
        for task_id, task_state in states:
            print(f"  {task_id:<24} {task_state}")
        print(f"  {'(run)':<24} {state}")
        assert state == "success", "The system test failed: see the failed task(s) above"

    return test_run


test_run = get_test_run(dag)

if __name__ == "__main__":
    try:
        test_run()
    except AssertionError as failed:
        sys.exit(str(failed))
