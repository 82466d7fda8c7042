"""The local prediction worker: production-shaped rows, one active row per player, acks after writing;
a request it cannot use is dead-lettered and never holds back the good ones of its pull."""

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
from nba_phase5.prediction_requests import PredictionRequest, request_id
from nba_phase5.seeding import FEATURE_NAMES, build_day, seed_day
from nba_phase5.worker import BatchFailedError, PredictionWorker, WorkerOptions, one_per_player, prediction_id
from nba_phase5.worker_requests import WorkerRequest

PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")


class FakeWriteWorker(PredictionWorker):
    """The real isolation logic over a fake write: requests of ``poison`` players fail it with ``error``."""

    def __init__(self, poison: set[str], error: Exception) -> None:
        super().__init__(WorkerOptions(project="p"))
        self.poison, self.error, self.calls, self.wrote = poison, error, 0, []  # type: ignore[var-annotated]

    def write(self, client, requests):  # type: ignore[no-untyped-def]
        self.calls += 1
        if any(r.player_lookup in self.poison or r.request_id in self.poison for r in requests):
            raise self.error
        self.wrote += requests
        return len(requests)


def test_a_failing_batch_is_split_until_the_poison_requests_stand_alone() -> None:
    from google.api_core.exceptions import BadRequest

    requests = [WorkerRequest(f"r{i}", "2025-11-28", f"p{i}", "g") for i in range(32)]
    worker = FakeWriteWorker({"p5"}, BadRequest("Invalid NUMERIC value"))
    failed = worker.write_batch(None, requests)
    assert [(r.player_lookup, reason) for r, reason in failed] == [
        ("p5", "write failed: BadRequest: 400 Invalid NUMERIC value")
    ]
    assert sorted(r.request_id for r in worker.wrote) == sorted(f"r{i}" for i in range(32) if i != 5)
    assert worker.calls == 1 + 2 * 5  # bisection: the whole batch, then two halves per level
    assert worker.stats.written == 31


def test_a_players_other_request_is_written_when_his_chosen_one_is_poison() -> None:
    from google.api_core.exceptions import BadRequest

    bad, good = WorkerRequest("bad", "2025-11-28", "x", "g", force=True), WorkerRequest("good", "2025-11-28", "x", "g")
    other = WorkerRequest("r2", "2025-11-28", "y", "g")
    worker = FakeWriteWorker({"bad"}, BadRequest("refused"))
    failed = worker.write_batch(None, [good, bad, other])
    assert [r.request_id for r, _ in failed] == ["bad"]
    assert sorted(r.request_id for r in worker.wrote) == ["good", "r2"]


def test_a_fault_no_request_can_cause_is_never_blamed_on_one() -> None:
    from google.api_core.exceptions import BadRequest, Forbidden, ServiceUnavailable

    requests = [WorkerRequest(f"r{i}", "2025-11-28", f"p{i}", "g") for i in range(8)]
    everyone = {r.player_lookup for r in requests}
    for error in (Forbidden("no access"), ServiceUnavailable("outage")):  # not isolated: one try, then up
        worker = FakeWriteWorker(everyone, error)
        with pytest.raises(type(error)):
            worker.write_batch(None, requests)
        assert worker.calls == 1
    # Refused for every request alike (a broken query, say): nothing could be written, nobody is poison.
    worker = FakeWriteWorker(everyone, BadRequest("Syntax error"))
    with pytest.raises(BatchFailedError, match="Syntax error"):
        worker.write_batch(None, requests)
    assert worker.wrote == []


def test_one_request_per_player_and_batch_a_forced_one_first() -> None:
    plain = WorkerRequest("r1", "2025-11-28", "x", "g")
    forced = WorkerRequest("r2", "2025-11-28", "x", "g", force=True)
    other = WorkerRequest("r3", "2025-11-28", "y", "g")
    assert one_per_player([plain, forced, plain, other]) == ([forced, other], 2)
    assert prediction_id("r1") == prediction_id("r1") != prediction_id("r2")


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
def test_invalid_messages_are_dead_lettered_acked_and_counted(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 6)
    games = _seeded(bq, drain, day, 3)
    drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, config.PREDICTION_REQUESTS_TOPIC)
    for body in (b"garbage", b'{"player_lookup": "x"}'):
        publisher.publish(topic, body, origin="by-hand").result(timeout=30)
    with running_worker(stack.project) as worker:
        _publish(stack.project, day, games)
        _wait_for(lambda: worker.stats.received == 5 and worker.stats.dead_lettered == 2)
    assert (worker.stats.invalid, worker.stats.dead_lettered, worker.stats.written) == (2, 2, 3)
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []
    dead = {m.data: dict(m.attributes) for m in _drain_dlq(drain, 2)}
    assert dead[b"garbage"]["dlq_reason"] == "body is not JSON: JSONDecodeError"
    assert dead[b'{"player_lookup": "x"}']["dlq_reason"].startswith("game_date must be a non-empty string")
    assert {a["origin"] for a in dead.values()} == {"by-hand"}  # the original attributes travel along
    assert {a["dlq_source_subscription"] for a in dead.values()} == {config.PREDICTION_REQUESTS_SUBSCRIPTION}


def _drain_dlq(drain, expected: int) -> list[Any]:  # type: ignore[no-untyped-def]
    """The dead-letter subscription's messages, once ``expected`` have arrived (forwarding is asynchronous)."""
    messages: list[Any] = []
    deadline = time.monotonic() + 30
    while len(messages) < expected and time.monotonic() < deadline:
        messages += drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
        time.sleep(0.2)
    messages += drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
    return messages


