"""Phase 4's side of the contract: the real publisher's event shape, with no attributes, as delivered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from nba_phase5 import config
from nba_phase5.clients import bigquery_client, publisher_client
from nba_phase5.contract import InvalidEventError, Phase4CompletionEvent
from nba_phase5.phase4_publisher import (
    build_event,
    count_production_ready,
    latest_run_id,
    publish_completion_event,
    run_history_row,
)
from nba_phase5.seeding import seed_day

DAY = date(2025, 11, 20)
PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")
# What the real Phase 4 publisher sends (PLATFORM.md §1), and nothing else.
REAL_FIELDS = {
    "event_type",
    "processor",
    "game_date",
    "players_processed",
    "players_ready",
    "players_failed",
    "timestamp",
    "run_id",
}


def test_build_event_is_the_real_publishers_shape() -> None:
    at = datetime(2025, 11, 20, 7, 17, tzinfo=UTC)
    body = json.loads(build_event(DAY, 418, 450, players_failed=2, run_id="seed-20251120", timestamp=at).to_json())
    assert body == {
        "event_type": "phase4_complete",
        "processor": "ml_feature_store_v2",
        "game_date": "2025-11-20",
        "players_processed": 450,
        "players_ready": 418,
        "players_failed": 2,
        "timestamp": "2025-11-20T07:17:00+00:00",
        "run_id": "seed-20251120",
    }
    event = Phase4CompletionEvent.from_json(json.dumps(body))
    assert (event.total_players, event.players_total) == (450, None)  # total = players_processed
    assert build_event(DAY, 1, 2).timestamp is not None  # defaults to now


def test_run_history_row_is_the_shared_tables_shape() -> None:
    started, done = datetime(2025, 11, 20, 6, 30, tzinfo=UTC), datetime(2025, 11, 20, 7, 17, tzinfo=UTC)
    row = run_history_row(
        DAY,
        run_id="r1",
        status="partial",
        started_at=started,
        processed_at=done,
        players_processed=450,
        players_ready=418,
        players_failed=3,
        season_year=2025,
    )
    assert (row["processor_name"], row["phase"], row["duration_seconds"]) == ("ml_feature_store_v2", "phase_4", 2820.0)
    assert (row["output_dataset"], row["output_table"]) == ("nba_predictions", "ml_feature_store_v2")
    assert row["summary"] == {"players_processed": 450, "players_ready": 418, "players_failed": 3}
    assert "completed_at" not in row


@pytest.mark.integration
def test_published_event_validates_and_carries_bigquery_counts(stack, drain) -> None:  # type: ignore[no-untyped-def]
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    client = bigquery_client(stack.project)
    seed_day(client, DAY, players=120, ready_pct=75)
    ready, total = count_production_ready(client, DAY)
    assert (ready, total) == (90, 120)
    run_id = latest_run_id(client, DAY)
    assert run_id == "seed-20251120"

    event = build_event(DAY, ready, total, run_id=run_id)
    message_id = publish_completion_event(publisher_client(), stack.project, event)
    messages = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    assert [m.message_id for m in messages] == [message_id]
    assert set(json.loads(messages[0].data)) == REAL_FIELDS
    assert dict(messages[0].attributes) == {}  # the real publisher sets none
    received = Phase4CompletionEvent.from_json(messages[0].data)
    assert received == event
    assert (received.players_ready, received.total_players, received.run_id) == (90, 120, "seed-20251120")


@pytest.mark.integration
def test_latest_run_id_is_none_when_phase4_has_not_run(bq) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 11, 19)
    seed_day(bq, day, players=30, phase4_run=False)
    assert latest_run_id(bq, day) is None


@pytest.mark.integration
def test_impossible_counts_never_reach_pubsub(stack, drain) -> None:  # type: ignore[no-untyped-def]
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    with pytest.raises(InvalidEventError):
        build_event(DAY, 500, 20)
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []


@pytest.mark.integration
def test_cli_publishes_the_real_shape_with_phase4s_run_id(stack, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 11, 18)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    seed_day(bigquery_client(stack.project), day, players=80, ready_pct=90)
    done = subprocess.run(
        [sys.executable, "-m", "nba_phase5", "publish-phase4", "--date", day.isoformat()],
        env={**os.environ, "PYTHONPATH": PLUGINS},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [message] = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    body = json.loads(message.data)
    assert set(body) == REAL_FIELDS
    assert (body["players_processed"], body["players_ready"], body["players_failed"]) == (80, 72, 0)
    assert body["run_id"] == "seed-20251118"
    assert dict(message.attributes) == {}
