"""The DAG's deadline alerts (nba_phase5.airflow.sla) for a one-minute span instead of ten hours, on a task that
sleeps as long as it is told, or fails at once: tests/e2e/test_deadline.py runs one that misses the
deadline, one that finishes in time and one that has already failed when the deadline passes."""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from nba_phase5.airflow import sla


@dag(
    dag_id="sla_probe",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    deadline=sla.deadline_alert_set(timedelta(minutes=1)),
    params={
        "game_date": Param(None, type=["null", "string"]),
        "seconds": Param(1, type="integer", minimum=0),
        "fail": Param(False, type="boolean"),
    },
    doc_md="The package's deadline alerts, for a one-minute span.",
)
def sla_probe() -> None:
    @task(retries=0)
    def work(**context) -> None:
        """Sleeps `params.seconds`, then fails if `params.fail`."""
        time.sleep(int(context["params"]["seconds"]))
        if context["params"]["fail"]:
            raise RuntimeError("sla_probe told to fail")

    work()


sla_probe()
