"""The daily DAG end to end on the emulators, through `dag.test()`: the plan's integration scenarios.

A real prediction worker (the package's, in a thread) answers requests where the scenario needs one.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from helpers import (
    alerts,
    prediction_count,
    ready_players,
    request_bodies,
    run_dag,
    run_history,
    running_worker,
    write_predictions,
)
from nba_phase5 import config
from nba_phase5.clients import publisher_client
from nba_phase5.contract import Phase4CompletionEvent
from nba_phase5.phase4_publisher import build_event, publish_completion_event
from nba_phase5.prediction_requests import request_id
from nba_phase5.seeding import seed_day

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def publish(project: str, day: date, ready: int, total: int) -> None:
    publish_completion_event(publisher_client(), project, build_event(day, ready, total))


def test_event_path_requests_every_ready_player_once_and_rerun_dedups(
    stack,
    bq,
    phase5_dag,
    drain,  # type: ignore[no-untyped-def]
) -> None:
    day = date(2025, 11, 3)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    report = seed_day(bq, day, players=150, ready_pct=90)
    publish(stack.project, day, report.players_ready, report.players_total)
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day, prop_types=["points", "rebounds"])
    assert state == "success", tasks
    assert worker.stats.received == 2 * report.players_ready == 270
    assert prediction_count(bq, day) == 270
    [row] = run_history(bq, day)
    assert (row["status"], row["triggered_by"]) == ("success", "pubsub")
    assert (row["requests_published"], row["players_ready"], row["players_total"]) == (270, 135, 150)
    assert row["completion_pct"] == 100.0
    assert row["event_received_at"] <= row["first_request_at"] <= row["batch_completed_at"]
    assert tasks["skip_already_complete"] == "skipped"

    # Phase 4 publishes again (a retry upstream): the second run finds the batch complete.
    publish(stack.project, day, report.players_ready, report.players_total)
    state, tasks = run_dag(phase5_dag, day, prop_types=["points", "rebounds"])
    assert state == "success"
    assert tasks["fan_out_requests"] == "skipped"
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []
    _first, second = run_history(bq, day)
    assert (second["status"], second["requests_published"], second["triggered_by"]) == ("already_complete", 0, "pubsub")
    assert prediction_count(bq, day) == 270
    assert alerts(bq, day) == []


def test_no_event_takes_the_scheduled_backup_path(stack, bq, phase5_dag, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 11, 4)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    seed_day(bq, day, players=80, ready_pct=90)
    with running_worker(stack.project):
        state, tasks = run_dag(phase5_dag, day, event_wait_seconds=3)
    assert state == "success", tasks
    [row] = run_history(bq, day)
    assert (row["status"], row["triggered_by"], row["requests_published"]) == ("success", "scheduler_backup", 72)
    assert row["event_received_at"] is None


def test_bad_and_other_date_events_neither_break_nor_satisfy_the_run(
    stack,
    bq,
    phase5_dag,
    drain,  # type: ignore[no-untyped-def]
) -> None:
    day = date(2025, 11, 5)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    seed_day(bq, day, players=80, ready_pct=90)
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, config.PHASE4_COMPLETE_TOPIC)
    tomorrow = Phase4CompletionEvent(day + timedelta(days=1), 70, 80).to_json()

    def event(**fields: object) -> bytes:
        base = {"event_type": "phase4_complete", "game_date": day.isoformat(), "players_ready": 70, "players_total": 80}
        return json.dumps({**base, **fields}).encode()

    bad = {
        "invalid JSON": b"{malformed",
        "missing game_date": json.dumps(
            {"event_type": "phase4_complete", "players_ready": 1, "players_total": 2}
        ).encode(),
        "wrong-type game_date": event(game_date=20251105),
        "impossible date": event(game_date="2025-02-30"),
        "far future": event(game_date="2099-11-05"),
        "unknown event_type": event(event_type="phase3_complete"),
        "negative counts": event(players_ready=-1),
        "1 MB body": event(correlation_id="x" * 1_000_000),
        "SQL in a field": event(game_date="2025-11-05' OR '1'='1"),
        "SQL in processor": event(processor="x'; DROP TABLE nba_reference.processor_run_history; --"),
    }
    for body in (*bad.values(), tomorrow):
        publisher.publish(topic, body).result(timeout=30)
    with running_worker(stack.project):
        state, tasks = run_dag(phase5_dag, day, event_wait_seconds=4)
    assert state == "success", tasks
    [row] = run_history(bq, day)  # the run-history table is intact, and the event did not satisfy the sensor
    assert row["triggered_by"] == "scheduler_backup"
    assert row["status"] == "success"
    assert [m.data for m in drain(config.PHASE5_TRIGGER_SUBSCRIPTION)] == [tomorrow]


def test_duplicate_triggers_make_one_batch(stack, bq, phase5_dag, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 11, 6)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    report = seed_day(bq, day, players=100, ready_pct=90)
    for _ in range(3):
        publish(stack.project, day, report.players_ready, report.players_total)
    state, tasks = run_dag(phase5_dag, day, straggler_wait_minutes=0)
    assert state == "success", tasks
    bodies = request_bodies(drain(config.PREDICTION_REQUESTS_SUBSCRIPTION))
    # No worker: each straggler round republishes the same 90 ids, so count distinct requests.
    assert len({b["request_id"] for b in bodies}) == 90
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []  # the duplicates were acked too
    [row] = run_history(bq, day)
    assert row["triggered_by"] == "pubsub"


def test_forty_missing_players_are_the_only_ones_republished(
    stack,
    bq,
    phase5_dag,
    drain,  # type: ignore[no-untyped-def]
) -> None:
    day = date(2025, 11, 7)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=450, ready_pct=93.34)
    ready = ready_players(bq, day)
    write_predictions(bq, day, ready[:380])
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert state == "success", tasks
    assert worker.stats.received == 40
    assert worker.stats.written == 40
    [row] = run_history(bq, day)
    assert (row["status"], row["triggered_by"], row["requests_published"]) == ("success", "manual", 40)
    assert prediction_count(bq, day) == 420


def test_worker_drops_are_filled_by_a_straggler_round(stack, bq, phase5_dag, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 11, 8)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=200, ready_pct=90)
    with running_worker(stack.project, drop_rate=0.1, seed=7) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert state == "success", tasks
    dropped = set(worker.stats.dropped_ids)
    assert dropped
    [row] = run_history(bq, day)
    assert row["status"] == "success"
    assert row["completion_pct"] == 100.0
    assert row["straggler_rounds"] == 1
    assert row["requests_published"] == 180 + len(dropped)
    assert dropped <= {request_id(day, p, "points") for p in ready_players(bq, day)}


def test_off_day_ends_cleanly_without_alert(stack, bq, phase5_dag, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 11, 9)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, games=False)
    state, tasks = run_dag(phase5_dag, day)
    assert state == "success"
    assert tasks["wait_for_phase4_event"] == "skipped"
    assert tasks["fan_out_requests"] == "skipped"
    assert tasks["record_batch_run"] == "success"
    [row] = run_history(bq, day)
    assert row["status"] == "no_games"
    assert alerts(bq, day) == []
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []


@pytest.mark.parametrize(
    ("day", "seed"),
    [
        (date(2025, 11, 10), {"players": 100, "ready_pct": 40}),  # 40 ready: under 50 players
        (date(2025, 11, 11), {"players": 450, "ready_pct": 60}),  # 270 ready, but 60 % < 80 %
        (date(2025, 11, 12), {"players": 450, "ready_pct": 93, "phase4_run": False}),  # no Phase 4 run row
    ],
    ids=["40-ready", "60-percent", "no-run-row"],
)
def test_phase4_not_ready_fails_with_one_critical_alert(stack, bq, phase5_dag, drain, day, seed) -> None:  # type: ignore[no-untyped-def]
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, **seed)
    # A bounded wait (here a few seconds of polling), then the gate.
    state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, phase4_wait_minutes=0.05)
    assert state == "failed"
    assert tasks["phase4_readiness.check_phase4_ready"] == "failed"
    assert tasks["fan_out_requests"] == "upstream_failed"
    [alert] = alerts(bq, day)
    assert alert["severity"] == "critical"
    assert "not ready" in alert["message"]
    [row] = run_history(bq, day)
    assert (row["status"], row["requests_published"]) == ("failed", 0)
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []
