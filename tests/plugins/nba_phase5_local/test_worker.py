"""The local prediction worker's loop: it stages, announces, then acks; a 500 is nacked and left to the
subscription's dead-letter policy; a bad message never stops the worker nor holds back the good ones of
its pull. (Which answer each request gets is tests/plugins/nba_phase5/test_worker_contract.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helpers import running_worker
from nba_phase5 import config
from nba_phase5.bigquery.bq import run_query
from nba_phase5.bigquery.clients import publisher_client
from nba_phase5.core.prediction_requests import request_id
from nba_phase5.core.staging import staging_prefix
from nba_phase5_local.seeding import FEATURE_NAMES, build_day, seed_day
from nba_phase5_local.worker import PredictionWorker, WorkerOptions
from nba_phase5_local.worker_answers import answer
from nba_phase5_local.worker_io import StagingSchemaError, StagingWriter
from nba_phase5_local.worker_requests import RETRY

PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")
DAY = date(2025, 11, 28)
FEATURE_ROW = {
    "universal_player_id": None,
    "feature_names": list(FEATURE_NAMES),
    "features": [20.0] * len(FEATURE_NAMES),
    "feature_quality_score": 90.0,
}


def _body(day: date, player: str, game: str, batch: str | None, **changes: Any) -> dict[str, Any]:
    """A request body as the coordinator sends it (the fields the worker reads; the rest it ignores)."""
    return {
        "player_lookup": player,
        "game_date": day.isoformat(),
        "game_id": game,
        "line_values": [18.5],
        "has_prop_line": True,
        "actual_prop_line": 18.5,
        "line_source": "ACTUAL_PROP",
        "line_source_api": "ODDS_API",
        "batch_id": batch,
        "correlation_id": batch,
        "prediction_run_mode": "OVERNIGHT",
        **changes,
    }


class FakeWriter:
    """A staging writer whose loads fail with ``error`` when they hold a ``poison`` player's rows."""

    def __init__(self, poison: set[str], error: Exception) -> None:
        self.poison, self.error, self.loads = poison, error, []

    def load(self, request, *, batch, worker_id, rows):
        self.loads.append((batch, worker_id, len(rows)))
        if any(row["player_lookup"] in self.poison for row in rows):
            raise self.error
        return f"p.nba_predictions._staging_{batch}_{worker_id}"


#: When the test's pulls are answered.
PULLED_AT = datetime(2025, 9, 1, 6, 0, tzinfo=UTC)


def _answered(players: list[str], batch: str | None = "b1") -> list[tuple[Any, Any]]:
    """A pull's answers, all at one instant as the worker's loop answers a pull (a request without a batch
    id is staged under ``fallback_{epoch_ms}`` of that instant)."""
    features = {(DAY.isoformat(), p): FEATURE_ROW for p in players}
    return [
        (SimpleNamespace(name=p), answer(_request(p, batch), today=DAY, features=features, now=PULLED_AT))
        for p in players
    ]


def _request(player: str, batch: str | None) -> bytes:
    return json.dumps(_body(DAY, player, "g", batch)).encode()


def test_a_failing_load_is_split_until_the_poison_requests_stand_alone() -> None:
    from google.api_core.exceptions import BadRequest

    worker = PredictionWorker(WorkerOptions(project="p"))
    writer = FakeWriter({"p5"}, BadRequest("Invalid NUMERIC value"))
    answered = worker.stage(writer, _answered([f"p{i}" for i in range(32)]))
    refused = [(m.name, a.status, a.reason, a.ready) for m, a in answered if not a.acked]
    assert refused == [("p5", RETRY, "staging write failed: BadRequest: 400 Invalid NUMERIC value", None)]
    assert len(writer.loads) == 1 + 2 * 5  # bisection: the whole pull, then two halves per level
    assert len({worker_id for _, worker_id, _ in writer.loads}) == 1  # one worker id per pull
    assert (worker.stats.staged_requests, worker.stats.staged_rows, worker.stats.staging_failed) == (31, 31, 1)


def test_a_fault_no_request_can_cause_is_never_blamed_on_one() -> None:
    from google.api_core.exceptions import BadRequest, Forbidden, ServiceUnavailable

    players = [f"p{i}" for i in range(8)]
    for error in (Forbidden("no access"), ServiceUnavailable("outage"), StagingSchemaError("no column x")):
        worker = PredictionWorker(WorkerOptions(project="p"))
        writer = FakeWriter(set(players), error)
        answered = worker.stage(writer, _answered(players))
        assert len(writer.loads) == 1  # not isolated: one try, every request 500
        assert {a.status for _, a in answered} == {RETRY}
    # Refused for every request alike: bisected down to each one, and each one is answered 500.
    worker = PredictionWorker(WorkerOptions(project="p"))
    answered = worker.stage(FakeWriter(set(players), BadRequest("Syntax error")), _answered(players))
    assert {a.status for _, a in answered} == {RETRY}
    assert worker.stats.staged_requests == 0


