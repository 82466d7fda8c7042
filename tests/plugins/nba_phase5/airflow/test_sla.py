"""The SLA's deadline alerts: which missed deadlines page, at what instant, and what the page says.

Every test takes the alerts the DAG carries (``sla.deadline_alerts()``) and runs each one's callback the way
Airflow does when its deadline passes: the triggerer awaits the callback path with the alert's kwargs and a
context of the run (as JSON, read by the scheduler at the miss) and the deadline (logical date + interval;
``Deadline.handle_miss`` and ``CallbackTrigger.run`` in Airflow 3.3).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nba_phase5 import config
from nba_phase5.airflow import sla
from nba_phase5.core.alert_kinds import AlertKind

# Game date → the scheduled run's logical date (00:00 Eastern on D) and 10:00 Eastern on D, in UTC.
NIGHTS = {
    # An ordinary night: 00:00 EST → 10:00 EST, 10 hours.
    "2025-11-28": ("2025-11-28T05:00:00Z", datetime(2025, 11, 28, 15, tzinfo=UTC)),
    # Daylight saving time ends at 02:00 EDT: 00:00 EDT → 10:00 EST, 11 hours.
    "2026-11-01": ("2026-11-01T04:00:00Z", datetime(2026, 11, 1, 15, tzinfo=UTC)),
    # Daylight saving time begins at 02:00 EST: 00:00 EST → 10:00 EDT, 9 hours.
    "2026-03-08": ("2026-03-08T05:00:00Z", datetime(2026, 3, 8, 14, tzinfo=UTC)),
}
PAGED = "critical alert raised"


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _dag_run(run_type: str, logical: str, queued: str, state: str = "running", **conf: str) -> dict[str, Any]:
    """The ``dag_run`` of the callback's context: Airflow's ``DAGRunResponse`` as JSON."""
    return {
        "dag_id": config.DAG_ID,
        "dag_run_id": f"{run_type}__{logical}",
        "run_type": run_type,
        "state": state,
        "logical_date": logical,
        "queued_at": queued,
        "run_after": logical,
        "conf": conf,
    }


@pytest.fixture
def raised(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str, str]]:
    calls: list[tuple[Any, Any, str]] = []
    monkeypatch.setattr(sla, "send_alert", lambda context, kind, message: calls.append((context, kind, message)))
    return calls


@pytest.fixture
def dag_alerts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The DAG's ``deadline`` as deployed (tests/conftest.py turns it off for ``dag.test()``)."""
    monkeypatch.delenv(config.DEADLINE_ALERTS_ENV, raising=False)
    alerts = sla.deadline_alerts()
    return alerts if isinstance(alerts, list) else [alerts]


def _miss_every_deadline(alerts: list[Any], dag_run: dict[str, Any]) -> dict[datetime, str]:
    """Each alert's callback, run as Airflow runs it once its deadline has passed: deadline → result."""
    results = {}
    for alert in alerts:
        assert alert.callback.path == "nba_phase5.airflow.sla.deadline_missed"
        deadline = _instant(dag_run["logical_date"]) + alert.interval
        context = {"dag_run": dag_run, "deadline": {"id": alert.name, "deadline_time": deadline}}
        results[deadline] = asyncio.run(sla.deadline_missed(**alert.callback.kwargs, context=context))
    return results


def _paged_at(results: dict[datetime, str]) -> list[datetime]:
    return [deadline for deadline, result in results.items() if result.startswith(PAGED)]


@pytest.mark.parametrize("day", NIGHTS)
def test_the_overnight_run_still_going_pages_once_at_10_am_eastern_wall_clock(raised, dag_alerts, day) -> None:
    # Defect 3: on 2026-11-01 logical date + 10 h was 09:00 EST, and on 2026-03-08 11:00 EDT.
    logical, ten_am = NIGHTS[day]
    results = _miss_every_deadline(dag_alerts, _dag_run("scheduled", logical, logical))
    assert _paged_at(results) == [ten_am]  # the deadlines before 10:00 ET (and after) raise nothing
    [(alert_context, kind, message)] = raised
    assert kind is AlertKind.deadline_missed
    assert alert_context["game_date"] == day
    assert f"scheduled__{logical} for {day} has not finished by its deadline {day} 10:00 E" in message


