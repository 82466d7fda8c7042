"""The fault rows of the reliability table, each through a whole `dag.test()` run on the emulators.

Faults are injected where the real clients live (the batch publisher the hook builds, the BigQuery
client's HTTP connection, the emulator address); the DAG, operators and hooks run unchanged, and the
outcome is read back from Pub/Sub deliveries and BigQuery rows.
"""

from __future__ import annotations

import socket
from collections import Counter
from datetime import date
from typing import Any

import pytest

from helpers import (
    InjectingPublisher,
    alerts,
    prediction_count,
    ready_players,
    request_ids,
    run_dag,
    run_history,
    running_worker,
)
from nba_phase5 import config
from nba_phase5.airflow.hooks.pubsub import BatchPublishHook
from nba_phase5.bigquery.clients import publisher_client
from nba_phase5.bigquery.sql import render
from nba_phase5_local.seeding import seed_day

pytestmark = pytest.mark.integration


def _fresh_day(bq: Any, drain: Any, day: date, players: int, ready_pct: float) -> list[str]:
    """Seed ``day`` on an empty requests subscription; returns its ready players."""
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=players, ready_pct=ready_pct)
    return ready_players(bq, day)


def _deliveries_for(worker: Any, ids: set[str]) -> Counter[str]:
    """The worker's deliveries of these requests: an earlier test's requests that a worker answered 500
    come back to this test's worker until the dead-letter policy takes them (5 deliveries)."""
    return Counter({rid: n for rid, n in worker.stats.deliveries.items() if rid in ids})


def test_partly_failing_publishes_are_retried_alone_and_nobody_is_requested_twice(
    stack, bq, phase5_dag, drain, monkeypatch
) -> None:
    day = date(2025, 7, 21)
    ready = _fresh_day(bq, drain, day, players=200, ready_pct=90)
    flaky = request_ids(day, ready[::7])
    publisher = InjectingPublisher(flaky, failures=1)
    monkeypatch.setattr(BatchPublishHook, "get_batch_publisher", lambda self: publisher)
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert (state, tasks["fan_out_requests"]) == ("success", "success"), tasks
    assert publisher.injected == len(flaky) == 26
    assert {rid for rid, n in publisher.attempts.items() if n > 1} == flaky  # only the failed were retried
    everyone = request_ids(day, ready)
    assert _deliveries_for(worker, everyone) == Counter(everyone)  # every ready player exactly once
    assert prediction_count(bq, day) == len(ready) == 180
    [row] = run_history(bq, day)
    assert (row["status"], row["records_processed"]) == ("success", 180)


def test_requests_that_never_publish_fail_the_run_loudly_and_a_rerun_sends_only_those(
    stack, bq, phase5_dag, drain, monkeypatch
) -> None:
    day = date(2025, 7, 22)
    ready = _fresh_day(bq, drain, day, players=60, ready_pct=100)
    doomed = request_ids(day, ready[:5])
    publisher = InjectingPublisher(doomed, failures=10**6)
    monkeypatch.setattr(BatchPublishHook, "get_batch_publisher", lambda self: publisher)
    monkeypatch.setattr("nba_phase5.airflow.hooks.pubsub.time.sleep", lambda s: None)
    # The task's own retries would fail the same way; one try keeps the run short.
    monkeypatch.setattr(phase5_dag.get_task("fan_out_requests"), "retries", 0)
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
        assert (state, tasks["fan_out_requests"], tasks["record_batch_run"]) == ("failed", "failed", "success")
        # The failed run still consolidates what the workers staged (trigger rule none_skipped).
        assert tasks["retry_stragglers.consolidate_predictions"] == "success"
        [row] = run_history(bq, day)
        assert row["status"] == "failed"
        found = alerts(bq, day)
        assert len(found) == 1, [(a["task_id"], a["severity"], a["run_id"], a["created_at"]) for a in found]
        [alert] = found
        assert alert["task_id"] == "fan_out_requests"
        assert "5 of 60 prediction requests are still unpublished after 3 attempts" in alert["message"]
        # The 55 that went out, once each; none of the five.
        assert _deliveries_for(worker, request_ids(day, ready)) == Counter(request_ids(day, ready[5:]))

        # Pub/Sub recovers; the next run of the day publishes exactly the five that never went out.
        monkeypatch.setattr(BatchPublishHook, "get_batch_publisher", lambda self: publisher_client())
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert state == "success", tasks
    assert _deliveries_for(worker, request_ids(day, ready)) == Counter(request_ids(day, ready))
    assert prediction_count(bq, day) == 60
    assert [r["status"] for r in run_history(bq, day)] == ["failed", "success"]


def test_transient_bigquery_errors_on_every_query_of_a_run_are_retried(
    stack, bq, phase5_dag, drain, monkeypatch
) -> None:
    """Every job the run submits (game day, batch status, fan-out, coverage, consolidation, history; the
    readiness wait takes the batch status's row and the gate the wait's) first meets a 503 or a 429 from
    BigQuery; the run still ends exactly as a clean one would."""
    from google.api_core.exceptions import ServiceUnavailable, TooManyRequests
    from google.cloud.bigquery._http import Connection

    day = date(2025, 7, 23)
    _fresh_day(bq, drain, day, players=80, ready_pct=90)
    real_api_request = Connection.api_request
    injected: list[str] = []
    seen: set[str] = set()

    def flaky_api_request(self, method, path, *args, **kwargs):
        query = ((kwargs.get("data") or {}).get("configuration") or {}).get("query", {}).get("query")
        if method == "POST" and path.endswith("/jobs") and query and query not in seen:
            seen.add(query)
            injected.append(query)
            error = ServiceUnavailable if len(injected) % 2 else TooManyRequests
            raise error("injected transient error")
        return real_api_request(self, method, path, *args, **kwargs)

    monkeypatch.setattr(Connection, "api_request", flaky_api_request)
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert state == "success", tasks
    first_lines = {q.strip().splitlines()[0] for q in injected}
    assert len(injected) >= 6, first_lines
    for sql in (
        "game_day.sql",
        "batch_status.sql",
        "prediction_coverage.sql",
        "merge_run_history.sql",
    ):
        assert render(sql).strip().splitlines()[0] in first_lines, sql
    everyone = request_ids(day, ready_players(bq, day))
    assert _deliveries_for(worker, everyone) == Counter(everyone)
    assert prediction_count(bq, day) == 72
    [row] = run_history(bq, day)
    assert row["status"] == "success"
    assert alerts(bq, day) == []


def test_a_stopped_emulator_fails_the_run_with_a_message_naming_the_fix(stack, bq, phase5_dag, monkeypatch) -> None:
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook
    from nba_phase5.bigquery.clients import EmulatorUnreachableError

    with socket.socket() as probe:  # a port where nothing answers: the stack as it is after `make stack-down`
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", dead)
    with pytest.raises(EmulatorUnreachableError, match=r"BIGQUERY_EMULATOR_HOST=.* nothing answers.*make stack-up"):
        Phase5BigQueryHook(gcp_conn_id=config.GCP_CONN_ID).get_client()
    day = date(2025, 7, 24)
    for task in phase5_dag.tasks:  # fail on the first try: every retry would meet the same dead port
        monkeypatch.setattr(task, "retries", 0)
    state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert state == "failed"
    assert tasks["resolve_game_day"] in ("failed", "up_for_retry"), tasks
    assert "success" not in {tasks["record_batch_run"], tasks.get("batch_done")}
    monkeypatch.undo()
    assert run_history(bq, day) == []  # nothing reported, least of all success
