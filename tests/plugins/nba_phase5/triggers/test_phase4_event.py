"""How the trigger sorts messages, and that it serializes to its real import path."""

from __future__ import annotations

import importlib
from datetime import date

from nba_phase5.contract import Phase4CompletionEvent
from nba_phase5.triggers.phase4_event import Phase4EventTrigger, classify

DAY = date(2025, 11, 28)
TODAY = date(2025, 11, 28)


def test_classify_sorts_every_kind_of_message() -> None:
    def kind(data: bytes) -> str:
        return classify(data, DAY, today=TODAY)[0]

    assert kind(Phase4CompletionEvent(DAY, 420, 450).to_json()) == "match"
    assert kind(Phase4CompletionEvent(date(2025, 11, 27), 420, 450).to_json()) == "stale"
    assert kind(Phase4CompletionEvent(date(2025, 11, 29), 420, 450).to_json()) == "other"  # recorded for its run
    assert kind(b"{oops") == "invalid"
    assert kind(b'{"event_type":"phase4_complete","game_date":"2099-01-01","players_ready":1,"players_total":2}') == (
        "invalid"
    )
    reason = classify(b'{"event_type":"x"}', DAY, today=TODAY)[1]
    assert isinstance(reason, str)
    assert "missing" in reason


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
