"""The SLA callback's decisions: which missed deadlines alert, and what the alert says."""

from __future__ import annotations

from typing import Any

import pytest

from nba_phase5 import notifications, sla


def _context(run_type: str, logical: str, queued: str, deadline: str, **conf: str) -> dict[str, Any]:
    dag_run = {
        "dag_id": "nba_phase5_predictions",
        "dag_run_id": f"{run_type}__{logical}",
        "run_type": run_type,
        "logical_date": logical,
        "queued_at": queued,
        "run_after": logical,
        "conf": conf,
    }
    return {"dag_run": dag_run, "deadline": {"id": "d1", "deadline_time": deadline}}


@pytest.fixture
def raised(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str, str]]:
    calls: list[tuple[Any, str, str]] = []
    monkeypatch.setattr(
        notifications, "raise_alert", lambda context, severity, message: calls.append((context, severity, message))
    )
    return calls


def test_the_overnight_run_still_going_at_10_am_eastern_raises_one_critical_alert(raised) -> None:  # type: ignore[no-untyped-def]
    # The run for 2025-11-28 ticks at 05:00 UTC (00:00 EST); its deadline is 15:00 UTC (10:00 EST).
    context = _context("scheduled", "2025-11-28T05:00:00Z", "2025-11-28T05:00:01Z", "2025-11-28T15:00:00Z")
    sla.alert_missed_deadline(context)
    [(alert_context, severity, message)] = raised
    assert severity == "critical"
    assert alert_context["game_date"] == "2025-11-28"
    assert "scheduled__2025-11-28T05:00:00Z for 2025-11-28 has not finished by its deadline" in message


@pytest.mark.parametrize(
    "context",
    [
        # a backfill of a past date, and a past date triggered by hand: created after their deadlines
        _context("backfill", "2025-03-04T05:00:00Z", "2026-11-30T02:00:00Z", "2025-03-04T15:00:00Z"),
        _context(
            "manual", "2025-03-04T12:00:00Z", "2026-11-30T02:00:00Z", "2025-03-04T22:00:00Z", game_date="2025-03-04"
        ),
    ],
)
def test_a_run_that_could_never_meet_its_deadline_does_not_alert(raised, context) -> None:  # type: ignore[no-untyped-def]
    assert sla.alert_missed_deadline(context) == "created after its deadline: no alert"
    assert raised == []


def test_a_manual_run_for_today_alerts_like_the_overnight_one(raised) -> None:  # type: ignore[no-untyped-def]
    context = _context(
        "manual", "2025-11-28T13:00:00Z", "2025-11-28T13:00:00Z", "2025-11-28T23:00:00Z", game_date="2025-11-28"
    )
    sla.alert_missed_deadline(context)
    assert [severity for _, severity, _ in raised] == ["critical"]
