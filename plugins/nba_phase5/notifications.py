"""Alerts: one notifier for failure callbacks and for the steps that judge a batch.

Every alert is logged, written to ``nba_reference.pipeline_alerts`` and, when an SMTP connection is
configured, e-mailed through Airflow's SMTP notifier.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from airflow.sdk import BaseNotifier

from nba_phase5 import config

log = logging.getLogger(__name__)
SEVERITIES = ("info", "warning", "error", "critical")
GAME_DAY_TASK = "resolve_game_day"


def _game_date(context: Any) -> date | None:
    ti = context.get("ti")
    value = ti.xcom_pull(task_ids=GAME_DAY_TASK, key="game_date") if ti is not None else None
    return date.fromisoformat(value) if value else None


def raise_alert(
    context: Any,
    severity: str,
    message: str,
    *,
    gcp_conn_id: str = config.GCP_CONN_ID,
    smtp_conn_id: str = "smtp_default",
    email_to: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Record one alert for the run in ``context``; returns the row written."""
    from nba_phase5.hooks.bigquery import Phase5BigQueryHook

    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    ti = context.get("ti")
    dag_run = context.get("dag_run")
    row = {
        "alert_id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC),
        "severity": severity,
        "game_date": _game_date(context),
        "dag_id": getattr(dag_run, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "message": message,
    }
    log_level = logging.CRITICAL if severity == "critical" else logging.WARNING
    log.log(log_level, "[%s alert] %s (game date %s, run %s)", severity, message, row["game_date"], row["run_id"])
    Phase5BigQueryHook(gcp_conn_id=gcp_conn_id).insert(config.ALERTS_TABLE, [row])
    _email(context, severity, message, smtp_conn_id=smtp_conn_id, email_to=email_to)
    return row


def _email(
    context: Any, severity: str, message: str, *, smtp_conn_id: str, email_to: str | Sequence[str] | None
) -> None:
    if not email_to:
        return
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

    try:
        BaseHook.get_connection(smtp_conn_id)
    except (AirflowNotFoundException, AirflowRuntimeError):
        log.info("No SMTP connection %r: alert not e-mailed", smtp_conn_id)
        return
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    try:
        SmtpNotifier(
            to=email_to,
            smtp_conn_id=smtp_conn_id,
            subject=f"[{severity}] {config.DAG_ID}: {message[:120]}",
            html_content=f"<p>{message}</p>",
        ).notify(context)
    except Exception:
        # The alert is already recorded and logged; a mail outage must not fail the task's callback.
        log.exception("Alert recorded but not e-mailed through %r", smtp_conn_id)


class PipelineAlertNotifier(BaseNotifier):
    """Raise a pipeline alert when a task or run fails.

    :param severity: ``info``, ``warning``, ``error`` or ``critical``.
    :param message: what went wrong (templated); the exception, when there is one, is appended.
    :param gcp_conn_id: connection used to write ``pipeline_alerts``.
    :param smtp_conn_id: SMTP connection; e-mail is sent only when it exists and ``email_to`` is set.
    :param email_to: recipients of the e-mail.
    """

    template_fields = ("message",)

    def __init__(
        self,
        *,
        severity: str = "error",
        message: str = "{{ ti.task_id }} failed",
        gcp_conn_id: str = config.GCP_CONN_ID,
        smtp_conn_id: str = "smtp_default",
        email_to: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.severity = severity
        self.message = message
        self.gcp_conn_id = gcp_conn_id
        self.smtp_conn_id = smtp_conn_id
        self.email_to = email_to

    def notify(self, context: Any) -> None:
        message = self.message
        exception = context.get("exception")
        if exception is not None:
            message = f"{message}: {exception}"
        try:
            raise_alert(
                context,
                self.severity,
                message,
                gcp_conn_id=self.gcp_conn_id,
                smtp_conn_id=self.smtp_conn_id,
                email_to=self.email_to,
            )
        except Exception:
            # A callback that raises hides the original failure; the alert is already in the log.
            log.exception("Could not record the %s alert: %s", self.severity, message)
