"""The local prediction worker: production-shaped rows, one active row per player, acks after writing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from helpers import running_worker
from nba_phase5 import config
from nba_phase5.bq import run_query, table_schema
from nba_phase5.clients import publisher_client
from nba_phase5.local_model import MissingFeatureError, named_features, predict
from nba_phase5.prediction_requests import PredictionRequest, request_id
from nba_phase5.seeding import FEATURE_NAMES, build_day, seed_day
from nba_phase5.worker import PredictionWorker, WorkerOptions, one_per_player, prediction_id
from nba_phase5.worker_io import WorkerRequest, parse_request

PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")
FEATURES = {
    "points_avg_last_5": 30.0,
    "points_avg_last_10": 20.0,
    "points_avg_season": 10.0,
    "opponent_def_rating": 112.0,
}


def test_model_reads_features_by_name_and_is_the_documented_weighted_average() -> None:
    # Reversed arrays: a model reading by position would get team_win_pct for points_avg_last_5.
    values = [FEATURES.get(name, 1.0) for name in FEATURE_NAMES]
    row = {"feature_names": list(reversed(FEATURE_NAMES)), "features": list(reversed(values))}
    made = predict(named_features(row), quality_score=100.0, line_values=[])
    assert made.predicted_points == Decimal("23.0")  # 0.5·30 + 0.3·20 + 0.2·10
    assert (made.recommendation, made.current_points_line, made.line_margin) == ("NO_LINE", None, None)
    tougher = predict({**FEATURES, "opponent_def_rating": 120.0}, quality_score=100.0, line_values=[])
    assert tougher.predicted_points > made.predicted_points
    assert Decimal("0.05") <= made.confidence_score <= Decimal("0.95")
    low_quality = predict(FEATURES, quality_score=50.0, line_values=[])
    assert (
        low_quality.confidence_score
        < predict({**FEATURES, "points_avg_last_5": 10.0}, quality_score=90.0, line_values=[]).confidence_score
    )
    with pytest.raises(MissingFeatureError, match="points_avg_season"):
        predict({"points_avg_last_5": 1.0, "points_avg_last_10": 1.0}, quality_score=90.0, line_values=[])
    with pytest.raises(MissingFeatureError):
        named_features({"feature_names": ["a", "b"], "features": [1.0]})


@pytest.mark.parametrize(
    ("lines", "recommendation", "margin"),
    [([20.5], "OVER", "2.5"), ([25.5, 30.5], "UNDER", "-2.5"), ([22.5], "PASS", "0.5"), ([23.0], "PASS", "0.0")],
)
def test_recommendation_against_the_first_line(lines: list[float], recommendation: str, margin: str) -> None:
    made = predict(FEATURES, quality_score=90.0, line_values=lines)
    assert (made.recommendation, made.line_margin) == (recommendation, Decimal(margin))
    assert made.current_points_line == Decimal(str(lines[0]))


def test_parse_request_reads_the_workers_body_and_attributes() -> None:
    request = PredictionRequest("2025-11-28", "aaronadams", "0022500871", "b1", line_values=[25.5], force=True)
    parsed = parse_request(request.body(), request.attributes())
    assert parsed == WorkerRequest(
        request.request_id, "2025-11-28", "aaronadams", "0022500871", (25.5,), batch_id="b1", force=True
    )
    # A body published by hand, with no attributes: the coordinator's id, not forced.
    bare = parse_request(json.dumps({"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g"}).encode(), {})
    assert (bare.request_id, bare.force, bare.line_values) == (request_id("2025-11-28", "x"), False, ())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"player_lookup": "x", "game_date": "20251128", "game_id": "g"}',
        b'{"player_lookup": "x", "game_date": "2025-02-30", "game_id": "g"}',
        b'{"player_lookup": "", "game_date": "2025-11-28", "game_id": "g"}',
        b'{"player_lookup": "x", "game_date": "2025-11-28"}',
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": [true]}',
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": "25.5"}',
        b"\xff\xfe",
    ],
)
def test_unusable_requests_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the reasons differ; any ValueError is "invalid"
        parse_request(body, {})


def test_one_request_per_player_and_batch_a_forced_one_first() -> None:
    plain = WorkerRequest("r1", "2025-11-28", "x", "g")
    forced = WorkerRequest("r2", "2025-11-28", "x", "g", force=True)
    other = WorkerRequest("r3", "2025-11-28", "y", "g")
    assert one_per_player([plain, forced, plain, other]) == ([forced, other], 2)
    assert prediction_id("r1") == prediction_id("r1") != prediction_id("r2")


def test_drops_are_reproducible_and_never_twice() -> None:
    ids = [request_id("2025-11-28", f"p{i}") for i in range(1000)]
    first = PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=3))
    again = PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=3))
    dropped = [i for i in ids if first.should_drop(i)]
    assert dropped == [i for i in ids if again.should_drop(i)]
    assert 60 < len(dropped) < 140
    assert not any(first.should_drop(i) for i in dropped)  # republished: goes through
    other_seed = PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=4))
    assert [i for i in ids if other_seed.should_drop(i)] != dropped


# --- against the emulators ----------------------------------------------------------------------


def _seeded(bq, drain, day: date, players: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A fresh day with every player production-ready and an empty request subscription: {player: game_id}."""
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=players, ready_pct=100)
    return {row["player_lookup"]: row["game_id"] for row in build_day(day, players=players, ready_pct=100)[1]}


