"""The plan's SLA as Airflow deadline alerts: the run for D must finish by 10:00 Eastern (wall clock) on D.

Three built-in deadline alerts on the run's logical date, 9, 10 and 11 hours after it
(:func:`deadline_alert_set`); the callback of each, :func:`deadline_missed`, raises one critical alert only
when its instant is the run's 10:00 Eastern and the run is one to page for (scheduled or manual, not a
backfill, not already failed). Why three, and which runs page: docs/architecture.md, *Why each module is built
as it is*.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from nba_phase5 import config
from nba_phase5.airflow.notifications import send_alert
from nba_phase5.core.alert_kinds import AlertKind
from nba_phase5.core.game_day import game_date_for_run

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
#: How far the hours elapsed from the logical date may be from the wall-clock hours: America/New_York
#: is UTC-5 or UTC-4, so a span crossing a clock change is an hour shorter (spring) or longer (autumn).
CLOCK_CHANGES = {-HOUR: "_if_clocks_went_forward", timedelta(0): "", HOUR: "_if_clocks_went_back"}


def deadline_alerts() -> list[Any] | None:
    """The DAG's ``deadline``, or None where ``NBA_PHASE5_DEADLINE_ALERTS=off``.

    ``airflow dags test`` in Airflow 3.3.2 fails a successful run of a DAG that has a deadline alert (at
    the end it looks the alert definitions up as if they were database ids), so the local runs through
    it (``make run``, ``make bench``, the in-process DAG tests) turn the alert off. The scheduler (Composer,
    ``make up``, the e2e tests) always has it."""
    return None if os.environ.get(config.DEADLINE_ALERTS_ENV) == "off" else deadline_alert_set()


def deadline_alert_set(after: timedelta = config.SLA_AFTER_RUN_START) -> list[Any]:
    """The alerts for "finished ``after`` of Eastern wall clock from the logical date": one per clock change.

    Each is the built-in logical-date reference plus a plain interval, which the DAG serializer stores as
    it is; the callback gets the wall-clock span and its own interval as kwargs (JSON numbers). An
    interval that would not be after the logical date is left out: a span of an hour or less (the e2e
    probe's minute) never needs the spring one (:func:`due_at`).
    """
    span = f"{after // HOUR}h" if after % HOUR == timedelta(0) else f"{after.total_seconds():g}s"
    return [
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=after + change,
            callback=AsyncCallback(
                deadline_missed,
                kwargs={"sla_seconds": after.total_seconds(), "interval_seconds": (after + change).total_seconds()},
            ),
            name=f"predictions_within_{span}_et{suffix}",
        )
        for change, suffix in CLOCK_CHANGES.items()
        if after + change > timedelta(0)
    ]


async def deadline_missed(
    context: dict[str, Any] | None = None,
    *,
    sla_seconds: float | None = None,
    interval_seconds: float | None = None,
    **_: Any,
) -> str:
    """The deadline callback (run by the triggerer): one critical alert for a run that missed 10:00 ET."""
    sla = timedelta(seconds=sla_seconds) if sla_seconds is not None else config.SLA_AFTER_RUN_START
    interval = timedelta(seconds=interval_seconds) if interval_seconds is not None else None
    return await asyncio.to_thread(alert_missed_deadline, context or {}, sla=sla, interval=interval)


def due_at(
    start: datetime, after: timedelta = config.SLA_AFTER_RUN_START, *, tz: str = config.DAG_TIMEZONE
) -> datetime:
    """``after`` of wall clock in ``tz`` from ``start``: 00:00 ET on D + 10 h is 10:00 ET on D, every night.

    Added to the local time, not to the instant. A result that exists twice (autumn's 01:xx) takes the
    start's own ``fold`` (a start in EST stays in EST); one that does not exist (spring's 02:xx) is read
    with the offset before the change. Only a manual run's odd hour, or the probe's minute, meets either.
    """
    zone = ZoneInfo(tz)
    local = start.astimezone(zone)
    return (local.replace(tzinfo=None) + after).replace(tzinfo=zone, fold=local.fold)


def alert_missed_deadline(
    context: dict[str, Any], *, sla: timedelta = config.SLA_AFTER_RUN_START, interval: timedelta | None = None
) -> str:
    """Raise the critical alert for the run in the callback's ``context`` (``dag_run`` as JSON,
    ``deadline``) unless :func:`no_page_reason` says otherwise; returns what it did, which Airflow keeps
    as the callback's result. ``interval`` is the firing alert's own; None (an alert from before there
    were three) counts as the run's."""
    dag_run = context.get("dag_run") or {}
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    started = _instant(dag_run.get("logical_date") or dag_run.get("run_after"))
    due = due_at(started, sla)
    reason = no_page_reason(dag_run, started, due, interval)
    if reason:
        log.info("Run %s (%s), due %s: %s", run_id, dag_run.get("run_type"), due.isoformat(), reason)
        return reason
    day = game_date_for_run(started, (dag_run.get("conf") or {}).get("game_date"))
    message = (
        f"Run {run_id} for {day} has not finished by its deadline {due:%Y-%m-%d %H:%M %Z} (predictions are due "
        f"by 10:00 ET on the game date): Phase 6 and the 07:00 PT status check see no complete batch. "
        f"Check the run's grid."
    )
    callback_context = {
        "dag_run": SimpleNamespace(dag_id=dag_run.get("dag_id"), run_id=run_id),
        "game_date": day.isoformat(),
        "task_id": "deadline_missed",
    }
    send_alert(callback_context, AlertKind.deadline_missed, message)
    return f"critical alert raised for {run_id}"


def no_page_reason(dag_run: dict[str, Any], started: datetime, due: datetime, interval: timedelta | None) -> str:
    """Why this missed deadline raises nothing, or "" when it pages. See the module's docstring."""
    if interval is not None and started + interval != due:
        # One of the other nights' alerts: the run's own 10:00 ET is another of the three.
        return f"not this run's deadline ({interval} after its logical date is not {due.isoformat()}): no alert"
    if dag_run.get("state") == "failed":
        # The run's state, not its pipeline_alerts rows. Airflow reads it from the metadata DB in the very
        # transaction that marks this deadline missed (Deadline.handle_miss, airflow/models/deadline.py), and
        # the scheduler hands the DAG's failure callback to the DAG processor as soon as it has committed
        # `failed` (SchedulerJobRunner._do_scheduling), so a failed run has alerted or is about to
        # (on_run_failure: critical, unless record_batch_run recorded the run, whose failed task's notifier
        # alerted). The rows are a worse witness: on_run_failure writes them from the DAG processor, maybe
        # after this runs (a failure at 09:59), and a BigQuery outage would fail the lookup when the page
        # matters most. A run a person marked failed gets no failure callback (only listeners:
        # api_fastapi/core_api/services/public/dag_run.py) and no page either: they know.
        return "already failed, and its failure alerted: no second page"
    if dag_run.get("run_type") == "backfill":
        return "a backfill: no alert"
    if queued_after(dag_run, due):
        return "created after its deadline: no alert"
    return ""


def queued_after(dag_run: dict[str, Any], due: datetime) -> bool:
    """Whether a run other than a scheduled one was queued at or after ``due`` (a past date triggered by
    hand): it could never have met the deadline.

    A scheduled run is never excused: queued late, it is the scheduler's outage that missed the SLA, and
    people still wait for 10:00 ET's predictions.
    """
    if dag_run.get("run_type") == "scheduled":
        return False
    created = dag_run.get("queued_at") or dag_run.get("run_after")
    return created is not None and _instant(created) >= due


def _instant(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
