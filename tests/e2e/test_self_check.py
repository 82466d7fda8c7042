"""The post-deploy self-check as an operator runs it: unpaused and triggered in the real local Airflow that
runs the Composer bundle, so its two deferrals are served by a real triggerer importing from the bundle alone
(docs/deploy.md, *After a deploy: the self-check*)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import local_airflow
from e2e.scheduler import run_path, wait_finished, wait_for
from nba_phase5.airflow import self_check

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_the_self_check_succeeds_with_the_bundles_triggerer(api: local_airflow.AirflowAPI) -> None:
    dag_id = self_check.DAG_ID
    listed = f"/dags?dag_id_pattern={dag_id}"  # a DAG not parsed yet is a 404 at /dags/<id>, not an empty list
    wait_for(f"{dag_id} to be parsed", lambda: api.get(listed)["total_entries"], timeout=120)
    api.patch(f"/dags/{dag_id}", {"is_paused": False})  # Composer creates it paused: docs/deploy.md
    run_id = "self_check_after_deploy"
    api.post(f"/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": datetime.now(UTC).isoformat()})
    run = wait_finished(api, run_id, timeout=300, dag_id=dag_id)
    tis = api.get(f"{run_path(run_id, dag_id)}/taskInstances")["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert states == {self_check.BIGQUERY_TASK: "success", self_check.EVENT_TASK: "success"}, states
    assert run["state"] == "success"
    # Both tasks can only succeed after their trigger yielded (always_defer; the event task always defers),
    # so the triggerer imported BigQueryJobTrigger and Phase4EventTrigger from the bundle and ran them.
    assert {ti["try_number"] for ti in tis} == {1}
