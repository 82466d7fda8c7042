"""Where an alert goes besides its BigQuery row: Slack and e-mail (docs/platform.md §3.4), each optional.

Slack goes through the Slack provider's webhook notifier (connection ``config.ALERT_SLACK_CONN_ID``),
e-mail through the SMTP provider's notifier (connection ``config.ALERT_SMTP_CONN_ID``, recipients in
the Variable ``config.ALERT_EMAILS_VARIABLE``). A missing connection or recipient list skips a channel;
a channel that fails is logged, never raised. Both carry the same text: the message, the alert kind's
runbook section, the run's grid and the raising task's log (:mod:`nba_phase5.airflow.alert_links`), then the facts.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import BaseHook, Variable
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

from nba_phase5 import config
from nba_phase5.airflow.alert_links import Link

log = logging.getLogger(__name__)
#: How much of the message the title (Slack's first line, the e-mail subject) carries.
TITLE_MESSAGE_CHARS = 120


def _connection_exists(conn_id: str) -> bool:
    """Whether ``conn_id`` resolves the way a task resolves it (env var, secrets backend, metadata DB)."""
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


def alert_text(row: dict[str, Any], *, links: Sequence[Link] = ()) -> tuple[str, list[str | Link]]:
    """The title and the body lines of an alert row, shared by every channel.

    :param row: the ``pipeline_alerts`` row (severity, message, game_date, run_id, task_id, alert_id).
    :param links: where the alert sends people (:func:`nba_phase5.airflow.alert_links.alert_links`): after the message.
    :return: ``(title, lines)``; the title is ``[severity] <dag> <game date>: <message start>``.
    """
    game_date = row["game_date"].isoformat() if row["game_date"] else "no game date"
    # One line whatever the message holds: a newline in an e-mail subject is a header injection.
    summary = " ".join(row["message"].split())[:TITLE_MESSAGE_CHARS]
    title = f"[{row['severity']}] {row['dag_id'] or config.DAG_ID} {game_date}: {summary}"
    lines: list[str | Link] = [
        row["message"],
        "",
        *links,
        f"Game date: {game_date}",
        f"Run: {row['run_id']}",
        f"Task: {row['task_id']}",
        f"Alert id: {row['alert_id']}",
    ]
    return title, lines


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats <, > and & as control characters (https://api.slack.com/reference/surfaces/formatting).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_line(line: str | Link) -> str:
    # A bare URL: Slack links it itself, and it stays readable in a notification's preview.
    return _slack_escape(f"{line.label}: {line.url}" if isinstance(line, Link) else line)


def _html_line(line: str | Link) -> str:
    if isinstance(line, Link):
        url = html.escape(line.url)
        return f'{html.escape(line.label)}: <a href="{url}">{url}</a>'
    return html.escape(line)


def _send_slack(context: Any, title: str, lines: list[str | Link], *, conn_id: str) -> None:
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    text = "\n".join([_slack_escape(title), *(_slack_line(line) for line in lines)])
    # notify(), not __call__: the message is final text, and Jinja would choke on braces in it.
    SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text).notify(context)


def _send_email(context: Any, title: str, lines: list[str | Link], *, conn_id: str, to: list[str]) -> None:
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    body = "<br>\n".join(_html_line(line) for line in lines)
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


def deliver(
    context: Any,
    row: dict[str, Any],
    *,
    links: Sequence[Link],
    slack_conn_id: str,
    smtp_conn_id: str,
    email_to: str | Sequence[str] | None,
) -> list[str]:
    """Send ``row`` and its ``links`` to Slack and e-mail where configured; returns the channels that took it.

    Never raises.

    :param context: the Airflow context the alert was raised in (the providers' notifiers take it).
    :param row: the ``pipeline_alerts`` row.
    :param links: the runbook section and the run's links (:func:`nba_phase5.airflow.alert_links.alert_links`).
    :param slack_conn_id: the Slack incoming-webhook connection.
    :param smtp_conn_id: the SMTP connection.
    :param email_to: recipients; ``None`` reads the Variable ``config.ALERT_EMAILS_VARIABLE``.
    """
    title, lines = alert_text(row, links=links)
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
