"""The local prediction worker against the emulators: idempotent, acks after writing, faults on demand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from helpers import prediction_count, running_worker
from nba_phase5 import config
from nba_phase5.clients import publisher_client
from nba_phase5.prediction_requests import PredictionRequest, request_id
from nba_phase5.seeding import build_day, seed_day
from nba_phase5.worker import PredictionWorker, WorkerOptions, predict

PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")


def test_model_is_the_documented_weighted_average() -> None:
    features = {
        "points_avg_last_5": 30.0,
        "points_avg_last_10": 20.0,
        "points_avg_season": 10.0,
        "rebounds_avg_last_10": 8.0,
        "assists_avg_last_10": 5.0,
        "opponent_def_rating": 112.0,
        "feature_quality_score": 100.0,
    }
    assert predict("points", features)[0] == 23.0  # 0.5·30 + 0.3·20 + 0.2·10
    assert predict("pra", features)[0] == 36.0
    assert predict("threes", features)[0] == 2.76
    value, confidence = predict("points", {**features, "opponent_def_rating": 120.0})
    assert value > 23.0
    assert 0.05 <= confidence <= 0.95
    with pytest.raises(ValueError, match="unknown prop"):
        predict("dunks", features)


def test_drops_are_reproducible_and_never_twice() -> None:
    ids = [request_id("2025-11-28", f"p{i}", "points") for i in range(1000)]
    first = PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=3))
    again = PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=3))
    dropped = [i for i in ids if first.should_drop(i)]
    assert dropped == [i for i in ids if again.should_drop(i)]
    assert 60 < len(dropped) < 140
    assert not any(first.should_drop(i) for i in dropped)  # republished: goes through
    assert [
        i for i in ids if PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=4)).should_drop(i)
    ] != dropped


def _seeded_players(bq, drain, day: date, players: int) -> list[str]:  # type: ignore[no-untyped-def]
    """A fresh day with every player production-ready, and an empty request subscription."""
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=players, ready_pct=100)
    return [row["player_lookup"] for row in build_day(day, players=players, ready_pct=100)[1]]


def _publish_requests(project: str, day: date, players: list[str], times: int = 1) -> list[str]:
    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PREDICTION_REQUESTS_TOPIC)
    futures = []
    for _ in range(times):
        for player in players:
            request = PredictionRequest(day.isoformat(), player, "points", "test-batch", project)
            futures.append(publisher.publish(topic, request.body(), **request.attributes()))
    for future in futures:
        future.result(timeout=30)
    return [request_id(day, p, "points") for p in players]


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.mark.integration
def test_duplicate_requests_never_make_a_second_row(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 1)
    players = _seeded_players(bq, drain, day, 30)
    with running_worker(stack.project) as worker:
        _publish_requests(stack.project, day, players, times=3)
        _wait_for(lambda: worker.stats.received == 90)
        _publish_requests(stack.project, day, players[:10])
        _wait_for(lambda: worker.stats.received == 100)
    assert worker.stats.written == 30
    assert worker.stats.duplicates == 70
    assert prediction_count(bq, day) == 30
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []  # everything was acked


@pytest.mark.integration
def test_dropped_requests_are_written_when_republished(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 2)
    players = _seeded_players(bq, drain, day, 60)
    with running_worker(stack.project, drop_rate=0.25, seed=11) as worker:
        _publish_requests(stack.project, day, players)
        _wait_for(lambda: worker.stats.received == 60)
        dropped = set(worker.stats.dropped_ids)
        assert 5 < len(dropped) < 30
        assert prediction_count(bq, day) == 60 - len(dropped)
        again = [p for p in players if request_id(day, p, "points") in dropped]
        _publish_requests(stack.project, day, again)
        _wait_for(lambda: worker.stats.received == 60 + len(again))
    assert prediction_count(bq, day) == 60
    assert worker.stats.dropped == len(dropped)


def _worker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m nba_phase5 worker ARGS` against the session's stack."""
    return subprocess.run(
        [sys.executable, "-m", "nba_phase5", "worker", *args],
        env={**os.environ, "PYTHONPATH": PLUGINS},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_crash_after_exits_hard_without_writing_the_batch(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 3)
    players = _seeded_players(bq, drain, day, 20)
    _publish_requests(stack.project, day, players)
    done = _worker_cli("--crash-after", "5", "--idle-exit", "5")
    assert done.returncode == 3, done.stderr
    assert "crash_after=5 reached" in done.stderr
    # Mid-batch: nothing of that batch was written, and nothing was acked (it is redelivered later).
    assert prediction_count(bq, day) == 0


@pytest.mark.integration
def test_max_messages_and_idle_exit_end_the_cli_worker(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 4)
    players = _seeded_players(bq, drain, day, 12)
    _publish_requests(stack.project, day, players)
    done = _worker_cli("--max-messages", "12", "--delay-ms", "50")
    assert done.returncode == 0, done.stderr
    assert "12 requests received, 12 predictions written" in done.stdout
    assert prediction_count(bq, day) == 12
