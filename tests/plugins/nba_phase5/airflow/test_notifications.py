"""Alerts reach people: every alert is a BigQuery row, and goes to Slack and e-mail where configured.

The receivers are real servers on 127.0.0.1 — an HTTP server standing in for Slack's incoming webhook and
an aiosmtpd SMTP server — reached through the real provider notifiers, configured the way Airflow reads
configuration (``AIRFLOW_CONN_*`` and ``AIRFLOW_VAR_*``). A channel that fails must never fail the alert.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from helpers import alerts, task_context
from nba_phase5 import config
from nba_phase5.airflow.alert_channels import alert_text, configured_channels
from nba_phase5.airflow.alert_links import Link
from nba_phase5.airflow.notifications import PipelineAlertNotifier, send_alert
from nba_phase5.core.alert_kinds import RUNBOOK_BASE_URL_ENV, AlertKind

GATE_TASK = "phase4_readiness.check_phase4_ready"
NOT_READY = (
    "Phase 4 is not ready for 2025-07-03: 40/450 players ready (8.9 %), below 80 % and below 100 players "
    "after the 30 min wait; no predictions will be made"
)
WEBHOOK_TOKEN = "T0000/B0000/XXXXXXXX"
WEBHOOK_PATH = f"/services/{WEBHOOK_TOKEN}"
SLACK_CONN = "AIRFLOW_CONN_SLACK_ALERTS"
SMTP_CONN = "AIRFLOW_CONN_SMTP_DEFAULT"
EMAILS_VAR = "AIRFLOW_VAR_NBA_PHASE5_ALERT_EMAILS"
#: Airflow's own setting for the UI's address, which the alerts' run links use.
BASE_URL_VAR = "AIRFLOW__API__BASE_URL"
AIRFLOW_UI = "http://airflow.test:8080"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class WebhookReceiver:
    """What the stand-in Slack webhook received, and the status it answers with."""

    port: int
    status: int = 200
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def slack_webhook() -> Iterator[WebhookReceiver]:
    """A real HTTP server on 127.0.0.1 answering like Slack's incoming webhook (200 ``ok``)."""
    receiver = WebhookReceiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.posts.append((self.path, json.loads(body)))
            answer = b"ok" if receiver.status == 200 else b"internal_error"
            self.send_response(receiver.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="slack-webhook", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class MailHandler:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, MailHandler]]:
    """A real SMTP server (aiosmtpd, in its own thread) on a free port of 127.0.0.1."""
    from aiosmtpd.controller import Controller

    handler = MailHandler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def no_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no Slack, SMTP or recipients configured, whatever the shell has, and with the
    UI's address set as a deployment sets it (a trailing slash included)."""
    for name in (SLACK_CONN, SMTP_CONN, EMAILS_VAR, RUNBOOK_BASE_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(BASE_URL_VAR, AIRFLOW_UI + "/")


def _configure_slack(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    # The provider builds host + "/" + password: a real webhook is https://hooks.slack.com/services/<token>.
    conn = {"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{port}/services", "password": WEBHOOK_TOKEN}
    monkeypatch.setenv(SLACK_CONN, json.dumps(conn))


def _configure_email(monkeypatch: pytest.MonkeyPatch, port: int, recipients: str | None) -> None:
    extra = {"from_email": "airflow@nba-props.test", "disable_ssl": True, "disable_tls": True, "retry_limit": 0}
    monkeypatch.setenv(SMTP_CONN, json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra}))
    if recipients is not None:
        monkeypatch.setenv(EMAILS_VAR, recipients)


def _closed_port() -> int:
    return _free_port()  # bound, then released: nobody listens there


