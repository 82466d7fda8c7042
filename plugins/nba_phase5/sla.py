"""The plan's SLA as an Airflow deadline alert: the run for D must finish by 10:00 Eastern on D.

The DAG carries a ``DeadlineAlert`` (Airflow 3.1+): when the scheduler creates a run it records a
deadline of the run's logical date plus ``config.SLA_AFTER_RUN_START`` (the run for D ticks at 00:00
Eastern, so 10:00 Eastern; on the two DST-change days an hour off). A run that finishes in time has its
deadline pruned; one that has not finished when the deadline passes gets :func:`deadline_missed` run in
the triggerer, which raises a **critical** alert through the same channels as every other alert (the
``pipeline_alerts`` row, Slack, e-mail). A run created after its own deadline is left out: a backfill,
or a manual run given a past date's logical date, could never have met it (the missed deadline fires
the moment the run exists). A manual run triggered now has a logical date of now: it alerts if it is
still running 10 hours later.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from nba_phase5 import config

log = logging.getLogger(__name__)


def deadline_alerts() -> Any:
    """The DAG's ``deadline``, or None where ``NBA_PHASE5_DEADLINE_ALERTS=off``.

    ``airflow dags test`` in Airflow 3.3.2 fails a successful run of a DAG that has a deadline alert (at
    the end it looks the alert definitions up as if they were database ids), so the local runs through
    it (``make run``, ``make bench``, the in-process DAG tests) turn the alert off. The scheduler (Composer,
    ``make up``, the e2e tests) always has it."""
    import os

    return None if os.environ.get(config.DEADLINE_ALERTS_ENV) == "off" else deadline_alert()


def deadline_alert(interval: timedelta = config.SLA_AFTER_RUN_START) -> Any:
    """The DAG's ``deadline``: logical date + ``interval``, then :func:`deadline_missed` in the triggerer."""
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=interval,
        callback=AsyncCallback(deadline_missed),
        name="predictions_by_10am_et",
    )


async def deadline_missed(context: dict[str, Any] | None = None, **_: Any) -> str:
    """The deadline callback (run by the triggerer): one critical alert for a run that missed it."""
    return await asyncio.to_thread(alert_missed_deadline, context or {})


def alert_missed_deadline(context: dict[str, Any]) -> str:
    """Raise the critical alert for the run in the callback's ``context`` (``dag_run`` as JSON,
    ``deadline``); returns what it did, which Airflow keeps as the callback's result."""
    from nba_phase5.game_day import game_date_for_run
    from nba_phase5.notifications import raise_alert

    dag_run = context.get("dag_run") or {}
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    deadline = (context.get("deadline") or {}).get("deadline_time")
    if created_after_deadline(dag_run, deadline):
        log.info("Run %s (%s) was created after its deadline %s: no alert", run_id, dag_run.get("run_type"), deadline)
        return "created after its deadline: no alert"
    started = dag_run.get("logical_date") or dag_run.get("run_after")
    day = game_date_for_run(_instant(started), (dag_run.get("conf") or {}).get("game_date"))
    message = (
        f"Run {run_id} for {day} has not finished by its deadline {deadline} (predictions are due by 10:00 ET "
        f"on the game date): Phase 6 and the 07:00 PT status check see no complete batch. Check the run's grid."
    )
    callback_context = {
        "dag_run": SimpleNamespace(dag_id=dag_run.get("dag_id"), run_id=run_id),
        "game_date": day.isoformat(),
        "task_id": "deadline_missed",
    }
    raise_alert(callback_context, config.ALERTS.deadline_missed, message)
    return f"critical alert raised for {run_id}"


def _instant(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def created_after_deadline(dag_run: dict[str, Any], deadline: object) -> bool:
    """A backfill, or a run queued after its deadline (a past date triggered by hand): it could not meet it."""
    if dag_run.get("run_type") == "backfill":
        return True
    created = dag_run.get("queued_at") or dag_run.get("run_after")
    if created is None or deadline is None:
        return False
    return _instant(created) >= _instant(deadline)
