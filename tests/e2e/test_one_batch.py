"""One game day, one batch, under the real scheduler: two runs racing for a date, and a fan-out killed
mid-batch. A tap subscription on the requests topic counts every request ever published, per player.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import local_airflow
from e2e.conftest import TAP_SUBSCRIPTION
from e2e.scheduler import (
    WORKER_DROP_RATE,
    WORKER_SEED,
    run_path,
    task_states,
    trigger,
    wait_finished,
    wait_for,
)
from helpers import drain_subscription, prediction_count, ready_players, request_ids, run_history
from nba_phase5 import config
from nba_phase5.bigquery.bq import run_query
from nba_phase5.bigquery.clients import bigquery_client
from nba_phase5_local.seeding import seed_day
from nba_phase5_local.worker import PredictionWorker, WorkerOptions

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

WORKER_ARGS = ("--drop-rate", str(WORKER_DROP_RATE), "--seed", str(WORKER_SEED))


@contextlib.contextmanager
def worker_stopped(airflow: local_airflow.LocalAirflow, stack: Any) -> Iterator[Any]:
    """The local prediction worker is down for the block (``restart()`` brings it back early)."""
    local_airflow.kill_component(airflow, local_airflow.WORKER)
    log = Path(airflow.home) / "logs" / "components" / f"worker-{time.monotonic_ns()}.log"

    def restart() -> None:
        if not any(server.name == local_airflow.WORKER for server in airflow.servers):
            local_airflow.start_worker(airflow, stack.env(), WORKER_ARGS, log)

    try:
        yield restart
    finally:
        restart()


def tapped(day: date, key: str = "player_lookup") -> Counter[str]:
    """Every request for ``day`` published since the last call (another day's late requests are not counted)."""
    messages = drain_subscription(TAP_SUBSCRIPTION, empty_pulls=2)
    # The coordinator's body carries the player and date; only the tracing request id is an attribute.
    found = [({**json.loads(m.data), **m.attributes}) for m in messages]
    return Counter(f[key] for f in found if f["game_date"] == day.isoformat())


def test_two_runs_for_one_date_seconds_apart_publish_each_request_once(stack, airflow, api, request_tap) -> None:
    day = date(2025, 3, 25)
    client = bigquery_client(stack.project)
    seed_day(client, day, players=120, ready_pct=90)
    ready = ready_players(client, day)
    request_tap()
    conf = {"skip_event_wait": True, "in_flight_minutes": 0.75, "straggler_wait_minutes": 1.5}
    runs = ["e2e_race_a_2025-03-25", "e2e_race_b_2025-03-25"]
    with worker_stopped(airflow, stack) as restart:
        trigger(api, runs[0], day, **conf)
        time.sleep(2)
        trigger(api, runs[1], day, logical_date=f"{day}T12:00:02Z", **conf)
        time.sleep(20)  # the worker is slow to start: every request is in flight meanwhile
        restart()
        finished = [wait_finished(api, run) for run in runs]
    assert [run["state"] for run in finished] == ["success", "success"], [task_states(api, r) for r in runs]
    requests = tapped(day, "request_id")
    dropper = PredictionWorker(WorkerOptions(project="-", drop_rate=WORKER_DROP_RATE, seed=WORKER_SEED))
    dropped = {rid for rid in request_ids(day, ready) if dropper.should_drop(rid)}
    # Each ready player requested once; the worker's deliberate drops once more, after the window.
    assert requests == Counter(request_ids(day, ready)) + Counter(dropped)
    rows = {row["run_id"]: row for row in run_history(client, day)}
    outcomes = sorted((rows[r]["status"], rows[r]["skip_reason"]) for r in runs)
    assert outcomes == [("skipped", "early_exit"), ("success", None)]
    published = next(r for r in runs if rows[r]["status"] == "success")
    skipped = next(r for r in runs if r != published)
    assert rows[skipped]["summary"]["held_by"] == published
    assert rows[skipped]["records_processed"] == 0
    assert prediction_count(client, day) == len(ready)


def _ledger_players(client: Any, day: date) -> set[str]:
    rows = run_query(
        client,
        f"SELECT player_lookup FROM `{client.project}.{config.REQUEST_LEDGER_TABLE}` WHERE game_date = @d",
        {"d": day},
    )
    return {row["player_lookup"] for row in rows}


def _settled_ledger_players(client: Any, day: date) -> set[str]:
    """The ledger's players once two reads 2 s apart agree: an insert the killed task had sent may land late."""
    previous = _ledger_players(client, day)
    for _ in range(30):
        time.sleep(2)
        current = _ledger_players(client, day)
        if current == previous:
            return current
        previous = current
    raise AssertionError("the ledger kept changing for 60 s after the fan-out was killed")


def _kill_task(api: Any, run_id: str, task_id: str) -> dict[str, Any]:
    """SIGKILL the process running a task instance, after checking it is that task's process."""
    ti: dict[str, Any] = api.get(f"{run_path(run_id)}/taskInstances/{task_id}")
    pid = int(ti["pid"])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert ti["id"] in cmdline, f"pid {pid} is not {task_id}'s process: {cmdline!r}"
    os.kill(pid, signal.SIGKILL)
    return ti


def test_a_fan_out_killed_mid_batch_is_retried_and_sends_only_what_was_never_recorded(
    stack, airflow, api, request_tap
) -> None:
    day, run_id, chunk = date(2025, 3, 26), "e2e_fan_out_killed_2025-03-26", 10
    client = bigquery_client(stack.project)
    seed_day(client, day, players=1000, ready_pct=100)
    ready = ready_players(client, day)
    request_tap()
    # The window outlasts the retry delay (30 s), and the worker's drops come back within the run.
    conf = {"skip_event_wait": True, "fan_out_chunk_size": chunk, "in_flight_minutes": 1.5, "straggler_wait_minutes": 2}
    with worker_stopped(airflow, stack) as restart:
        trigger(api, run_id, day, **conf)
        # Killed early: the in-flight window runs from the killed try's first publish to its retry's query.
        tenth = len(ready) // 10
        wait_for("a tenth of the batch recorded", lambda: len(_ledger_players(client, day)) >= tenth, 300, 0.1)
        killed = _kill_task(api, run_id, "fan_out_requests")
        recorded = _settled_ledger_players(client, day)
        first_try = tapped(day)
        assert len(recorded) < len(ready), "the fan-out finished before it could be killed"
        retried = wait_for(
            "the fan-out's retry",
            lambda: (ti := api.get(f"{run_path(run_id)}/taskInstances/fan_out_requests"))["state"] == "success" and ti,
            timeout=240,
            every=1,
        )
        second_try = tapped(day)
        restart()
        run = wait_finished(api, run_id)
    assert retried["try_number"] == killed["try_number"] + 1
    assert not set(second_try) & recorded  # nothing the killed try had recorded was sent again
    assert set(second_try) == set(ready) - recorded  # everything else was
    assert set(first_try) | set(second_try) == set(ready)
    # Accepted by Pub/Sub but not yet recorded when killed: at most the chunk being recorded and the
    # chunk being published.
    assert len(set(first_try) & set(second_try)) <= 2 * chunk
    assert run["state"] == "success", task_states(api, run_id)
    assert prediction_count(client, day) == len(ready)