@pytest.mark.integration
def test_critical_alert_reaches_slack_and_email_with_its_full_text(
    bq, phase5_dag, slack_webhook, smtp_server, monkeypatch
) -> None:
    day = date(2025, 7, 3)
    smtp_port, mail = smtp_server
    _configure_slack(monkeypatch, slack_webhook.port)
    _configure_email(monkeypatch, smtp_port, " oncall@example.com,data-eng@example.com , ")
    assert configured_channels() == ["slack", "email"]

    row = send_alert(task_context(phase5_dag, GATE_TASK, day), AlertKind.phase4_not_ready, NOT_READY)

    assert row["delivered"] == ["bigquery", "slack", "email"]
    [stored] = alerts(bq, day)
    assert (stored["alert_id"], stored["severity"], stored["message"]) == (row["alert_id"], "critical", NOT_READY)
    title = (
        "[critical] nba_phase5_predictions 2025-07-03: Phase 4 is not ready for 2025-07-03: 40/450 players "
        "ready (8.9 %), below 80 % and below 100 players after the 30 min wai"
    )
    run = f"{AIRFLOW_UI}/dags/nba_phase5_predictions/runs/test_run"
    links = [
        "Runbook: docs/runbook.md#phase4_not_ready",
        f"Run (grid): {run}",
        f"Task log: {run}/tasks/phase4_readiness.check_phase4_ready",
    ]
    details = [
        "Game date: 2025-07-03",
        "Run: test_run",
        "Task: phase4_readiness.check_phase4_ready",
        f"Alert id: {row['alert_id']}",
    ]
    assert slack_webhook.posts == [(WEBHOOK_PATH, {"text": "\n".join([title, NOT_READY, "", *links, *details])})]

    [envelope] = mail.envelopes
    assert envelope.mail_from == "airflow@nba-props.test"
    assert envelope.rcpt_tos == ["oncall@example.com", "data-eng@example.com"]
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert received["Subject"] == title
    assert received["To"] == "oncall@example.com, data-eng@example.com"
    html_part = received.get_body(preferencelist=("html",))
    assert html_part is not None
    anchors = [
        'Runbook: <a href="docs/runbook.md#phase4_not_ready">docs/runbook.md#phase4_not_ready</a>',
        f'Run (grid): <a href="{run}">{run}</a>',
        f'Task log: <a href="{run}/tasks/phase4_readiness.check_phase4_ready">'
        f"{run}/tasks/phase4_readiness.check_phase4_ready</a>",
    ]
    assert html_part.get_content() == "<p>" + "<br>\n".join([NOT_READY, "", *anchors, *details]) + "</p>"


@pytest.mark.integration
def test_failure_callback_alert_reaches_both_receivers(bq, phase5_dag, slack_webhook, smtp_server, monkeypatch) -> None:
    day = date(2025, 7, 4)
    smtp_port, mail = smtp_server
    _configure_slack(monkeypatch, slack_webhook.port)
    _configure_email(monkeypatch, smtp_port, "oncall@example.com")
    context = task_context(phase5_dag, GATE_TASK, day)
    # An exception text with markup characters and a line break, as real ones have.
    PipelineAlertNotifier(kind=AlertKind.phase4_not_ready, message="Phase 4 is not ready").notify(
        {**context, "exception": RuntimeError("gate failed:\n<40/450 ready> & no wait left")}
    )
    [stored] = alerts(bq, day)
    assert stored["message"] == "Phase 4 is not ready: gate failed:\n<40/450 ready> & no wait left"
    [(_, body)] = slack_webhook.posts
    assert body["text"].splitlines()[:2] == [
        "[critical] nba_phase5_predictions 2025-07-04: Phase 4 is not ready: gate failed: &lt;40/450 ready&gt; "
        "&amp; no wait left",
        "Phase 4 is not ready: gate failed:",
    ]
    [envelope] = mail.envelopes
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert received["Subject"] == (
        "[critical] nba_phase5_predictions 2025-07-04: Phase 4 is not ready: gate failed: <40/450 ready> & no wait left"
    )
    html_part = received.get_body(preferencelist=("html",))
    assert html_part is not None
    assert html_part.get_content().startswith(
        "<p>Phase 4 is not ready: gate failed:\n&lt;40/450 ready&gt; &amp; no wait left<br>\n<br>\n"
        'Runbook: <a href="docs/runbook.md#phase4_not_ready">'
    )


@pytest.mark.integration
def test_webhook_500_and_smtp_port_closed_do_not_fail_the_alert(
    bq, phase5_dag, slack_webhook, monkeypatch, caplog
) -> None:
    day = date(2025, 7, 5)
    slack_webhook.status = 500
    _configure_slack(monkeypatch, slack_webhook.port)
    _configure_email(monkeypatch, _closed_port(), "oncall@example.com")
    caplog.set_level(logging.INFO, logger="nba_phase5")

    row = send_alert(task_context(phase5_dag, GATE_TASK, day), AlertKind.phase4_not_ready, NOT_READY)

    assert row["delivered"] == ["bigquery"]
    [stored] = alerts(bq, day)
    assert stored["alert_id"] == row["alert_id"]
    assert len(slack_webhook.posts) == 1  # it was tried, and answered 500
    assert "Alert not sent to slack through 'slack_alerts': delivery failed" in caplog.text
    assert "Alert not sent to email through 'smtp_default': delivery failed" in caplog.text