def _poison_features(bq, day: date, player: str) -> None:  # type: ignore[no-untyped-def]
    """A feature row the model turns into a prediction too big for NUMERIC: the MERGE itself fails."""
    run_query(
        bq,
        f"UPDATE `{bq.project}.{config.FEATURE_STORE_TABLE}` SET features = @huge "
        "WHERE game_date = @d AND player_lookup = @p",
        {"huge": [1e30] * len(FEATURE_NAMES), "d": day, "p": player},
    )


def _body(day: date, player: str, game: str, **changes: Any) -> bytes:
    body = {"player_lookup": player, "game_date": day.isoformat(), "game_id": game, "line_values": [20.5], **changes}
    return json.dumps(body).encode()


@pytest.mark.integration
def test_poison_requests_are_dead_lettered_and_the_rest_of_their_pull_is_written(stack, bq, drain) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 9, 7)
    games = _seeded(bq, drain, day, 9)
    drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
    bad_player, *valid = sorted(games)
    _poison_features(bq, day, bad_player)
    game = games[valid[0]]
    # case → (body, what dlq_reason must say). All published before the valid requests, into the same pull;
    # most are for players whose valid request follows (a poison one chosen for the MERGE would fail it).
    poison = {
        "deep-nesting": (b"[" * 5000, "body is not JSON: RecursionError"),
        "invalid-utf8": (
            b'{"player_lookup": "\xff\xfe", "game_date": "2025-09-07"}',
            "body is not JSON: UnicodeDecodeError",
        ),
        "line-values-text": (_body(day, valid[0], game, line_values="abc"), "line_values must be a list"),
        "game-date-number": (
            _body(day, valid[1], games[valid[1]], game_date=20251128),
            "game_date must be a non-empty string",
        ),
        "huge-line": (_body(day, valid[2], games[valid[2]], line_values=[1e300]), "line value 1e+300 is out of range"),
        "huge-integer-line": (
            _body(day, valid[3], games[valid[3]], line_values=[10**400]),
            "line value inf is out of range",
        ),
        "lone-surrogate": (_body(day, "\ud800x", game), "player_lookup is not valid Unicode text"),
        # Valid as a request; its player's feature row makes the batch's MERGE fail: isolated, then dead-lettered.
        "bad-features": (_body(day, bad_player, games[bad_player]), "write failed: BadRequest"),
        "bad-features-again": (_body(day, bad_player, games[bad_player]), "write failed: BadRequest"),
    }
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, config.PREDICTION_REQUESTS_TOPIC)
    for case, (body, _) in poison.items():
        publisher.publish(topic, body, case=case, request_id=f"poison-{case}").result(timeout=30)
    _publish(stack.project, day, {p: games[p] for p in valid})

    done = _worker_cli("--idle-exit", "3")

    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(valid)} predictions written" in done.stdout
    assert f"{len(poison)} invalid" in done.stdout
    assert _active_per_player(_rows(bq, day)) == dict.fromkeys(valid, 1)  # every valid one, once
    dead = {m.attributes["case"]: m for m in _drain_dlq(drain, len(poison))}
    assert set(dead) == set(poison)
    for case, (body, reason) in poison.items():
        assert dead[case].data == body
        assert dead[case].attributes["dlq_reason"].startswith(reason), (case, dead[case].attributes["dlq_reason"])
        assert dead[case].attributes["request_id"] == f"poison-{case}"
        assert dead[case].attributes["dlq_source_subscription"] == config.PREDICTION_REQUESTS_SUBSCRIPTION
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []  # nothing left to redeliver


@pytest.mark.integration
def test_a_batch_failing_transiently_is_redelivered_and_written(stack, bq, drain, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from google.api_core.exceptions import ServiceUnavailable

    day = date(2025, 9, 8)
    games = _seeded(bq, drain, day, 6)
    drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
    real_write, failures = PredictionWorker.write, []

    def flaky(self, client, requests):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(len(requests))
            raise ServiceUnavailable("BigQuery is away (after the retries)")
        return real_write(self, client, requests)

    monkeypatch.setattr(PredictionWorker, "write", flaky)
    _publish(stack.project, day, games)
    with running_worker(stack.project, retry_pause_s=0.1) as worker:
        _wait_for(lambda: worker.stats.written == 6)
    assert (worker.stats.nacked, worker.stats.dead_lettered, worker.stats.invalid) == (6, 0, 0)
    assert worker.stats.deliveries == {request_id(day, p): 2 for p in games}  # nacked once, then written
    assert _active_per_player(_rows(bq, day)) == dict.fromkeys(games, 1)
    assert _drain_dlq(drain, 0) == []


@pytest.mark.integration
def test_requests_that_keep_failing_go_to_the_dlq_after_five_deliveries(stack, bq, drain, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A fault no request caused (here a table the worker may not write): the worker never dead-letters
    # those itself; it nacks, and the subscription's dead-letter policy moves them after 5 deliveries.
    from google.api_core.exceptions import Forbidden

    day = date(2025, 9, 9)
    games = _seeded(bq, drain, day, 3)
    drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)

    def denied(self, client, requests):  # type: ignore[no-untyped-def]
        raise Forbidden("Access Denied: Table player_prop_predictions")

    monkeypatch.setattr(PredictionWorker, "write", denied)
    _publish(stack.project, day, games)
    with running_worker(stack.project, retry_pause_s=0.1) as worker:
        dead = _drain_dlq(drain, 3)
    assert sorted(m.attributes["player_lookup"] for m in dead) == sorted(games)
    assert {m.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] for m in dead} == {"5"}
    assert not any("dlq_reason" in m.attributes for m in dead)
    assert worker.stats.deliveries == {request_id(day, p): 5 for p in games}
    assert (worker.stats.dead_lettered, worker.stats.written) == (0, 0)
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
