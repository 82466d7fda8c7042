"""Driving the real local Airflow the way a user does: REST API calls and the airflow CLI."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from datetime import date
from typing import Any

import local_airflow
import localstack
from nba_phase5 import config

DAG_ID = config.DAG_ID
FINISHED = {"success", "failed"}
# The local worker of the e2e Airflow: it drops these 5 % of requests once (reproducible by seed).
WORKER_DROP_RATE = 0.05
WORKER_SEED = 11
# Every run passes these: short polls and waits, so a scheduled day takes a minute, not an hour.
FAST_CONF = {
    "poll_interval_seconds": 2,
    "phase4_wait_minutes": 0,
    "straggler_wait_minutes": 0.5,
    "straggler_settle_polls": 3,
    # Shorter than a straggler wait: the worker's deliberate drops are sent again within the run.
    "in_flight_minutes": 0.2,
}


def trigger(
    api: local_airflow.AirflowAPI, run_id: str, day: date, *, logical_date: str | None = None, **conf: Any
) -> dict[str, Any]:
    """An API-triggered run for ``day`` (as the UI's Trigger button makes one).

    Two runs of one DAG cannot share a logical date: a second run for ``day`` passes its own.
    """
    body = {
        "dag_run_id": run_id,
        "logical_date": logical_date or f"{day}T12:00:00Z",
        "conf": {**FAST_CONF, "game_date": str(day), **conf},
    }
    run: dict[str, Any] = api.post(f"/dags/{DAG_ID}/dagRuns", body)
    return run


def run_path(run_id: str, dag_id: str = DAG_ID) -> str:
    """The REST path of a run; run ids hold ':' and '+' (scheduled and backfill runs), so quote them."""
    return f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def task_state(api: local_airflow.AirflowAPI, run_id: str, task_id: str) -> str | None:
    ti = api.get(f"{run_path(run_id)}/taskInstances/{task_id}")
    return ti["state"]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 300, every: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_deferred(api: local_airflow.AirflowAPI, run_id: str, task_id: str = "wait_for_phase4_event") -> None:
    """Until the run's event sensor is deferred in the triggerer (Phase 4 may publish from then on)."""
    wait_for(
        f"{task_id} to be deferred in the triggerer",
        lambda: task_state(api, run_id, task_id) == "deferred",
        timeout=180,
        every=1,
    )


def wait_finished(
    api: local_airflow.AirflowAPI, run_id: str, timeout: float = 420, dag_id: str = DAG_ID
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = api.get(run_path(run_id, dag_id))
        return run if run["state"] in FINISHED else None

    run: dict[str, Any] = wait_for(f"run {run_id} to finish", finished, timeout)
    return run


def task_states(api: local_airflow.AirflowAPI, run_id: str) -> dict[str, str]:
    tis = api.get(f"{run_path(run_id)}/taskInstances?limit=100")["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in tis}


def airflow_cli(airflow: local_airflow.LocalAirflow, stack: localstack.Stack, *argv: str) -> str:
    env = airflow.env(stack.env())
    done = subprocess.run(
        [str(local_airflow.AIRFLOW), *argv], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def conf_json(**conf: Any) -> str:
    return json.dumps({**FAST_CONF, **conf})