@pytest.mark.integration
def test_one_channel_failing_leaves_the_other_delivered(bq, phase5_dag, smtp_server, monkeypatch) -> None:
    day = date(2025, 7, 6)
    smtp_port, mail = smtp_server
    _configure_slack(monkeypatch, _closed_port())  # the webhook host is down
    _configure_email(monkeypatch, smtp_port, "oncall@example.com")
    context = task_context(phase5_dag, "retry_stragglers.verify_completion", day)
    row = send_alert(context, AlertKind.stragglers_remaining, "29 missing")
    assert row["delivered"] == ["bigquery", "email"]
    assert len(mail.envelopes) == 1
    assert [r["alert_id"] for r in alerts(bq, day)] == [row["alert_id"]]


@pytest.mark.integration
def test_no_channel_configured_records_only_in_bigquery(bq, phase5_dag, caplog) -> None:
    day = date(2025, 7, 1)
    caplog.set_level(logging.INFO, logger="nba_phase5")
    context = task_context(phase5_dag, "retry_stragglers.verify_completion", day)
    assert configured_channels() == []
    row = send_alert(context, AlertKind.stragglers_remaining, "29 players still lack a prediction")
    assert row["delivered"] == ["bigquery"]
    [stored] = alerts(bq, day)
    assert stored["alert_id"] == row["alert_id"]
    assert (stored["severity"], stored["run_id"], stored["dag_id"]) == ("warning", "test_run", "nba_phase5_predictions")
    assert "No Slack connection 'slack_alerts': alert not sent to Slack" in caplog.text
    assert "No alert recipients (Variable 'nba_phase5_alert_emails'): alert not e-mailed" in caplog.text


@pytest.mark.integration
def test_recipients_without_smtp_connection_are_not_mailed(bq, phase5_dag, monkeypatch, caplog) -> None:
    day = date(2025, 7, 2)
    monkeypatch.setenv(EMAILS_VAR, "oncall@example.com")
    caplog.set_level(logging.INFO, logger="nba_phase5")
    assert configured_channels() == []
    context = task_context(phase5_dag, GATE_TASK, day)
    row = send_alert(context, AlertKind.gate_unavailable, "x", email_to="other@example.com")
    assert row["delivered"] == ["bigquery"]
    assert "No SMTP connection 'smtp_default': alert not e-mailed" in caplog.text


@pytest.mark.integration
def test_bigquery_down_still_alerts_people_then_raises(stack, phase5_dag, slack_webhook, monkeypatch) -> None:
    from nba_phase5.bigquery.clients import EmulatorUnreachableError

    _configure_slack(monkeypatch, slack_webhook.port)
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", f"127.0.0.1:{_closed_port()}")
    with pytest.raises(EmulatorUnreachableError):
        send_alert(task_context(phase5_dag, GATE_TASK, date(2025, 7, 7)), AlertKind.phase4_not_ready, NOT_READY)
    [(_, body)] = slack_webhook.posts
    assert body["text"].startswith("[critical] nba_phase5_predictions 2025-07-07: ")


def test_configured_channels_needs_a_connection_and_recipients_for_email(monkeypatch) -> None:
    _configure_email(monkeypatch, 2525, recipients=None)
    assert configured_channels() == []  # an SMTP connection but nobody to write to
    assert configured_channels(email_to="oncall@example.com") == ["email"]
    monkeypatch.setenv(EMAILS_VAR, " , ")
    assert configured_channels() == []
    monkeypatch.setenv(EMAILS_VAR, "oncall@example.com")
    _configure_slack(monkeypatch, 9)
    assert configured_channels() == ["slack", "email"]
    assert configured_channels(slack_conn_id="no_such_conn", smtp_conn_id="no_such_conn") == []


def test_alert_title_is_one_line_and_the_body_keeps_the_message() -> None:
    row = {
        "severity": "error",
        "message": "fan_out_requests failed:\n  <HttpError 503> & retried",
        "game_date": None,
        "dag_id": None,
        "run_id": "manual__1",
        "task_id": "fan_out_requests",
        "alert_id": "a1",
    }
    runbook = Link("Runbook", "docs/runbook.md#task_failed")
    title, lines = alert_text(row, links=[runbook])
    assert title == f"[error] {config.DAG_ID} no game date: fan_out_requests failed: <HttpError 503> & retried"
    assert lines == [
        row["message"],
        "",
        runbook,
        "Game date: no game date",
        "Run: manual__1",
        "Task: fan_out_requests",
        "Alert id: a1",
    ]


def test_an_alert_needs_a_kind() -> None:
    with pytest.raises(TypeError, match="AlertKind"):
        send_alert({}, "critical", "x")


