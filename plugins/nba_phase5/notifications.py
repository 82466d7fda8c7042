"""Alerts: one notifier for failure callbacks and for the steps that judge a batch.

Every alert is logged and written to ``nba_reference.pipeline_alerts``, then sent to the people channels
the platform asks for (PLATFORM.md §3): Slack through the Slack provider's webhook notifier (connection
``config.ALERT_SLACK_CONN_ID``) and e-mail through the SMTP provider's notifier (connection
``config.ALERT_SMTP_CONN_ID``, recipients in the Variable ``config.ALERT_EMAILS_VARIABLE``). Each channel
is optional, and a channel that fails is logged, never raised: an alert must not fail the task or the
callback that raises it.
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from airflow.sdk import BaseNotifier

from nba_phase5 import config

log = logging.getLogger(__name__)
SEVERITIES = ("info", "warning", "error", "critical")
GAME_DAY_TASK = config.TASKS.game_day
#: How much of the message the title (Slack's first line, the e-mail subject) carries.
TITLE_MESSAGE_CHARS = 120


def _game_date(context: Any) -> date | None:
    ti = context.get("ti")
    # A DAG-level callback passes the game date in the context itself (its task instance, when it has
    # one, may never have pushed it).
    value = context.get("game_date")
    if not value and ti is not None:
        value = ti.xcom_pull(task_ids=GAME_DAY_TASK, key="game_date")
    return date.fromisoformat(value) if value else None


def _connection_exists(conn_id: str) -> bool:
    """Whether ``conn_id`` resolves the way a task resolves it (env var, secrets backend, metadata DB)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

    try:
        BaseHook.get_connection(conn_id)
    except (AirflowNotFoundException, AirflowRuntimeError):
        return False
    except Exception:
        # A broken secrets backend must not fail an alert or a summary: the channel counts as absent.
        log.warning("Could not look up connection %r; treating it as not configured", conn_id, exc_info=True)
        return False
    return True


def _recipients(email_to: str | Sequence[str] | None) -> list[str]:
    """Explicit recipients, else the comma-separated Variable; blanks dropped."""
    if email_to is None:
        from airflow.sdk import Variable

        try:
            email_to = str(Variable.get(config.ALERT_EMAILS_VARIABLE, default="") or "")
        except Exception:
            # Same reasoning as for connections: an unreadable Variable means no e-mail, not a failed task.
            log.warning("Could not read Variable %r; no alert e-mail", config.ALERT_EMAILS_VARIABLE, exc_info=True)
            return []
    parts = email_to.split(",") if isinstance(email_to, str) else list(email_to)
    return [address.strip() for address in parts if address and address.strip()]


def configured_channels(
    *,
    slack_conn_id: str = config.ALERT_SLACK_CONN_ID,
    smtp_conn_id: str = config.ALERT_SMTP_CONN_ID,
    email_to: str | Sequence[str] | None = None,
) -> list[str]:
    """Which people channels an alert raised now would be sent to: a sublist of ``["slack", "email"]``.

    Looked up as a task looks them up (``BaseHook.get_connection``, ``Variable.get``); a missing
    connection or Variable means the channel is not configured, never an error.

    :param slack_conn_id: the Slack incoming-webhook connection.
    :param smtp_conn_id: the SMTP connection.
    :param email_to: recipients; ``None`` reads the Variable ``config.ALERT_EMAILS_VARIABLE``.
    """
    channels = []
    if _connection_exists(slack_conn_id):
        channels.append("slack")
    if _recipients(email_to) and _connection_exists(smtp_conn_id):
        channels.append("email")
    return channels


def alert_text(row: dict[str, Any]) -> tuple[str, list[str]]:
    """The title and the body lines of an alert row, shared by every channel.

    :param row: the ``pipeline_alerts`` row (severity, message, game_date, run_id, task_id, alert_id).
    :return: ``(title, lines)``; the title is ``[severity] <dag> <game date>: <message start>``.
    """
    game_date = row["game_date"].isoformat() if row["game_date"] else "no game date"
    # One line whatever the message holds: a newline in an e-mail subject is a header injection.
    summary = " ".join(row["message"].split())[:TITLE_MESSAGE_CHARS]
    title = f"[{row['severity']}] {row['dag_id'] or config.DAG_ID} {game_date}: {summary}"
    lines = [
        row["message"],
        "",
        f"Game date: {game_date}",
        f"Run: {row['run_id']}",
        f"Task: {row['task_id']}",
        f"Alert id: {row['alert_id']}",
    ]
    return title, lines


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats <, > and & as control characters (https://api.slack.com/reference/surfaces/formatting).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _send_slack(context: Any, title: str, lines: list[str], *, conn_id: str) -> None:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    text = _slack_escape("\n".join([title, *lines]))
    # notify(), not __call__: the message is final text, and Jinja would choke on braces in it.
    SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text).notify(context)