@pytest.mark.parametrize("day", NIGHTS)
def test_a_scheduled_run_queued_after_10_am_eastern_still_pages(raised, dag_alerts, day) -> None:
    # Defect 1: the scheduler was down over midnight and queued the run at 11:30 ET; the SLA was missed
    # all the same, so the deadline that passed before the run existed pages the moment it fires.
    logical, ten_am = NIGHTS[day]
    queued = (ten_am + timedelta(minutes=90)).isoformat()
    results = _miss_every_deadline(dag_alerts, _dag_run("scheduled", logical, queued))
    assert _paged_at(results) == [ten_am]
    assert [kind for _, kind, _ in raised] == [AlertKind.deadline_missed]


@pytest.mark.parametrize("day", NIGHTS)
def test_a_run_that_already_failed_and_alerted_is_not_paged_again(raised, dag_alerts, day) -> None:
    # Defect 2: the run failed at 03:00 (its failure alerted); Airflow keeps a failed run's deadline.
    logical, ten_am = NIGHTS[day]
    results = _miss_every_deadline(dag_alerts, _dag_run("scheduled", logical, logical, state="failed"))
    assert raised == []
    assert "already failed" in results[ten_am]


@pytest.mark.parametrize(
    "dag_run",
    [
        # a backfill of a past date (queued long after), on each kind of night
        _dag_run("backfill", "2025-03-04T05:00:00Z", "2026-11-30T02:00:00Z"),
        _dag_run("backfill", NIGHTS["2026-11-01"][0], "2026-12-01T02:00:00Z"),
        _dag_run("backfill", NIGHTS["2026-03-08"][0], "2026-03-08T05:00:05Z"),
        # a past date triggered by hand with that date's logical date
        _dag_run("manual", "2025-03-04T12:00:00Z", "2026-11-30T02:00:00Z", game_date="2025-03-04"),
    ],
)
def test_a_backfill_or_a_past_date_triggered_by_hand_does_not_page(raised, dag_alerts, dag_run) -> None:
    results = _miss_every_deadline(dag_alerts, dag_run)
    assert raised == []
    assert {"a backfill: no alert", "created after its deadline: no alert"} & set(results.values())


def test_a_manual_run_for_today_pages_10_hours_after_it_was_triggered(raised, dag_alerts) -> None:
    dag_run = _dag_run("manual", "2025-11-28T13:00:00Z", "2025-11-28T13:00:00Z", game_date="2025-11-28")
    results = _miss_every_deadline(dag_alerts, dag_run)
    assert _paged_at(results) == [datetime(2025, 11, 28, 23, tzinfo=UTC)]
    assert [kind for _, kind, _ in raised] == [AlertKind.deadline_missed]


def test_the_deadline_is_10_hours_of_eastern_wall_clock_from_the_logical_date() -> None:
    for logical, ten_am in NIGHTS.values():
        assert sla.due_at(_instant(logical)) == ten_am
    # A manual run in autumn's repeated hour keeps its own offset: 01:30 EST + 1 min is 01:31 EST.
    start = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    assert sla.due_at(start, timedelta(minutes=1)) - start == timedelta(minutes=1)


def test_the_alerts_survive_the_dag_serializer(dag_alerts) -> None:
    """What the DAG processor stores (DagSerialization.to_dict) and the scheduler reads back."""
    import pendulum
    from airflow.sdk import DAG
    from airflow.serialization.decoders import decode_deadline_alert
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("sla_serialization", schedule=None, start_date=pendulum.datetime(2025, 1, 1), deadline=dag_alerts) as dag:
        pass
    stored = DagSerialization.to_dict(dag)["dag"]["deadline"]
    decoded = [decode_deadline_alert(alert) for alert in stored]
    assert [(a.interval, a.callback.kwargs) for a in decoded] == [(a.interval, a.callback.kwargs) for a in dag_alerts]
    assert {type(a.reference).__name__ for a in decoded} == {"DagRunLogicalDateDeadline"}
    assert sorted(a.interval for a in decoded) == [timedelta(hours=9), timedelta(hours=10), timedelta(hours=11)]