#: Where each kind is raised: the task whose context raises it (``run_died``: the DAG callback's context,
#: which is its run's last task's), or None for the deadline alert, which the triggerer raises for the run.
RAISED_IN: dict[AlertKind, str | None] = {
    AlertKind.task_failed: "fan_out_requests",
    AlertKind.phase4_not_ready: GATE_TASK,
    AlertKind.gate_unavailable: GATE_TASK,
    AlertKind.batch_incomplete: "retry_stragglers.verify_completion",
    AlertKind.run_died: "record_batch_run",
    AlertKind.deadline_missed: None,
    AlertKind.batch_orphaned: "record_batch_run",
    AlertKind.schedule_outage: "resolve_game_day",
    AlertKind.phase4_degraded: "phase4_readiness.proceed_with_ready_players",
    AlertKind.stragglers_remaining: "retry_stragglers.verify_completion",
    AlertKind.phase4_events_unreadable: "wait_for_phase4_event",
    AlertKind.phase4_events_rejected: "wait_for_phase4_event",
    AlertKind.phase4_event_late: "wait_for_phase4_event",
    AlertKind.handoff_refused: "hand_off_to_phase6",
}
RUN_ID = "scheduled__2025-11-28T05:00:00+00:00"
GRID = f"{AIRFLOW_UI}/dags/nba_phase5_predictions/runs/scheduled__2025-11-28T05%3A00%3A00%2B00%3A00"
REPO = "https://git.example.com/nba/phase5/blob/main"


def test_every_kind_says_where_it_is_raised() -> None:
    assert set(RAISED_IN) == set(AlertKind)


def _raise(phase5_dag: Any, kind: AlertKind) -> None:
    """Raise ``kind`` as its caller does: in its task's context (on its second try), or as the deadline."""
    task_id = RAISED_IN[kind]
    if task_id is None:
        from nba_phase5.airflow.sla import alert_missed_deadline

        dag_run = {"dag_id": config.DAG_ID, "dag_run_id": RUN_ID, "logical_date": "2025-11-28T05:00:00+00:00"}
        assert alert_missed_deadline({"dag_run": {**dag_run, "run_type": "scheduled", "state": "running"}})
        return
    context = task_context(phase5_dag, task_id, date(2025, 11, 28))
    context["dag_run"].run_id = context["run_id"] = RUN_ID
    context["ti"].try_number = 2
    send_alert(context, kind, f"a {kind.name} alert")


@pytest.mark.integration
@pytest.mark.parametrize("kind", list(AlertKind), ids=lambda kind: kind.name)
def test_every_kind_reaches_people_with_its_runbook_section_and_the_run_links(
    bq, phase5_dag, slack_webhook, smtp_server, monkeypatch, kind
) -> None:
    smtp_port, mail = smtp_server
    _configure_slack(monkeypatch, slack_webhook.port)
    _configure_email(monkeypatch, smtp_port, "oncall@example.com")
    monkeypatch.setenv(RUNBOOK_BASE_URL_ENV, REPO)

    _raise(phase5_dag, kind)

    [(_, body)] = slack_webhook.posts
    slack = body["text"].splitlines()
    [envelope] = mail.envelopes
    html_part = email.message_from_bytes(envelope.content, policy=email.policy.default).get_body(("html",))
    assert html_part is not None
    mailed = html_part.get_content()
    runbook = f"{REPO}/docs/runbook.md#{kind.name}"
    log = f"{GRID}/tasks/{RAISED_IN[kind]}?try_number=2"
    assert f"Runbook: {runbook}" in slack
    assert f"Run (grid): {GRID}" in slack
    assert f'Runbook: <a href="{runbook}">{runbook}</a>' in mailed
    assert f'Run (grid): <a href="{GRID}">{GRID}</a>' in mailed
    if RAISED_IN[kind] is None:  # raised for the run, by no task: nothing to link but the run
        assert [line for line in slack if line.startswith("Task log")] == []
        assert "Task log" not in mailed
    else:
        assert f"Task log: {log}" in slack
        assert f'Task log: <a href="{log}">{log}</a>' in mailed


def test_a_failure_that_knows_its_kind_overrides_the_notifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    from nba_phase5.airflow.tasks.batch import BatchIncompleteError

    raised: list[tuple[AlertKind, str]] = []
    monkeypatch.setattr(
        "nba_phase5.airflow.notifications.send_alert",
        lambda context, kind, message, **_: raised.append((kind, message)),
    )
    notifier = PipelineAlertNotifier()  # the DAG's default for every task: task_failed
    notifier.notify({"exception": BatchIncompleteError("Prediction batch for 2025-11-28 failed: 0/90")})
    notifier.notify({"exception": RuntimeError("boom")})
    assert raised == [
        (AlertKind.batch_incomplete, "Prediction batch for 2025-11-28 failed: 0/90"),
        (AlertKind.task_failed, "{{ ti.task_id }} failed: boom"),
    ]