def _publish(
    project: str,
    day: date,
    games: dict[str, str],
    *,
    times: int = 1,
    force: bool = False,
    lines: tuple[float, ...] = (),
    request_ids: str | None = None,
) -> None:
    """Publish one request per player, as the fan-out does; ``request_ids`` prefixes other ids."""
    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PREDICTION_REQUESTS_TOPIC)
    futures = []
    for _ in range(times):
        for player, game in games.items():
            batch = "force-batch" if force else "batch"
            request = PredictionRequest(day.isoformat(), player, game, batch, lines, force)
            attributes = request.attributes()
            if request_ids:
                attributes["request_id"] = f"{request_ids}-{player}"
            futures.append(publisher.publish(topic, request.body(), **attributes))
    for future in futures:
        future.result(timeout=30)


def _rows(bq, day: date) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    names = ", ".join(f["name"] for f in table_schema(config.PREDICTIONS_TABLE))
    return run_query(
        bq,
        f"SELECT {names} FROM `{bq.project}.{config.PREDICTIONS_TABLE}` WHERE game_date = @d "
        "ORDER BY player_lookup, prediction_version",
        {"d": day},
    )


def _active_per_player(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["player_lookup"]] = counts.get(row["player_lookup"], 0) + int(row["is_active"])
    return counts


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.mark.integration
def test_duplicate_requests_never_make_a_second_active_row(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 1)
    games = _seeded(bq, drain, day, 30)
    with running_worker(stack.project) as worker:
        _publish(stack.project, day, games, times=3)
        _wait_for(lambda: worker.stats.received == 90)
        _publish(stack.project, day, dict(list(games.items())[:10]))
        _wait_for(lambda: worker.stats.received == 100)
        # Not forced, under another request id (a hand-published request): still a duplicate.
        _publish(stack.project, day, dict(list(games.items())[10:15]), request_ids="by-hand")
        _wait_for(lambda: worker.stats.received == 105)
    rows = _rows(bq, day)
    assert set(_active_per_player(rows).values()) == {1}  # never two active rows for a player
    assert len(rows) == 30
    assert (worker.stats.written, worker.stats.duplicates, worker.stats.superseded) == (30, 75, 0)
    row = rows[0]
    assert (row["system_id"], row["prediction_version"], row["superseded_by"]) == (config.LOCAL_SYSTEM_ID, 1, None)
    assert row["game_id"] == games[row["player_lookup"]]
    assert (row["recommendation"], row["has_prop_line"], row["current_points_line"]) == ("NO_LINE", False, None)
    assert isinstance(row["confidence_score"], Decimal)  # NUMERIC
    assert Decimal(0) < row["confidence_score"] < Decimal(1)
    assert row["prediction_id"] == prediction_id(request_id(day, row["player_lookup"]))
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []  # everything was acked


