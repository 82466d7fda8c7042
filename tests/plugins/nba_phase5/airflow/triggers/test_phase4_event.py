"""How the trigger sorts messages, what its final events carry, and that it serializes to its real import path."""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.pubsub_v1.types import PubsubMessage, ReceivedMessage

from nba_phase5.airflow.triggers.phase4_event import MAX_OTHER_KEYS, Phase4EventTrigger, classify, count_other
from nba_phase5.bigquery import inbox
from nba_phase5.core.contract import Phase4CompletionEvent
from nba_phase5_local.phase4_publisher import build_envelope

DAY = date(2025, 11, 28)
TODAY = date(2025, 11, 28)


def test_classify_sorts_every_kind_of_message() -> None:
    def kind(data: bytes) -> str:
        return classify(data, DAY, today=TODAY)[0]

    assert kind(Phase4CompletionEvent(DAY, 420, 450).to_json()) == "match"
    assert kind(Phase4CompletionEvent(date(2025, 11, 27), 420, 450).to_json()) == "stale"
    assert kind(Phase4CompletionEvent(date(2025, 11, 29), 420, 450).to_json()) == "other"  # recorded for its run
    assert kind(build_envelope(DAY, record_count=450).to_json()) == "match"
    assert kind(build_envelope(DAY, record_count=450, processor="PlayerDailyCacheProcessor").to_json()) == "ignored"
    assert kind(build_envelope(DAY, record_count=0, status="failed").to_json()) == "ignored"
    assert kind(b"{oops") == "invalid"
    assert kind(b'{"event_type":"phase4_complete","game_date":"2099-01-01","players_ready":1,"players_total":2}') == (
        "invalid"
    )
    reason = classify(b'{"event_type":"x"}', DAY, today=TODAY)[1]
    assert isinstance(reason, str)
    assert "missing" in reason


def test_the_others_count_is_bounded() -> None:
    others: dict[str, int] = {}
    senders = [f"Processor{n}" for n in range(15)]
    for name in senders:
        event = build_envelope(DAY, record_count=1, processor="PlayerDailyCacheProcessor")
        count_other(others, replace(event, processor_name=name))
    assert len(others) == MAX_OTHER_KEYS
    assert sum(others.values()) == 15
    assert others["(more)"] == 15 - (MAX_OTHER_KEYS - 1)


def test_serialize_names_the_real_class_and_round_trips() -> None:
    trigger = Phase4EventTrigger(
        project_id="p",
        subscription="s",
        game_date="2025-11-28",
        deadline="2025-11-28T06:00:00-05:00",
        poke_interval=2.0,
    )
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)


class FakePubSub:
    """Hands out the queued pulls once each, then nothing; records acks. ``fail`` raises on every pull."""

    def __init__(self, *pulls: list[ReceivedMessage], fail: Exception | None = None) -> None:
        self.pulls, self.acked, self.fail = list(pulls), [], fail

    async def pull(self, **_: Any) -> list[ReceivedMessage]:
        if self.fail is not None:
            raise self.fail
        return self.pulls.pop(0) if self.pulls else []

    async def acknowledge(self, *, ack_ids: list[str], **_: Any) -> None:
        self.acked += ack_ids


def _received(*events: Phase4CompletionEvent, start: int = 1) -> list[ReceivedMessage]:
    """Pulled messages as the Pub/Sub client returns them (numbered from ``start``)."""
    return [
        ReceivedMessage(ack_id=f"ack-{n}", message=PubsubMessage(data=e.to_json(), message_id=str(n)))
        for n, e in enumerate(events, start=start)
    ]


def _run(
    monkeypatch: pytest.MonkeyPatch, pubsub: FakePubSub, deadline_in: float
) -> tuple[dict[str, Any], list[inbox.InboxEntry]]:
    """Drive the real trigger loop against a fake subscription and an in-memory inbox."""
    recorded: list[inbox.InboxEntry] = []
    monkeypatch.setattr(inbox, "record", lambda _hook, entries, pulled_for: recorded.extend(entries))
    monkeypatch.setattr(inbox, "find", lambda _hook, day: next((e for e in recorded if e.event.game_date == day), None))
    trigger = Phase4EventTrigger(
        project_id="p",
        subscription="s",
        game_date=DAY.isoformat(),
        deadline=(datetime.now(UTC) + timedelta(seconds=deadline_in)).isoformat(),
        poke_interval=0.01,
    )
    trigger.__dict__.update(hook=pubsub, bigquery_hook=object())  # the cached properties, faked

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    payload = asyncio.run(first())
    json.dumps(payload)  # a trigger event must serialise
    return payload, recorded


