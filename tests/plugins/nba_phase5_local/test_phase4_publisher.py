"""Phase 4's side of the contract: the platform's envelope (and the plan's shapes), with no attributes, as delivered."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from nba_phase5 import config
from nba_phase5.bigquery.clients import bigquery_client, publisher_client
from nba_phase5.core.contract import InvalidEventError, Phase4CompletionEvent
from nba_phase5_local.phase4_publisher import (
    PHASE4_PROCESSORS,
    build_envelope,
    build_event,
    build_message,
    count_production_ready,
    latest_run_id,
    phase4_run_id,
    publish_completion_event,
    run_history_row,
)
from nba_phase5_local.seeding import seed_day

DAY = date(2025, 11, 20)
ROOT = Path(__file__).resolve().parents[3]
PLUGINS = str(ROOT / "plugins")
# The envelope's fields on the live path (docs/platform.md §1.2): parent_processor, trigger_message_id,
# error_message and error_type are None there and so absent.
ENVELOPE_FIELDS = {
    "processor_name",
    "phase",
    "execution_id",
    "correlation_id",
    "game_date",
    "output_table",
    "output_dataset",
    "status",
    "record_count",
    "records_failed",
    "timestamp",
    "duration_seconds",
    "trigger_source",
    "metadata",
}
# The planning guide's shape (§1.5).
PLAN_FIELDS = {
    "event_type",
    "processor",
    "game_date",
    "players_processed",
    "players_ready",
    "players_failed",
    "timestamp",
    "run_id",
}
RUN_ID = re.compile(r"MLFeatureStoreProcessor_\d{8}_\d{6}_[0-9a-f]{8}")


def test_build_envelope_is_the_platforms_shape() -> None:
    at = datetime(2025, 11, 20, 11, 17, 3, 123456, tzinfo=UTC)
    event = build_envelope(DAY, record_count=450, duration_seconds=2820.5, timestamp=at)
    body = json.loads(event.to_json())
    execution_id = body.pop("execution_id")
    assert re.fullmatch(r"[0-9a-f]{8}", execution_id)
    assert body == {
        "processor_name": "MLFeatureStoreProcessor",
        "phase": "phase_4_precompute",
        "correlation_id": execution_id,  # no trigger's correlation id: the run's own id, as Phase 4 does
        "game_date": "2025-11-20",
        "output_table": "ml_feature_store_v2",
        "output_dataset": "nba_predictions",
        "status": "success",
        "record_count": 450,
        "records_failed": 0,
        "timestamp": "2025-11-20T11:17:03.123456+00:00",
        "duration_seconds": 2820.5,
        "trigger_source": "manual",
        "metadata": {"total_runtime": 2820.5, "rows_processed": 450, "rows_skipped": 0},
    }
    assert (event.is_feature_store, event.is_ready, event.total_players) == (True, True, 450)
    assert build_envelope(DAY, record_count=1, correlation_id="abc-123").correlation_id == "abc-123"
    assert build_envelope(DAY, record_count=1).execution_id != build_envelope(DAY, record_count=1).execution_id
    stamp = build_envelope(DAY, record_count=1).timestamp
    assert stamp is not None
    assert stamp.tzinfo is not None


@pytest.mark.parametrize("processor", list(PHASE4_PROCESSORS))
def test_every_phase4_processor_can_be_built(processor: str) -> None:
    event = build_envelope(DAY, record_count=30, processor=processor)
    assert (event.processor_name, event.output_table) == (processor, PHASE4_PROCESSORS[processor][0])
    assert event.is_feature_store == (processor == "MLFeatureStoreProcessor")
    with pytest.raises(InvalidEventError, match="processor must be one of"):
        build_envelope(DAY, record_count=1, processor="NoSuchProcessor")


def test_build_event_is_the_plans_shape() -> None:
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


def test_build_message_builds_each_shape_and_refuses_impossible_ones() -> None:
    envelope = build_message(DAY, shape="envelope", players_ready=90, players_total=100, run_id="c1")
    assert (envelope.shape, envelope.record_count, envelope.correlation_id, envelope.players_ready) == (
        "envelope",
        100,
        "c1",
        None,
    )
    plan = build_message(DAY, shape="plan", players_ready=90, players_total=100, run_id="r1")
    assert (plan.shape, plan.players_processed, plan.run_id, plan.processor) == (
        "plan",
        100,
        "r1",
        "ml_feature_store_v2",
    )
    script = build_message(DAY, shape="script", players_ready=90, players_total=100)
    assert json.loads(script.to_json()) == {
        "event_type": "phase4_complete",
        "game_date": "2025-11-20",
        "players_ready": 90,
    }
    cache = build_message(DAY, shape="plan", players_ready=1, players_total=2, processor="PlayerDailyCacheProcessor")
    assert (cache.processor, cache.is_feature_store) == ("player_daily_cache", False)
    failed = build_message(DAY, shape="envelope", players_ready=0, players_total=0, status="failed")
    assert (failed.status, failed.is_ready) == ("failed", False)
    for kwargs, reason in [
        ({"shape": "envelope", "players_ready": 9, "players_total": 3}, "exceeds"),
        ({"shape": "xml", "players_ready": 1, "players_total": 3}, "shape must be one of"),
        ({"shape": "plan", "players_ready": 1, "players_total": 3, "status": "failed"}, "no status"),
        ({"shape": "envelope", "players_ready": 1, "players_total": 3, "status": "done"}, "status must be one of"),
    ]:
        with pytest.raises(InvalidEventError, match=reason):
            build_message(DAY, **kwargs)


def test_phase4_run_ids_are_in_the_platforms_format() -> None:
    started = datetime(2025, 11, 20, 6, 30, 5, tzinfo=UTC)
    assert RUN_ID.fullmatch(phase4_run_id(started))
    assert phase4_run_id(started).startswith("MLFeatureStoreProcessor_20251120_063005_")
    assert phase4_run_id(started, seed="s") == phase4_run_id(started, seed="s")  # reproducible when seeded
    assert phase4_run_id(started) != phase4_run_id(started)


def test_run_history_row_is_the_shared_tables_shape() -> None:
    started, done = datetime(2025, 11, 20, 6, 30, tzinfo=UTC), datetime(2025, 11, 20, 7, 17, tzinfo=UTC)
    row = run_history_row(
        DAY,
        run_id=phase4_run_id(started),
        status="success",
        started_at=started,
        processed_at=done,
        players_processed=450,
        players_ready=418,
        players_failed=3,
        season_year=2025,
    )
    assert (row["processor_name"], row["phase"], row["duration_seconds"]) == (
        "MLFeatureStoreProcessor",
        "phase_4_precompute",
        2820.0,
    )
    assert RUN_ID.fullmatch(row["run_id"])
    assert (row["output_dataset"], row["output_table"]) == ("nba_predictions", "ml_feature_store_v2")
    assert row["summary"] == {"players_processed": 450, "players_ready": 418, "players_failed": 3}
    schema = json.loads((ROOT / "include/schemas/nba_reference.processor_run_history.json").read_text())
    assert set(row) <= {column["name"] for column in schema["schema"]}  # never a column the table lacks


@pytest.mark.integration
def test_published_envelope_validates_and_carries_bigquery_counts(stack, drain) -> None:
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    client = bigquery_client(stack.project)
    seed_day(client, DAY, players=120, ready_pct=75)
    ready, total = count_production_ready(client, DAY)
    assert (ready, total) == (90, 120)
    run_id = latest_run_id(client, DAY)
    assert run_id is not None
    assert RUN_ID.fullmatch(run_id)

    event = build_envelope(DAY, record_count=total)
    message_id = publish_completion_event(publisher_client(), stack.project, event)
    messages = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    assert [m.message_id for m in messages] == [message_id]
    assert set(json.loads(messages[0].data)) == ENVELOPE_FIELDS
    assert dict(messages[0].attributes) == {}  # the real publisher sets none
    received = Phase4CompletionEvent.from_json(messages[0].data)
    assert received == event
    assert (received.record_count, received.correlation_id) == (120, event.execution_id)


@pytest.mark.integration
def test_latest_run_id_is_none_when_phase4_has_not_run(bq) -> None:
    day = date(2025, 11, 19)
    seed_day(bq, day, players=30, phase4_run=False)
    assert latest_run_id(bq, day) is None


@pytest.mark.integration
def test_impossible_counts_never_reach_pubsub(stack, drain) -> None:
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    with pytest.raises(InvalidEventError):
        build_event(DAY, 500, 20)
    with pytest.raises(InvalidEventError):
        build_envelope(DAY, record_count=-1)
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nba_phase5_local", "publish-phase4", *args],
        env={**os.environ, "PYTHONPATH": PLUGINS},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_cli_publishes_the_envelope_by_default_and_the_plans_shape_on_request(stack, drain) -> None:
    day = date(2025, 11, 18)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    seed_day(bigquery_client(stack.project), day, players=80, ready_pct=90)
    done = _cli("--date", day.isoformat())
    assert done.returncode == 0, done.stderr
    [message] = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    body = json.loads(message.data)
    assert set(body) == ENVELOPE_FIELDS
    assert (body["processor_name"], body["record_count"], body["status"]) == ("MLFeatureStoreProcessor", 80, "success")
    assert body["duration_seconds"] == 2820.0  # the seeded run's runtime (47 minutes)
    assert dict(message.attributes) == {}

    done = _cli("--date", day.isoformat(), "--shape", "plan")
    assert done.returncode == 0, done.stderr
    [message] = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    body = json.loads(message.data)
    assert set(body) == PLAN_FIELDS
    assert (body["players_processed"], body["players_ready"], body["players_failed"]) == (80, 72, 0)
    assert body["run_id"] == latest_run_id(bigquery_client(stack.project), day)

    done = _cli("--date", day.isoformat(), "--processor", "PlayerDailyCacheProcessor", "--correlation-id", "demo-1")
    assert done.returncode == 0, done.stderr
    [message] = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    event = Phase4CompletionEvent.from_json(message.data)
    assert (event.processor_name, event.output_table, event.correlation_id) == (
        "PlayerDailyCacheProcessor",
        "player_daily_cache",
        "demo-1",
    )
    assert not event.is_feature_store
