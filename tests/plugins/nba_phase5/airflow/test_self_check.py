"""The self-check's probe and verdict, offline: a probe no prediction run can mistake for its own event."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from nba_phase5 import config
from nba_phase5.airflow import self_check
from nba_phase5.core.contract import Phase4CompletionEvent

DAGS = Path(__file__).resolve().parents[4] / "dags"


def test_the_probe_is_a_ready_feature_store_event_the_inbox_gives_back() -> None:
    event = self_check.probe_event()
    # inbox.find parses each row again with today = the awaited date and keeps only these.
    again = Phase4CompletionEvent.from_json(event.to_json(), today=self_check.PROBE_DATE)
    assert again == event
    assert again.is_feature_store
    assert again.is_ready
    assert again.game_date == self_check.PROBE_DATE


def test_no_prediction_run_ever_waits_for_the_probes_date() -> None:
    # The daily DAG's start_date is the earliest date the schedule or a backfill can reach.
    source = (DAGS / "nba_phase5_predictions.py").read_text()
    year, month, day = map(int, re.search(r"start_date=pendulum\.datetime\((\d+), (\d+), (\d+)", source).groups())
    assert self_check.PROBE_DATE.isoformat() < f"{year:04d}-{month:02d}-{day:02d}"


def test_the_trigger_is_never_handed_a_subscription_that_carries_phase4_messages() -> None:
    assert self_check.UNUSED_SUBSCRIPTION != config.PHASE5_TRIGGER_SUBSCRIPTION
    from nba_phase5_local.provisioning import LOCAL_WORKER_SUBSCRIPTIONS, TRIGGER_SUBSCRIPTIONS

    assert self_check.UNUSED_SUBSCRIPTION not in {*TRIGGER_SUBSCRIPTIONS, *LOCAL_WORKER_SUBSCRIPTIONS}


def _event(**changes: Any) -> dict[str, Any]:
    base = {"status": "event", "message_id": self_check.PROBE_MESSAGE_ID, "pulls": 0, "rejected": [], "others": {}}
    return {**base, **changes}


def test_the_verdict_passes_only_on_the_probe_found_without_a_pull() -> None:
    assert self_check.event_verdict(_event()) == {
        "trigger": "Phase4EventTrigger",
        "message_id": self_check.PROBE_MESSAGE_ID,
        "pulls": 0,
    }
    for wrong in (
        _event(message_id="1234567890"),  # a real message: the check would have taken it
        _event(pulls=1),  # it pulled
        {"status": "unavailable", "reason": "NotFound: 404 Subscription does not exist", "pulls": 0},
        {"status": "deadline", "deadline": "2000-01-01T00:02:00+00:00", "pulls": 1},
    ):
        with pytest.raises(self_check.SelfCheckError, match="did not find the self-check's probe"):
            self_check.event_verdict(wrong)


def test_recording_the_probe_is_one_inbox_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, list[Any], Any]] = []
    monkeypatch.setattr(
        "nba_phase5.bigquery.inbox.record",
        lambda hook, entries, *, pulled_for: calls.append((hook, entries, pulled_for)),
    )
    self_check.record_probe("hook")
    [(hook, [entry], pulled_for)] = calls
    assert (hook, entry.message_id, pulled_for) == ("hook", self_check.PROBE_MESSAGE_ID, self_check.PROBE_DATE)
    assert entry.event == self_check.probe_event()
