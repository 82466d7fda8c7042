"""Alerts: one notifier for failure callbacks and for the steps that judge a batch.

Every alert is logged and written to the alerts table (``config.ALERTS_TABLE``), then sent to the
people channels the platform asks for (:mod:`nba_phase5.airflow.alert_channels`: Slack and e-mail),
naming its kind's runbook section and linking the run (:mod:`nba_phase5.core.alert_kinds`,
:mod:`nba_phase5.airflow.alert_links`). Each channel is optional, and a channel that fails is logged,
never raised: an alert must not fail the task or the callback that raises it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from airflow.sdk import BaseNotifier

from nba_phase5 import config
from nba_phase5.airflow.alert_channels import deliver
from nba_phase5.airflow.alert_links import alert_links
from nba_phase5.airflow.job_labels import job_labels
from nba_phase5.core.alert_kinds import AlertKind

log = logging.getLogger(__name__)
GAME_DAY_TASK = config.TASKS.game_day


def _game_date(context: Any) -> date | None:
    ti = context.get("ti")
    # A DAG-level callback passes the game date in the context itself (its task instance, when it has
    # one, may never have pushed it).
    value = context.get("game_date")
    if not value and ti is not None:
        value = ti.xcom_pull(task_ids=GAME_DAY_TASK, key="game_date")
    return date.fromisoformat(value) if value else None


def send_alert(
    context: Any,
    kind: AlertKind,
    message: str,
    *,
    gcp_conn_id: str = config.GCP_CONN_ID,
    smtp_conn_id: str = config.ALERT_SMTP_CONN_ID,
    email_to: str | Sequence[str] | None = None,
    slack_conn_id: str = config.ALERT_SLACK_CONN_ID,
) -> dict[str, Any]:
    """Record one alert for the run in ``context`` and send it to the configured people channels.

    A Slack or e-mail failure is logged and leaves that channel out of ``delivered``; it never raises.
    A BigQuery failure still raises, as before, but only after Slack and e-mail have been tried.

    :param context: the task's Airflow context (``ti``, ``dag_run``).
    :param kind: the kind of alert: its severity, and the runbook section the people channels name.
    :param message: what happened, in full.
    :param gcp_conn_id: connection used to write ``pipeline_alerts``.
    :param smtp_conn_id: SMTP connection for the e-mail.
    :param email_to: recipients; ``None`` reads the Variable ``config.ALERT_EMAILS_VARIABLE``.
    :param slack_conn_id: Slack incoming-webhook connection.
    :return: the row written, plus ``delivered``: the channels that took it, e.g. ``["bigquery", "slack"]``.
    """
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

    if not isinstance(kind, AlertKind):
        raise TypeError(f"kind must be an AlertKind (nba_phase5.core.alert_kinds), got {kind!r}")
    row = alert_row(context, kind, message)
    log_level = logging.CRITICAL if kind.severity == "critical" else logging.WARNING
    where = (row["game_date"], row["run_id"])
    log.log(log_level, "[%s alert %s] %s (game date %s, run %s)", kind.severity, kind.name, message, *where)
    links = alert_links(context, row, kind)
    send = partial(
        deliver, context, row, links=links, slack_conn_id=slack_conn_id, smtp_conn_id=smtp_conn_id, email_to=email_to
    )
    try:
        # Labelled from the callback's context: Airflow runs callbacks outside the task's current context.
        labels = job_labels(
            dag_id=str(row["dag_id"] or ""),
            task_id=str(row["task_id"] or context.get("task_id") or "dag_callback"),
            game_date=row["game_date"] or "",
        )
        Phase5BigQueryHook(gcp_conn_id=gcp_conn_id, job_labels=labels).insert(config.ALERTS_TABLE, [row])
    except Exception:
        # BigQuery being down is exactly when people must hear of it: send first, then fail as before.
        send()
        raise
    delivered = ["bigquery", *send()]
    log.info("Alert %s delivered to %s", row["alert_id"], ", ".join(delivered))
    return {**row, "delivered": delivered}


def alert_row(context: Any, kind: AlertKind, message: str) -> dict[str, Any]:
    """The ``pipeline_alerts`` row for one alert of the run in ``context``."""
    ti = context.get("ti")
    dag_run = context.get("dag_run")
    return {
        "alert_id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC),
        "severity": kind.severity,
        "game_date": _game_date(context),
        "dag_id": getattr(dag_run, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "message": message,
    }


def warn(context: Any, kind: AlertKind, message: str) -> None:
    """A warning from a step that goes on regardless: failing to record it must not fail the step.

    :param context: the task's Airflow context.
    :param kind: which warning (each has its own runbook section).
    :param message: what happened, in full.
    """
    try:
        send_alert(context, kind, message)
    except Exception:
        log.exception("Could not record the %s alert: %s", kind.name, message)


class PipelineAlertNotifier(BaseNotifier):
    """Raise a pipeline alert when a task or run fails.

    :param kind: the kind of alert (its severity and runbook section); an exception with an ``alert_kind``
        overrides it.
    :param message: what went wrong (templated); the exception, when there is one, is appended.
    :param include_exception: append the exception; off when ``message`` already says why in words
        (a failed check's exception is a list of booleans).
    :param gcp_conn_id: connection used to write ``pipeline_alerts``.
    :param smtp_conn_id: SMTP connection; e-mail is sent only when it exists and there are recipients.
    :param email_to: recipients; ``None`` reads the Variable ``config.ALERT_EMAILS_VARIABLE``.
    :param slack_conn_id: Slack incoming-webhook connection; Slack is skipped when it does not exist.
    """

    template_fields = ("message",)

    def __init__(
        self,
        *,
        kind: AlertKind = AlertKind.task_failed,
        message: str = "{{ ti.task_id }} failed",
        gcp_conn_id: str = config.GCP_CONN_ID,
        smtp_conn_id: str = config.ALERT_SMTP_CONN_ID,
        email_to: str | Sequence[str] | None = None,
        slack_conn_id: str = config.ALERT_SLACK_CONN_ID,
        include_exception: bool = True,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.message = message
        self.message_template = message
        self.include_exception = include_exception
        self.gcp_conn_id = gcp_conn_id
        self.smtp_conn_id = smtp_conn_id
        self.email_to = email_to
        self.slack_conn_id = slack_conn_id

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Rendering overwrites `message`; one notifier object serves every failure of the task in a
        # process (`dags test`, several runs in one test session), so render from the template each time.
        self.message = self.message_template
        super().render_template_fields(context, jinja_env)

    def notify(self, context: Any) -> None:
        message = self.message
        exception = context.get("exception")
        if exception is not None and self.include_exception:
            message = f"{message}: {exception}"
        # A failure that already knows what it is (e.g. a batch far from complete) says so itself.
        kind = getattr(exception, "alert_kind", None) or self.kind
        if getattr(exception, "alert_message", None):
            message = str(exception.alert_message)  # type: ignore[union-attr]
        try:
            send_alert(
                context,
                kind,
                message,
                gcp_conn_id=self.gcp_conn_id,
                smtp_conn_id=self.smtp_conn_id,
                email_to=self.email_to,
                slack_conn_id=self.slack_conn_id,
            )
        except Exception:
            # A callback that raises hides the original failure; the alert is already in the log.
            log.exception("Could not record the %s alert: %s", kind.name, message)
