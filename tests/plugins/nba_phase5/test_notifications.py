"""Alerts are recorded and logged; e-mail only with an SMTP connection, and a mail failure loses nothing."""

from __future__ import annotations

import logging
import socket
from datetime import date

import pytest

from helpers import alerts, task_context
from nba_phase5.notifications import PipelineAlertNotifier, raise_alert

pytestmark = pytest.mark.integration


def test_alert_without_smtp_connection_is_recorded_not_mailed(bq, phase5_dag, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 7, 1)
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    caplog.set_level(logging.INFO, logger="nba_phase5.notifications")
    context = task_context(phase5_dag, "retry_stragglers.verify_completion", day)
    row = raise_alert(context, "warning", "29 players still lack a prediction", email_to="oncall@example.com")
    [stored] = alerts(bq, day)
    assert stored["alert_id"] == row["alert_id"]
    assert (stored["severity"], stored["run_id"], stored["dag_id"]) == ("warning", "test_run", "nba_phase5_predictions")
    assert "not e-mailed" in caplog.text


def test_mail_failure_is_logged_and_the_alert_kept(bq, phase5_dag, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 7, 2)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", f"smtp://alerts:secret-password@127.0.0.1:{port}")
    caplog.set_level(logging.INFO, logger="nba_phase5.notifications")
    context = task_context(phase5_dag, "phase4_readiness.check_phase4_ready", day)
    PipelineAlertNotifier(severity="critical", message="Phase 4 is not ready", email_to="oncall@example.com").notify(
        {**context, "exception": RuntimeError("gate failed")}
    )
    [stored] = alerts(bq, day)
    assert stored["message"] == "Phase 4 is not ready: gate failed"
    assert "Alert recorded but not e-mailed" in caplog.text


def test_unknown_severity_is_refused(phase5_dag) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="severity"):
        raise_alert(task_context(phase5_dag, "batch_done"), "panic", "x")