def test_one_load_per_batch_of_a_pull() -> None:
    worker = PredictionWorker(WorkerOptions(project="p", revision="rev-1"))
    writer = FakeWriter(set(), RuntimeError())
    pull = _answered(["a", "b"], "b1") + _answered(["c"], "b2") + _answered(["d", "e"], None)
    worker.stage(writer, pull)
    assert sorted((batch, rows) for batch, _, rows in writer.loads) == sorted(
        [("b1", 2), ("b2", 1), (pull[-1][1].staging_batch, 2)]
    )
    assert {worker_id[:6] for _, worker_id, _ in writer.loads} == {"rev-1_"}


class FakeSubscription:
    """Records what the worker does with a pull, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def publish_ready(self, messages):
        self.calls.append(("ready", sorted(m["player_lookup"] for m in messages)))
        return len(messages), 0

    def ack(self, received):
        self.calls.append(("ack", sorted(m.message.message_id for m in received)))

    def nack(self, received):
        self.calls.append(("nack", sorted(m.message.message_id for m in received)))


def _message(message_id: str, data: bytes) -> Any:
    return SimpleNamespace(message=SimpleNamespace(message_id=message_id, data=data, attributes={}))


def test_a_pull_is_staged_then_announced_then_acked(monkeypatch) -> None:
    from google.api_core.exceptions import BadRequest

    monkeypatch.setattr(
        "nba_phase5_local.worker.fetch_features",
        lambda client, requests: {("", r.game_day.isoformat(), r.player_lookup): FEATURE_ROW for r in requests},
    )
    worker = PredictionWorker(WorkerOptions(project="p", today=lambda: DAY, retry_pause_s=0))
    pubsub = FakeSubscription()
    pull = [
        _message("good", json.dumps(_body(DAY, "good", "g", "b1")).encode()),
        _message("garbage", b"garbage"),  # 500
        _message("no-game", json.dumps({"player_lookup": "x", "game_date": "2025-11-28"}).encode()),  # 204
        _message("no-lines", json.dumps(_body(DAY, "nolines", "g", "b1", line_values=[])).encode()),  # 500 today
        _message("poison", json.dumps(_body(DAY, "poison", "g", "b1")).encode()),  # its load fails
    ]
    worker.handle(None, FakeWriter({"poison"}, BadRequest("refused")), pubsub, pull)
    assert pubsub.calls == [
        ("ready", ["good"]),  # after staging, before the ack; none for a 500
        ("ack", ["good", "no-game"]),
        ("nack", ["garbage", "no-lines", "poison"]),
    ]
    stats = worker.stats
    assert (stats.received, stats.acked, stats.nacked, stats.staged_rows, stats.ready_published) == (5, 2, 3, 1, 1)
    assert stats.reasons["missing field game_id"] == 1
    # Deliveries count the requests the worker could read (a body without game_id is no request).
    assert set(stats.deliveries) == {request_id("2025-11-28", p) for p in ("good", "nolines", "poison")}


# --- against the emulators ----------------------------------------------------------------------


def _seeded(bq, drain, day: date, players: int) -> dict[str, str]:
    """A fresh day with every player production-ready and empty subscriptions: {player: game_id}."""
    for subscription in (
        config.PREDICTION_REQUESTS_SUBSCRIPTION,
        config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION,
        config.PREDICTION_READY_LOCAL_SUBSCRIPTION,
    ):
        drain(subscription)
    seed_day(bq, day, players=players, ready_pct=100)
    return {row["player_lookup"]: row["game_id"] for row in build_day(day, players=players, ready_pct=100)[1]}


def _publish(project: str, bodies: list[dict[str, Any]] | list[bytes]) -> None:
    """Publish request bodies as the coordinator does: JSON, no attributes."""
    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PREDICTION_REQUESTS_TOPIC)
    data = [b if isinstance(b, bytes) else json.dumps(b).encode() for b in bodies]
    for future in [publisher.publish(topic, d) for d in data]:
        future.result(timeout=30)


def _staged(bq, batch_id: str) -> list[dict[str, Any]]:
    """Every row staged for ``batch_id`` (its tables found as consolidation finds them)."""
    rows: list[dict[str, Any]] = []
    for table in bq.list_tables(f"{bq.project}.nba_predictions"):
        if table.table_id.startswith(staging_prefix(batch_id)):
            rows += run_query(bq, f"SELECT * FROM `{bq.project}.nba_predictions.{table.table_id}`")
    return rows


def _ready(drain, day: date) -> list[dict[str, Any]]:
    """The ready messages for ``day`` (earlier tests' runs leave thousands of their own on the subscription)."""
    found = [json.loads(m.data) for m in drain(config.PREDICTION_READY_LOCAL_SUBSCRIPTION, empty_pulls=2)]
    return [m for m in found if m["game_date"] == day.isoformat()]


def _predictions(bq, day: date) -> int:
    sql = f"SELECT COUNT(*) AS n FROM `{bq.project}.{config.PREDICTIONS_TABLE}` WHERE game_date = @d"
    return int(run_query(bq, sql, {"d": day})[0]["n"])


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _drain_dlq(drain, expected: int, timeout: float = 60.0) -> list[Any]:
    """The dead-letter subscription's messages, once ``expected`` have arrived (forwarding is asynchronous)."""
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        messages += drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
        time.sleep(0.2)
    return messages + drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)