def _send_email(context: Any, title: str, lines: list[str], *, conn_id: str, to: list[str]) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    body = "<br>\n".join(html.escape(line) for line in lines)
    # The sender is the connection's ``from_email`` extra (from_email=None).
    SmtpNotifier(to=to, smtp_conn_id=conn_id, subject=title, html_content=f"<p>{body}</p>").notify(context)


def _attempt(channel: str, conn_id: str, send: Callable[[], None]) -> bool:
    try:
        send()
    except Exception:
        # The alert is logged (and normally in BigQuery); an outage of one channel must not fail the task.
        log.exception("Alert not sent to %s through %r: delivery failed", channel, conn_id)
        return False
    return True


def _deliver(
    context: Any, row: dict[str, Any], *, slack_conn_id: str, smtp_conn_id: str, email_to: str | Sequence[str] | None
) -> list[str]:
    """Send ``row`` to Slack and e-mail where configured; returns the channels that took it. Never raises."""
    title, lines = alert_text(row)
    delivered: list[str] = []
    if not _connection_exists(slack_conn_id):
        log.info("No Slack connection %r: alert not sent to Slack", slack_conn_id)
    elif _attempt("slack", slack_conn_id, lambda: _send_slack(context, title, lines, conn_id=slack_conn_id)):
        delivered.append("slack")
    recipients = _recipients(email_to)
    if not recipients:
        log.info("No alert recipients (Variable %r): alert not e-mailed", config.ALERT_EMAILS_VARIABLE)
    elif not _connection_exists(smtp_conn_id):
        log.info("No SMTP connection %r: alert not e-mailed", smtp_conn_id)
    elif _attempt(
        "email", smtp_conn_id, lambda: _send_email(context, title, lines, conn_id=smtp_conn_id, to=recipients)
    ):
        delivered.append("email")
    return delivered


def raise_alert(
    context: Any,
    severity: str,
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
    :param severity: one of ``SEVERITIES``.
    :param message: what happened, in full.
    :param gcp_conn_id: connection used to write ``pipeline_alerts``.
    :param smtp_conn_id: SMTP connection for the e-mail.
    :param email_to: recipients; ``None`` reads the Variable ``config.ALERT_EMAILS_VARIABLE``.
    :param slack_conn_id: Slack incoming-webhook connection.
    :return: the row written, plus ``delivered``: the channels that took it, e.g. ``["bigquery", "slack"]``.
    """
    from nba_phase5.hooks.bigquery import Phase5BigQueryHook
    from nba_phase5.job_labels import job_labels

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
    deliver = partial(_deliver, context, row, slack_conn_id=slack_conn_id, smtp_conn_id=smtp_conn_id, email_to=email_to)
    try:
        # Labelled from the callback's context: Airflow runs callbacks outside the task's current context.
        labels = job_labels(
            str(row["dag_id"] or ""),
            str(row["task_id"] or context.get("task_id") or "dag_callback"),
            row["game_date"] or "",
        )
        Phase5BigQueryHook(gcp_conn_id=gcp_conn_id, job_labels=labels).insert(config.ALERTS_TABLE, [row])
    except Exception:
        # BigQuery being down is exactly when people must hear of it: send first, then fail as before.
        deliver()
        raise
    delivered = ["bigquery", *deliver()]
    log.info("Alert %s delivered to %s", row["alert_id"], ", ".join(delivered))
    return {**row, "delivered": delivered}


def warn(context: Any, message: str) -> None:
    """A warning from a step that goes on regardless: failing to record it must not fail the step."""
    try:
        raise_alert(context, config.ALERTS.warning, message)
    except Exception:
        log.exception("Could not record the warning alert: %s", message)


class PipelineAlertNotifier(BaseNotifier):
    """Raise a pipeline alert when a task or run fails.

    :param severity: ``info``, ``warning``, ``error`` or ``critical``.
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
        severity: str = config.ALERTS.task_failed,
        message: str = "{{ ti.task_id }} failed",
        gcp_conn_id: str = config.GCP_CONN_ID,
        smtp_conn_id: str = config.ALERT_SMTP_CONN_ID,
        email_to: str | Sequence[str] | None = None,
        slack_conn_id: str = config.ALERT_SLACK_CONN_ID,
        include_exception: bool = True,
    ) -> None:
        super().__init__()
        self.severity = severity
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
        # A failure that already knows how bad it is (e.g. a batch far from complete) says so itself.
        severity = getattr(exception, "alert_severity", None) or self.severity
        if getattr(exception, "alert_message", None):
            message = str(exception.alert_message)  # type: ignore[union-attr]
        try:
            raise_alert(
                context,
                severity,
                message,
                gcp_conn_id=self.gcp_conn_id,
                smtp_conn_id=self.smtp_conn_id,
                email_to=self.email_to,
                slack_conn_id=self.slack_conn_id,
            )
        except Exception:
            # A callback that raises hides the original failure; the alert is already in the log.
            log.exception("Could not record the %s alert: %s", self.severity, message)
