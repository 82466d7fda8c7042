"""Faults the platform meets: partial publish failures, transient BigQuery errors, reruns, crashed workers.

Each case drives the real code against the emulators and checks the outcome in Pub/Sub and BigQuery.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import Future
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    InjectingPublisher,
    alerts,
    coverage_params,
    ready_players,
    requested_for,
    run_dag,
    run_history,
    task_context,
)
from nba_phase5 import config
from nba_phase5.airflow.hooks.pubsub import BatchPublishHook
from nba_phase5.airflow.tasks import run_history as run_history_module
from nba_phase5.bigquery.sql import render
from nba_phase5.core.prediction_requests import PredictionRequest
from nba_phase5_local.seeding import seed_day

WAIT_1 = config.TASKS.in_group(config.TASKS.retry_group, config.TASKS.wait_round(1))
REPUBLISH_1 = config.TASKS.in_group(config.TASKS.retry_group, config.TASKS.republish_round(1))

pytestmark = pytest.mark.integration
PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")


def _requests(project: str, n: int) -> list[PredictionRequest]:
    return [
        PredictionRequest("2025-06-01", f"player{i:04d}", "0022500001", "batch_2025-06-01_1748736000") for i in range(n)
    ]


def test_partial_publish_failure_retries_only_the_failed_and_duplicates_nothing(stack, drain) -> None:
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    requests = _requests(stack.project, 300)
    failing = {r.request_id for r in requests[::7]}
    publisher = InjectingPublisher(failing, failures=1)
    result = BatchPublishHook(gcp_conn_id=config.GCP_CONN_ID).publish_batch(
        project_id=stack.project,
        topic=config.PREDICTION_REQUESTS_TOPIC,
        messages=[(r.body(), r.attributes()) for r in requests],
        publisher=publisher,
    )
    assert (result.published, result.failed, result.retried, result.attempts) == (300, [], len(failing), 2)
    assert {rid for rid, n in publisher.attempts.items() if n > 1} == failing
    delivered = [m.attributes["request_id"] for m in requested_for(date(2025, 6, 1))]
    assert sorted(delivered) == sorted(r.request_id for r in requests)


def test_publish_that_never_succeeds_fails_the_task_loudly(stack, bq, phase5_dag, drain, monkeypatch) -> None:
    from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator

    day = date(2025, 6, 2)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=60, ready_pct=100)
    doomed = set()

    class AlwaysFailsSome(InjectingPublisher):
        def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
            if len(doomed) < 5 or attributes["request_id"] in doomed:
                doomed.add(attributes["request_id"])
                self.fail_ids.add(attributes["request_id"])
            return super().publish(topic, data, **attributes)

    monkeypatch.setattr(BatchPublishHook, "get_batch_publisher", lambda self: AlwaysFailsSome(set(), failures=99))
    monkeypatch.setattr("nba_phase5.airflow.hooks.pubsub.time.sleep", lambda s: None)
    operator = PredictionFanOutOperator(
        task_id="fan_out_requests",
        game_date=day.isoformat(),
        batch_id=f"batch_{day}_1748736000",
    )
    with pytest.raises(RuntimeError, match="5 of 60 prediction requests are still unpublished after 3 attempts"):
        operator.execute({"run_id": "fault_run", "ti": None})
    assert len(requested_for(day)) == 55


def test_transient_bigquery_errors_are_retried_with_backoff(bq, monkeypatch) -> None:
    from google.api_core.exceptions import ServiceUnavailable, TooManyRequests

    from nba_phase5.bigquery import bq as bq_module

    day = date(2025, 6, 3)
    seed_day(bq, day, players=60, ready_pct=90)
    errors = [ServiceUnavailable("injected 503"), TooManyRequests("injected rate limit")]
    real_query = type(bq).query
    sleeps: list[float] = []

    def flaky_query(self, *args, **kwargs):
        if errors:
            raise errors.pop(0)
        return real_query(self, *args, **kwargs)

    monkeypatch.setattr(type(bq), "query", flaky_query)
    monkeypatch.setattr(bq_module.time, "sleep", sleeps.append)
    rows = bq_module.run_query(bq, "SELECT COUNT(*) AS n FROM nba_raw.nbac_schedule WHERE game_date = @d", {"d": day})
    assert rows == [{"n": 2}]
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0]


def test_a_bad_query_is_not_retried(bq, monkeypatch) -> None:
    from google.api_core.exceptions import BadRequest

    from nba_phase5.bigquery import bq as bq_module

    sleeps: list[float] = []
    monkeypatch.setattr(bq_module.time, "sleep", sleeps.append)
    with pytest.raises(BadRequest):
        bq_module.run_query(
            bq, "SELECT no_such_column FROM nba_raw.nbac_schedule WHERE game_date = @d", {"d": date(2025, 6, 3)}
        )
    assert sleeps == []


def test_record_batch_run_twice_keeps_one_row(bq, phase5_dag) -> None:
    day = date(2025, 6, 4)
    context = task_context(phase5_dag, "record_batch_run", day)
    # An off day: the simplest complete run.
    game_day = {"game_date": day.isoformat(), "started_at": datetime.now(UTC).isoformat(), "games": 0}
    facts = run_history_module.run_facts(context, {"game_day": game_day})
    run_history_module.record_batch_run(facts, context)
    run_history_module.record_batch_run(facts, context)
    [row] = run_history(bq, day)
    assert (row["status"], row["skip_reason"], row["run_id"]) == ("skipped", "no_data", "test_run")


def test_cleared_fan_out_after_success_publishes_nothing_new(stack, bq, phase5_dag, drain) -> None:
    from helpers import write_predictions
    from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator

    day = date(2025, 6, 5)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=80, ready_pct=90)
    operator = PredictionFanOutOperator(
        task_id="fan_out_requests",
        game_date=day.isoformat(),
        batch_id=f"batch_{day}_1748736000",
    )
    context = {"run_id": "rerun", "ti": None}
    assert operator.execute(context)["published"] == 72
    write_predictions(bq, day, ready_players(bq, day)[:60])  # the workers answered 60 of them
    # Cleared and rerun at once: the 12 still missing are in flight (accepted seconds ago), so nothing.
    assert operator.execute(context)["published"] == 0
    # Cleared and rerun once they are older than the in-flight window: only those 12 go out again.
    operator.in_flight_minutes = 0
    assert operator.execute(context)["published"] == 12
    delivered = [json.loads(m.data)["player_lookup"] for m in requested_for(day)]
    assert len(delivered) == 84
    assert sorted(set(delivered[72:])) == ready_players(bq, day)[60:]


def test_crashed_worker_leaves_a_partial_run_and_one_warning(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 6, 6)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=150, ready_pct=90)
    from helpers import write_predictions

    # The workers answered 80 of the 135 ready players, then the one left crashes on its next request.
    write_predictions(bq, day, ready_players(bq, day)[:80])
    worker = subprocess.Popen(
        [sys.executable, "-m", "nba_phase5_local", "worker", "--crash-after", "0"],
        env={**os.environ, "PYTHONPATH": PLUGINS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, straggler_settle_polls=2)
    finally:
        worker.kill()
    assert worker.wait() in (3, -9)
    assert state == "success", tasks
    [row] = run_history(bq, day)
    assert row["status"] == "partial"
    assert row["summary"]["completion_pct"] == round(100 * 80 / 135, 2)  # 59 %: above the critical 50 %
    stragglers, not_handed_off = alerts(bq, day)
    assert stragglers["severity"] == "warning"
    assert "still lack a prediction" in stragglers["message"]
    # A partial batch under 80 %: Phase 6 would not export it, so it is not announced, and a warning says so.
    assert not_handed_off["severity"] == "warning"
    assert "Phase 6 would not export" in not_handed_off["message"]
    assert tasks["hand_off_to_phase6"] == "skipped"
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)  # the republished requests nobody answered


def test_cleared_retry_group_republishes_only_the_still_missing(stack, bq, phase5_dag, drain) -> None:
    """A cleared group starts with no XCom: its wait polls afresh and its republish sends only what is missing."""
    from helpers import XComTI, write_predictions
    from nba_phase5.airflow.operators.bigquery_wait import BigQueryWaitOperator
    from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator

    day = date(2025, 6, 9)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=80, ready_pct=90)
    ready = ready_players(bq, day)
    write_predictions(bq, day, ready[:65])
    xcoms: dict[tuple[str, str], Any] = {}
    wait = BigQueryWaitOperator(
        task_id=WAIT_1,
        sql=render("prediction_coverage.sql"),
        query_params=coverage_params(day),
        max_wait_minutes=0,
    )
    xcoms[(WAIT_1, "return_value")] = wait.execute({"ti": XComTI(WAIT_1, xcoms)})
    assert xcoms[(WAIT_1, "return_value")]["players_missing"] == 7
    republish = PredictionFanOutOperator(
        task_id=REPUBLISH_1,
        game_date=day.isoformat(),
        batch_id=f"batch_{day}_1748736000",
        coverage=xcoms[(WAIT_1, "return_value")],
    )
    result = republish.execute({"run_id": "cleared", "ti": XComTI(REPUBLISH_1, xcoms)})
    assert result["published"] == 7
    delivered = sorted(json.loads(m.data)["player_lookup"] for m in requested_for(day))
    assert delivered == ready[65:]