@pytest.mark.integration
def test_every_delivery_is_staged_again_and_announced(stack, bq, drain) -> None:
    day, batch = date(2025, 9, 1), "batch_2025-09-01_1756684800"
    games = _seeded(bq, drain, day, 5)
    with running_worker(stack.project) as worker:
        _publish(stack.project, [_body(day, p, g, batch) for p, g in games.items()] * 2)
        _wait_for(lambda: worker.stats.acked == 10)
    rows = _staged(bq, batch)
    # No de-duplication in the worker: consolidation keeps the newest row per line (docs/platform.md §8.2).
    assert sorted(r["player_lookup"] for r in rows) == sorted(list(games) * 2)
    assert len({r["prediction_id"] for r in rows}) == 10
    assert sorted(m["player_lookup"] for m in _ready(drain, day)) == sorted(list(games) * 2)
    assert _predictions(bq, day) == 0  # never player_prop_predictions
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []  # everything acked


def _poison_features(bq, day: date, player: str) -> None:
    """A feature row the model turns into a prediction too big for NUMERIC: its staging write fails."""
    run_query(
        bq,
        f"UPDATE `{bq.project}.{config.FEATURE_STORE_TABLE}` SET features = @huge "
        "WHERE game_date = @d AND player_lookup = @p",
        {"huge": [1e30] * len(FEATURE_NAMES), "d": day, "p": player},
    )


@pytest.mark.integration
def test_bad_requests_never_hold_back_the_good_ones_of_their_pull(stack, bq, drain) -> None:
    day, batch = date(2025, 9, 7), "batch_2025-09-07_1757203200"
    games = _seeded(bq, drain, day, 6)
    bad_player, *valid = sorted(games)
    _poison_features(bq, day, bad_player)
    # Answered 500 (redelivered, then dead-lettered by the policy) or 204 (acked and gone): never a stop.
    retried = {
        b"garbage",
        b"[" * 5000,
        b'{"player_lookup": "\xff\xfe", "game_date": "2025-09-07"}',
        json.dumps(_body(day, "x", "g", batch, game_date="20250907")).encode(),
        json.dumps(_body(day, valid[0], games[valid[0]], "2025-09-07:manual")).encode(),  # no table can bear it
        json.dumps(_body(day, bad_player, games[bad_player], batch)).encode(),  # its rows overflow NUMERIC
        json.dumps(_body(day, "\ud800x", "g", batch)).encode(),
        json.dumps(_body(day, valid[1], games[valid[1]], batch, line_values=[])).encode(),  # today: 500
    }
    acked = [json.dumps({"player_lookup": "x", "game_date": day.isoformat()}).encode()]  # no game_id: 204
    _publish(stack.project, [*sorted(retried), *acked])
    _publish(stack.project, [_body(day, p, games[p], batch) for p in valid])
    with running_worker(stack.project, today=lambda: day, retry_pause_s=0.1) as worker:
        _wait_for(lambda: worker.stats.staged_requests == len(valid))
        dead = _drain_dlq(drain, len(retried))
    assert {m.data for m in dead} == retried
    assert {m.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] for m in dead} == {"5"}
    assert worker.stats.nacked == 5 * len(retried)
    assert sorted(r["player_lookup"] for r in _staged(bq, batch)) == sorted(valid)  # every valid one, once
    assert sorted(m["player_lookup"] for m in _ready(drain, day)) == sorted(valid)
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []


@pytest.mark.integration
def test_a_load_failing_transiently_is_redelivered_and_staged(stack, bq, drain, monkeypatch) -> None:
    from google.api_core.exceptions import ServiceUnavailable

    day, batch = date(2025, 9, 8), "batch_2025-09-08_1757289600"
    games = _seeded(bq, drain, day, 6)
    real_load = StagingWriter.load
    failures: list[int] = []

    def flaky(self, request, **kwargs):
        if not failures:
            failures.append(1)
            raise ServiceUnavailable("BigQuery is away")
        return real_load(self, request, **kwargs)

    monkeypatch.setattr(StagingWriter, "load", flaky)
    _publish(stack.project, [_body(day, p, g, batch) for p, g in games.items()])
    with running_worker(stack.project, retry_pause_s=0.1) as worker:
        _wait_for(lambda: worker.stats.staged_requests == 6)
    assert (worker.stats.nacked, worker.stats.staging_failed) == (6, 6)
    assert worker.stats.deliveries == {request_id(day.isoformat(), p): 2 for p in games}  # nacked once, then staged
    assert sorted(r["player_lookup"] for r in _staged(bq, batch)) == sorted(games)
    assert sorted(m["player_lookup"] for m in _ready(drain, day)) == sorted(games)  # no event for the failed load
    assert _drain_dlq(drain, 0) == []