def test_the_event_carries_the_other_processors_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    others = [
        build_envelope(DAY, record_count=300, processor="PlayerDailyCacheProcessor"),
        build_envelope(DAY, record_count=30, processor="TeamDefenseZoneAnalysisProcessor"),
        build_envelope(DAY, record_count=0, status="no_data"),
    ]
    ours = build_envelope(DAY, record_count=450, correlation_id="abc12345")
    pubsub = FakePubSub(_received(*others), _received(ours, start=4))
    payload, recorded = _run(monkeypatch, pubsub, deadline_in=30)
    assert payload["status"] == "event"
    assert payload["others"] == {
        "PlayerDailyCacheProcessor": 1,
        "TeamDefenseZoneAnalysisProcessor": 1,
        "MLFeatureStoreProcessor:no_data": 1,
    }
    assert payload["rejected"] == []
    assert (payload["event"]["correlation_id"], payload["event"]["execution_id"]) == ("abc12345", ours.execution_id)
    assert [e.event for e in recorded] == [ours]  # the others were never written to the inbox
    assert pubsub.acked == ["ack-1", "ack-2", "ack-3", "ack-4"]  # the others at once, ours once recorded


def test_the_deadline_and_unavailable_events_carry_others_too(monkeypatch: pytest.MonkeyPatch) -> None:
    other = build_envelope(DAY, record_count=300, processor="PlayerCompositeFactorsProcessor")
    payload, recorded = _run(monkeypatch, FakePubSub(_received(other)), deadline_in=0.3)
    assert (payload["status"], payload["others"], recorded) == ("deadline", {"PlayerCompositeFactorsProcessor": 1}, [])
    from google.api_core.exceptions import NotFound

    payload, _ = _run(monkeypatch, FakePubSub(fail=NotFound("no subscription")), deadline_in=30)
    assert (payload["status"], payload["others"]) == ("unavailable", {})


class FakeBigQuery:
    """Answers the inbox's query with ``rows``; keeps the SQL and parameters it was asked."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows, self.asked = rows, []

    def query_rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.asked.append((sql, params))
        return self.rows


def test_the_inbox_returns_the_first_feature_store_ready_event_of_the_date() -> None:
    at = datetime(2025, 11, 28, 9, tzinfo=UTC)
    ours = build_envelope(DAY, record_count=450)
    rows = [
        {"message_id": "1", "received_at": at, "event": "{not json"},
        {"message_id": "2", "received_at": at, "event": build_envelope(DAY, record_count=0, status="failed").to_json()},
        {
            "message_id": "3",
            "received_at": at,
            "event": build_envelope(DAY, record_count=1, processor="PlayerDailyCacheProcessor").to_json(),
        },
        {"message_id": "4", "received_at": at, "event": ours.to_json().decode()},
        {"message_id": "5", "received_at": at, "event": build_envelope(DAY, record_count=9).to_json()},
    ]
    hook = FakeBigQuery(rows)
    found = inbox.find(hook, DAY)
    assert found is not None
    assert (found.message_id, found.event) == ("4", ours)
    [(sql, params)] = hook.asked
    assert "WHERE game_date = @game_date" in sql  # the partition filter; the date travels as a parameter
    assert params == {"game_date": {"type": "DATE", "value": DAY}}
    assert inbox.find(FakeBigQuery(rows[:3]), DAY) is None


def test_a_ready_event_of_another_date_published_soon_after_it_is_noted_as_possibly_late() -> None:
    from datetime import time

    from nba_phase5.airflow.triggers.phase4_messages import MAX_REPORTED, note_late, rerun_of_its_day

    def envelope(day: date, published: datetime) -> Phase4CompletionEvent:
        return Phase4CompletionEvent.from_json(build_envelope(day, record_count=460, timestamp=published).to_json())

    day = date(2025, 11, 27)
    evening = datetime.combine(day, time(23, 30), tzinfo=UTC)  # 18:30 ET on the day: a re-run of it
    assert rerun_of_its_day(envelope(day, evening))
    assert rerun_of_its_day(envelope(day, evening + timedelta(days=1)))
    assert not rerun_of_its_day(envelope(day, evening + timedelta(days=30)))  # a backfill of an old date
    late: list[dict[str, Any]] = []
    for n in range(MAX_REPORTED + 3):
        note_late(late, str(n), envelope(day, evening))
    note_late([], "x", envelope(day, evening + timedelta(days=30)))
    assert len(late) == MAX_REPORTED  # bounded: it travels in the trigger's event
    assert late[0] == {"message_id": "0", "game_date": "2025-11-27", "players": 460, "at": evening.isoformat()}