@pytest.mark.integration
def test_forced_request_supersedes_and_its_redelivery_does_not(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 5)
    games = _seeded(bq, drain, day, 12)
    forced = dict(list(games.items())[:4])
    with running_worker(stack.project) as worker:
        _publish(stack.project, day, games, lines=(18.5,))
        _wait_for(lambda: worker.stats.written == 12)
        _publish(stack.project, day, forced, force=True)
        _wait_for(lambda: worker.stats.written == 16)
        _publish(stack.project, day, forced, force=True)  # the same forced requests, again
        _wait_for(lambda: worker.stats.received == 20)
    rows = _rows(bq, day)
    assert set(_active_per_player(rows).values()) == {1}  # never two active rows for a player
    assert len(rows) == 16
    assert (worker.stats.written, worker.stats.superseded, worker.stats.duplicates) == (16, 4, 4)
    for player in forced:
        old, new = (r for r in rows if r["player_lookup"] == player)
        assert (old["prediction_version"], old["is_active"], old["superseded_by"]) == (1, False, new["prediction_id"])
        assert (new["prediction_version"], new["is_active"], new["superseded_by"]) == (2, True, None)
        assert old["updated_at"] is not None
        assert (old["has_prop_line"], old["current_points_line"]) == (True, Decimal("18.5"))
        assert old["recommendation"] in {"OVER", "UNDER", "PASS"}
        assert old["line_margin"] == old["predicted_points"] - old["current_points_line"]
        assert new["recommendation"] == "NO_LINE"


@pytest.mark.integration
def test_invalid_messages_are_acked_and_counted(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 6)
    games = _seeded(bq, drain, day, 3)
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, config.PREDICTION_REQUESTS_TOPIC)
    for body in (b"garbage", b'{"player_lookup": "x"}'):
        publisher.publish(topic, body).result(timeout=30)
    with running_worker(stack.project) as worker:
        _publish(stack.project, day, games)
        _wait_for(lambda: worker.stats.received == 5)
    assert (worker.stats.invalid, worker.stats.written) == (2, 3)
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []


@pytest.mark.integration
def test_dropped_requests_are_written_when_republished(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 2)
    games = _seeded(bq, drain, day, 60)
    with running_worker(stack.project, drop_rate=0.25, seed=11) as worker:
        _publish(stack.project, day, games)
        _wait_for(lambda: worker.stats.received == 60)
        _wait_for(lambda: worker.stats.written + worker.stats.dropped == 60)  # the batch's write is done
        dropped = set(worker.stats.dropped_ids)
        assert 5 < len(dropped) < 30
        assert len(_rows(bq, day)) == 60 - len(dropped)
        again = {p: g for p, g in games.items() if request_id(day, p) in dropped}
        _publish(stack.project, day, again)
        _wait_for(lambda: worker.stats.received == 60 + len(again))
    assert len(_rows(bq, day)) == 60
    assert worker.stats.dropped == len(dropped)
    assert worker.stats.deliveries == {request_id(day, p): 1 + (request_id(day, p) in dropped) for p in games}


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
    games = _seeded(bq, drain, day, 20)
    _publish(stack.project, day, games)
    done = _worker_cli("--crash-after", "5", "--idle-exit", "5")
    assert done.returncode == 3, done.stderr
    assert "crash_after=5 reached" in done.stderr
    # Mid-batch: nothing of that batch was written, and nothing was acked (it is redelivered later).
    assert _rows(bq, day) == []


@pytest.mark.integration
def test_max_messages_and_idle_exit_end_the_cli_worker(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 4)
    games = _seeded(bq, drain, day, 12)
    _publish(stack.project, day, games)
    done = _worker_cli("--max-messages", "12", "--delay-ms", "50")
    assert done.returncode == 0, done.stderr
    assert "12 requests received, 12 predictions written" in done.stdout
    assert len(_rows(bq, day)) == 12