@pytest.mark.integration
def test_loads_that_keep_failing_go_to_the_dlq_after_five_deliveries(stack, bq, drain, monkeypatch) -> None:
    from google.api_core.exceptions import Forbidden

    day, batch = date(2025, 9, 9), "batch_2025-09-09_1757376000"
    games = _seeded(bq, drain, day, 3)

    def denied(self, request, **kwargs):
        raise Forbidden("Access Denied: Dataset nba_predictions")

    monkeypatch.setattr(StagingWriter, "load", denied)
    _publish(stack.project, [_body(day, p, g, batch) for p, g in games.items()])
    with running_worker(stack.project, retry_pause_s=0.1) as worker:
        dead = _drain_dlq(drain, 3)
    assert sorted(json.loads(m.data)["player_lookup"] for m in dead) == sorted(games)
    assert {m.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] for m in dead} == {"5"}
    assert worker.stats.deliveries == {request_id(day.isoformat(), p): 5 for p in games}
    assert (worker.stats.staged_rows, worker.stats.ready_published) == (0, 0)
    assert _ready(drain, day) == []
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []


@pytest.mark.integration
def test_dropped_requests_are_staged_when_republished(stack, bq, drain) -> None:
    day, batch = date(2025, 9, 2), "batch_2025-09-02_1756771200"
    games = _seeded(bq, drain, day, 60)
    with running_worker(stack.project, drop_rate=0.25, seed=11) as worker:
        _publish(stack.project, [_body(day, p, g, batch) for p, g in games.items()])
        _wait_for(lambda: worker.stats.staged_requests + worker.stats.dropped == 60)
        dropped = set(worker.stats.dropped_ids)
        assert 5 < len(dropped) < 30
        assert len(_staged(bq, batch)) == 60 - len(dropped)
        again = {p: g for p, g in games.items() if request_id(day.isoformat(), p) in dropped}
        _publish(stack.project, [_body(day, p, g, batch) for p, g in again.items()])
        _wait_for(lambda: worker.stats.received == 60 + len(again))
        _wait_for(lambda: worker.stats.staged_requests == 60)
    assert len(_staged(bq, batch)) == 60
    assert worker.stats.dropped == len(dropped)
    deliveries = {request_id(day.isoformat(), p): 1 + (request_id(day.isoformat(), p) in dropped) for p in games}
    assert worker.stats.deliveries == deliveries
    assert len(_ready(drain, day)) == 60  # a dropped request sends no ready message


def _worker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m nba_phase5_local worker ARGS` against the session's stack."""
    return subprocess.run(
        [sys.executable, "-m", "nba_phase5_local", "worker", *args],
        env={**os.environ, "PYTHONPATH": PLUGINS},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_crash_after_exits_hard_without_staging_or_acking(stack, bq, drain) -> None:
    day, batch = date(2025, 9, 3), "batch_2025-09-03_1756857600"
    games = _seeded(bq, drain, day, 20)
    _publish(stack.project, [_body(day, p, g, batch) for p, g in games.items()])
    done = _worker_cli("--crash-after", "5", "--idle-exit", "5")
    assert done.returncode == 3, done.stderr
    assert "crash_after=5 reached" in done.stderr
    # Mid-pull: nothing of that pull was staged or announced, and nothing was acked (it is redelivered).
    assert _staged(bq, batch) == []
    assert _ready(drain, day) == []


@pytest.mark.integration
def test_max_messages_and_idle_exit_end_the_cli_worker(stack, bq, drain) -> None:
    day, batch = date(2025, 9, 4), "batch_2025-09-04_1756944000"
    games = _seeded(bq, drain, day, 12)
    _publish(stack.project, [_body(day, p, g, batch) for p, g in games.items()])
    started = datetime.now(UTC)
    done = _worker_cli("--max-messages", "12", "--delay-ms", "50")
    assert done.returncode == 0, done.stderr
    assert "12 requests received, 12 predictions written" in done.stdout
    rows = _staged(bq, batch)
    assert len(rows) == 12
    assert min(r["created_at"] for r in rows) >= started.replace(microsecond=0)
    assert _worker_cli("--idle-exit", "1").returncode == 0  # nothing left: it ends on its own
    assert _predictions(bq, day) == 0
