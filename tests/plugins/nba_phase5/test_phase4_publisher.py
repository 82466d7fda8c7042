"""Phase 4's side of the contract: the event it publishes is what the trigger subscription delivers."""

from __future__ import annotations

import json
from datetime import date

import pytest

from nba_phase5 import config
from nba_phase5.clients import bigquery_client, publisher_client
from nba_phase5.contract import InvalidEventError, Phase4CompletionEvent
from nba_phase5.phase4_publisher import build_event, count_production_ready, publish_completion_event
from nba_phase5.seeding import seed_day

pytestmark = pytest.mark.integration
DAY = date(2025, 11, 20)


def test_published_event_validates_and_carries_bigquery_counts(stack, drain) -> None:  # type: ignore[no-untyped-def]
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    client = bigquery_client(stack.project)
    seed_day(client, DAY, players=120, ready_pct=75)
    ready, total = count_production_ready(client, DAY)
    assert (ready, total) == (90, 120)

    message_id = publish_completion_event(publisher_client(), stack.project, build_event(DAY, ready, total))
    messages = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    assert [m.message_id for m in messages] == [message_id]
    event = Phase4CompletionEvent.from_json(messages[0].data)
    assert (event.game_date, event.players_ready, event.players_total) == (DAY, 90, 120)
    assert event.processor == config.PHASE4_PROCESSOR
    assert dict(messages[0].attributes) == {"event_type": "phase4_complete", "game_date": "2025-11-20"}


def test_impossible_counts_never_reach_pubsub(stack, drain) -> None:  # type: ignore[no-untyped-def]
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    with pytest.raises(InvalidEventError):
        build_event(DAY, 500, 20)
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []
    assert json.loads(build_event(DAY, 1, 2).to_json())["event_type"] == "phase4_complete"
