"""The DAG's deadline alert (nba_phase5.sla) with a one-minute deadline, on a task that sleeps as long
as it is told: tests/e2e/test_deadline.py runs one that misses it and one that finishes in time."""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from nba_phase5 import sla


@dag(
    dag_id="sla_probe",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    deadline=sla.deadline_alert(timedelta(minutes=1)),
    params={"game_date": Param(None, type=["null", "string"]), "seconds": Param(1, type="integer", minimum=0)},
    doc_md="The package's deadline alert, with a one-minute deadline.",
)
def sla_probe() -> None:
    @task
    def work(**context) -> None:  # type: ignore[no-untyped-def]
        """Sleeps `params.seconds`."""
        time.sleep(int(context["params"]["seconds"]))

    work()


sla_probe()
