"""Deferrable wait for Phase 4's completion event, with the DAG's schedule as the backup path.

An operator, not a sensor: at the deadline the run goes on without the event (the platform's backup
path), where a sensor's ``timeout`` would fail or skip the task and everything downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from airflow.sdk import BaseOperator

from nba_phase5 import config
from nba_phase5.airflow.hooks import bigquery_hook
from nba_phase5.airflow.job_labels import labels_for
from nba_phase5.airflow.notifications import warn
from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger
from nba_phase5.bigquery.late_events import came_late, finished_at, words
from nba_phase5.core.alert_kinds import AlertKind
from nba_phase5.core.game_day import event_deadline
from nba_phase5.core.states import TriggeredBy, TriggerStatus, skipped_wait


def _total(payload: dict[str, Any]) -> object:
    """Players Phase 4 processed: the plan's total, else its players_processed, else the envelope's record_count."""
    for key in ("players_total", "players_processed", "record_count"):
        if payload.get(key) is not None:
            return payload[key]
    return "an unknown total"


class Phase4EventWaitOperator(BaseOperator):
    """Waits in the triggerer for a valid Phase 4 completion event for this run's game date.

    Completes on the event (``triggered_by='pubsub'``) or, at the event deadline, goes on without it
    (``'scheduler_backup'``): the readiness gates downstream decide whether Phase 4 really finished. Backfill
    runs (``'backfill'``) and ``skip_event_wait`` (``'manual'``) do not wait at all. Returns
    ``{"triggered_by"}`` alone when it did not wait; after a wait, also ``rejected`` (unusable messages,
    ``[{message_id, reason}]``) and ``others`` (messages of the other Phase 4 processors, or the feature
    store's non-ready ones, per sender: ``{"PlayerDailyCacheProcessor": 1}``); on the event path also
    ``event`` (the message as received), ``message_id``, ``event_received_at``, ``correlation_id`` (the
    envelope's, or the plan's ``run_id``) and ``execution_id`` (the envelope's; None for a plan shape).

    :param game_date: ISO game date to wait for (templated).
    :param deadline_clock: time of day ``HH:MM`` in ``timezone`` on the game date when the wait ends (templated).
    :param wait_seconds: wait this long from now instead of until ``deadline_clock`` (templated).
    :param skip_wait: when true the event is not waited for (templated).
    :param subscription: Pub/Sub subscription carrying Phase 4's events.
    :param project_id: project of the subscription; default from the connection.
    :param poke_interval: seconds between empty pulls.
    :param timezone: the timezone in which ``deadline_clock`` is read (the platform's backup runs on Pacific time).
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    template_fields: Sequence[str] = ("game_date", "deadline_clock", "wait_seconds", "skip_wait", "project_id")
    ui_color = "#e8f4fc"

    def __init__(
        self,
        *,
        game_date: str,
        deadline_clock: str = config.BACKUP_START,
        wait_seconds: str | int | None = None,
        skip_wait: str | bool = False,
        subscription: str = config.PHASE5_TRIGGER_SUBSCRIPTION,
        project_id: str | None = None,
        poke_interval: float = 5.0,
        timezone: str = config.BACKUP_TIMEZONE,
        gcp_conn_id: str = config.GCP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.game_date = game_date
        self.deadline_clock = deadline_clock
        self.wait_seconds = wait_seconds
        self.skip_wait = skip_wait
        self.subscription = subscription
        self.project_id = project_id
        self.poke_interval = poke_interval
        self.timezone = timezone
        self.gcp_conn_id = gcp_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        skipped = skipped_wait(context["dag_run"].run_type, self.skip_wait)
        if skipped:
            self.log.info("Not waiting for a Phase 4 event (%s run): going straight to the readiness gates", skipped)
            return {"triggered_by": skipped}
        max_wait = None if self.wait_seconds in (None, "", "None") else float(self.wait_seconds)  # type: ignore[arg-type]
        deadline = event_deadline(
            date.fromisoformat(self.game_date),
            self.deadline_clock,
            now=datetime.now(UTC),
            wait_seconds=max_wait,
            tz=self.timezone,
        )
        project_id = self._project_id()
        self.log.info(
            "Waiting for Phase 4's event for %s on %s until %s", self.game_date, self.subscription, deadline.isoformat()
        )
        self.defer(
            trigger=Phase4EventTrigger(
                project_id=project_id,
                subscription=self.subscription,
                game_date=self.game_date,
                deadline=deadline.isoformat(),
                poke_interval=self.poke_interval,
                gcp_conn_id=self.gcp_conn_id,
                labels=labels_for(context),
            ),
            method_name="execute_complete",
        )

    def _project_id(self) -> str:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

        return self.project_id or str(GoogleBaseHook(gcp_conn_id=self.gcp_conn_id).project_id)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        self._report_rejected(context, event.get("rejected") or [])
        others = event.get("others") or {}
        if others:
            # Normal traffic on the topic (docs/platform.md §1.3): worth a line in the log, not a warning.
            self.log.info("Acked Phase 4 messages that are not the feature store's ready event: %s", others)
        result: dict[str, Any] = {"rejected": event.get("rejected") or [], "others": others}
        result["late_phase4_events"] = self._report_late(context, event.get("late") or [])
        if event.get("status") == TriggerStatus.EVENT:
            payload = event["event"]
            self.log.info(
                "Phase 4 event %s from %s: %s players ready of %s (correlation id %s)",
                event["message_id"],
                payload.get("processor_name") or payload.get("processor") or "Phase 4",
                payload.get("players_ready", "an unknown number of"),
                _total(payload),
                payload.get("correlation_id") or payload.get("run_id"),
            )
            return {
                **result,
                "triggered_by": str(TriggeredBy.PUBSUB),
                "event": payload,
                "message_id": event["message_id"],
                "event_received_at": event["received_at"],
                # The id that traces the pipeline: the workers and Phase 6 get it (the plan's shape says run_id).
                "correlation_id": payload.get("correlation_id") or payload.get("run_id"),
                "execution_id": payload.get("execution_id"),
            }
        if event.get("status") == TriggerStatus.DEADLINE:
            self.log.warning(
                "No Phase 4 event by %s after %s pulls: going on to the readiness gates (scheduled backup path)",
                event["deadline"],
                event.get("pulls"),
            )
            return {**result, "triggered_by": str(TriggeredBy.SCHEDULER_BACKUP)}
        if event.get("status") == TriggerStatus.UNAVAILABLE:
            return self._wait_despite(context, event)
        raise RuntimeError(f"Unexpected trigger event: {event!r}")

    def _wait_despite(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """The subscription cannot be read: warn now, then keep waiting (and retrying) until the deadline.

        Going on to the readiness gates at once would judge Phase 4 hours before it normally finishes;
        the backup path belongs at the deadline, as on any day without an event.
        """
        warn(
            context,
            AlertKind.phase4_events_unreadable,
            f"Phase 4's events cannot be read from {self.subscription} ({event['reason']}): the run takes the "
            f"backup path at {event['deadline']} unless the subscription comes back; `provision` restores it",
        )
        self.defer(
            trigger=Phase4EventTrigger(
                project_id=self._project_id(),
                subscription=self.subscription,
                game_date=self.game_date,
                deadline=event["deadline"],
                poke_interval=self.poke_interval,
                gcp_conn_id=self.gcp_conn_id,
                tolerate_errors=True,
                labels=labels_for(context),
            ),
            method_name="execute_complete",
        )

    def _report_late(self, context: Any, late: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A warning for each pulled event of a date whose batch had already finished (:mod:`late_events`)."""
        if not late:
            return []

        found = came_late(late, finished_at(bigquery_hook(), [event["game_date"] for event in late]))
        for event in found:
            warn(context, AlertKind.phase4_event_late, words(event))
        return found

    def _report_rejected(self, context: Any, rejected: list[dict[str, str]]) -> None:
        """One warning per run for every unusable event it saw, so a broken publisher is noticed at once."""
        if not rejected:
            return

        reasons = "; ".join(f"{r['message_id']}: {r['reason']}" for r in rejected[:5])
        warn(
            context,
            AlertKind.phase4_events_rejected,
            f"{len(rejected)} unusable Phase 4 event(s) on {self.subscription} were acked and ignored: {reasons}",
        )
