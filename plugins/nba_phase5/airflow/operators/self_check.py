"""The self-check's Phase 4 event task: record the probe, then wait for it on ``Phase4EventTrigger``.

Why the probe, and why the trigger never pulls the real subscription: :mod:`nba_phase5.airflow.self_check`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator

from nba_phase5 import config
from nba_phase5.airflow import self_check
from nba_phase5.airflow.job_labels import labels_for
from nba_phase5.airflow.self_check import event_verdict
from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger


class Phase4EventTriggerCheckOperator(BaseOperator):
    """Records the self-check's probe event in the inbox, then defers on
    :class:`~nba_phase5.airflow.triggers.phase4_event.Phase4EventTrigger` for the probe's date.

    It succeeds only when the trigger, running in the triggerer, found the probe in the inbox at its
    first look, without a pull (:func:`nba_phase5.airflow.self_check.event_verdict`).

    :param wait_seconds: the trigger's deadline from now (it answers at once when all is well).
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    ui_color = "#e8f4fc"

    def __init__(
        self, *, wait_seconds: float | None = None, gcp_conn_id: str = config.GCP_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.wait_seconds = wait_seconds
        self.gcp_conn_id = gcp_conn_id

    def execute(self, context: Any) -> None:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

        hook = Phase5BigQueryHook(gcp_conn_id=self.gcp_conn_id)
        # Recorded first, so the trigger's first inbox look ends its wait before it would pull.
        self_check.record_probe(hook)
        wait = self.wait_seconds if self.wait_seconds is not None else self_check.WAIT_SECONDS
        deadline = datetime.now(UTC) + timedelta(seconds=wait)
        self.log.info("Probe %s recorded; deferring on Phase4EventTrigger", self_check.PROBE_MESSAGE_ID)
        self.defer(
            trigger=Phase4EventTrigger(
                project_id=str(hook.project_id),
                subscription=self_check.UNUSED_SUBSCRIPTION,
                game_date=self_check.PROBE_DATE.isoformat(),
                deadline=deadline.isoformat(),
                gcp_conn_id=self.gcp_conn_id,
                labels=labels_for(context),
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resumed after the trigger: the probe, found without a pull, or an error saying what went wrong."""
        return event_verdict(event)
