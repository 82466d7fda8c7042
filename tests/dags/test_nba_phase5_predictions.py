"""The daily DAG end to end on the emulators, through `dag.test()`: the plan's integration scenarios.

A real prediction worker (the package's, in a thread) answers requests where the scenario needs one.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from helpers import (
    alerts,
    ready_players,
    requested_for,
    run_dag,
    run_history,
    running_worker,
    write_predictions,
)
from nba_phase5 import config
from nba_phase5.bigquery.bq import delete_date, run_query
from nba_phase5.bigquery.clients import publisher_client
from nba_phase5.core.prediction_requests import request_id
from nba_phase5_local.phase4_publisher import build_envelope
from nba_phase5_local.seeding import seed_day

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def publish_raw(project: str, *bodies: bytes) -> None:
    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PHASE4_COMPLETE_TOPIC)
    for body in bodies:
        publisher.publish(topic, body).result(timeout=30)


def real_event(day: date, processed: int, **extra: object) -> bytes:
    """The feature store's completion message exactly as the platform's Phase 4 publishes it
    (unified_pubsub_publisher.py 188-223, precompute_base.py 636-663: docs/platform.md §1.2), plus ``extra``."""
    envelope = build_envelope(day, record_count=processed, correlation_id=f"corr{day:%m%d}").to_dict()
    return json.dumps({**envelope, **extra}).encode()


def other_processor_event(day: date, processor: str) -> bytes:
    """Another Phase 4 processor's success message on the same topic (docs/platform.md §1.3): not ours."""
    return json.dumps(build_envelope(day, record_count=300, processor=processor).to_dict()).encode()


def staging_tables_of(bq, batch_id: str) -> list[str]:
    from nba_phase5.bigquery.consolidation import batch_tables

    return batch_tables(bq, [batch_id])


def active_predictions(bq, day: date) -> dict[str, int]:
    rows = run_query(
        bq,
        f"SELECT player_lookup, COUNT(*) AS n FROM `{bq.project}.{config.PREDICTIONS_TABLE}` "
        "WHERE game_date = @d AND is_active GROUP BY player_lookup",
        {"d": day},
    )
    return {row["player_lookup"]: row["n"] for row in rows}


@pytest.fixture
def job_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every job the BigQuery client sends (jobs.insert and jobs.query bodies), as the server receives
    it: the emulator keeps no labels, so they are read from the request. Calls go through unchanged."""
    from google.cloud.bigquery import Client

    sent: list[dict[str, Any]] = []
    real = Client._call_api

    def spy(self, retry, span_name=None, span_attributes=None, job_ref=None, headers=None, **kwargs):
        path, body = str(kwargs.get("path", "")), kwargs.get("data")
        if kwargs.get("method") == "POST" and path.endswith(("/jobs", "/queries")) and isinstance(body, dict):
            sent.append(body)
        return real(self, retry, span_name, span_attributes, job_ref, headers, **kwargs)

    monkeypatch.setattr(Client, "_call_api", spy)
    return sent


def query(body: dict[str, Any]) -> str:
    return str(body.get("configuration", {}).get("query", {}).get("query") or body.get("query") or "")


def labels(body: dict[str, Any]) -> dict[str, str]:
    return dict(body.get("configuration", {}).get("labels") or body.get("labels") or {})


def dag_jobs(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The DAG's jobs among ``sent``: the worker's feature reads and staging loads (no query text) are the worker's."""
    return [b for b in sent if query(b) and "feature_names, feature_quality_score" not in query(b)]


def assert_every_job_of_the_dag_is_labelled(sent: list[dict[str, Any]], day: date) -> None:
    """Every BigQuery job the run sent, but the stand-in worker's, carries the DAG's labels."""
    ours = dag_jobs(sent)
    assert len(ours) >= 8, [query(b)[:80] for b in sent]
    for body in ours:
        # The Google provider's keys (airflow-dag, airflow-task), as its own operators label their jobs.
        assert set(labels(body)) == {"airflow-dag", "airflow-task", "game_date"}, (query(body)[:200], labels(body))
        assert (labels(body)["airflow-dag"], labels(body)["game_date"]) == ("nba_phase5_predictions", day.isoformat())
    tasks = {labels(b)["airflow-task"] for b in ours}
    # the tasks' queries and run-history writes, the triggerer's inbox queries (labelled by the deferring
    # sensor), the poll sensor's and the fan-out's
    assert {
        "resolve_game_day",
        "claim_batch",
        "check_batch_status",
        "wait_for_phase4_event",
        "phase4_readiness-wait_for_phase4_ready",
        "fan_out_requests",
        "record_batch_run",
    } <= tasks, tasks
    # The jobs before the fan-out (issue 26: a happy run's BigQuery jobs are budgeted): the game day with the date's
    # batches in one job (resolve_game_day), then the running row (claim_batch); the claims with the dedup coverage
    # in one job; one readiness poll (this run waited for the event, so check_batch_status's readiness row is not
    # reused); and no job for the gate, which judges the poll's row.
    per_task = Counter(labels(b)["airflow-task"] for b in ours)
    assert {task: per_task[task] for task in FIRST_JOBS} == FIRST_JOBS, [
        (labels(b)["airflow-task"], query(b).strip().splitlines()[0]) for b in ours
    ]


FIRST_JOBS = {
    "resolve_game_day": 1,
    "claim_batch": 1,
    "check_batch_status": 1,
    "phase4_readiness-wait_for_phase4_ready": 1,
    "phase4_readiness-check_phase4_ready": 0,
}


def test_real_event_on_a_partial_phase4_day_then_a_rerun_skips_at_once(
    stack,
    bq,
    phase5_dag,
    drain,
    job_requests: list[dict[str, Any]],
) -> None:
    # A game day whose 06:00 PT deadline is still ahead, so a rerun that waited would wait for hours.
    day = datetime.now(UTC).date() + timedelta(days=3)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    drain(config.PHASE5_COMPLETE_LOCAL_SUBSCRIPTION)
    report = seed_day(bq, day, players=150, ready_pct=90, phase4_status="partial")
    tomorrow = real_event(day + timedelta(days=1), 80)
    poison = [
        b"[" * 5000,  # json.loads raises RecursionError
        b"\xff\xfe{not utf-8",
        real_event(day, 2, padding="x" * 1_000_000),  # a 1 MB body
        real_event(day, 2, timestamp="9999-12-31T23:59:59-23:59"),  # overflows on conversion
    ]
    # The other four Phase 4 processors publish on the same topic: acked, counted, never alerted.
    others = [other_processor_event(day, p) for p in ("PlayerDailyCacheProcessor", "TeamDefenseZoneAnalysisProcessor")]
    publish_raw(
        stack.project,
        *poison,  # before the valid event: one warning alert for the run, nothing breaks
        *others,
        real_event(day, report.players_total, feature_version="v2_enhanced_47"),
        tomorrow,  # the next day's early event: left for its own run
    )
    job_requests.clear()  # the seeding above is the test's, not the DAG's
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day)
    assert state == "success", tasks
    assert_every_job_of_the_dag_is_labelled(job_requests, day)
    job_requests.clear()
    assert tasks["hand_off_to_phase6"] == "success"
    assert worker.stats.received == report.players_ready == 135
    assert set(active_predictions(bq, day).values()) == {1}
    assert len(active_predictions(bq, day)) == 135
    [row] = run_history(bq, day)
    assert (row["status"], row["triggered_by"], row["trigger_source"]) == ("success", "pubsub", "pubsub")
    # The coordinator's names, which the platform's monitoring reads (docs/platform.md §4).
    assert (row["processor_name"], row["phase"], row["skipped"]) == (
        "PredictionCoordinator",
        "phase_5_predictions",
        False,
    )
    assert (row["records_processed"], row["records_skipped"]) == (135, 0)
    assert row["trigger_message_data"]["feature_version"] == "v2_enhanced_47"
    assert row["processed_at"] >= row["started_at"]
    figures = row["summary"]
    assert (figures["players_ready"], figures["players_total"], figures["requests_published"]) == (135, 150, 135)
    assert (figures["phase4_status"], figures["completion_pct"], figures["degraded"]) == ("partial", 100.0, False)
    assert (figures["expected"], figures["completed"], figures["correlation_id"]) == (135, 135, f"corr{day:%m%d}")
    assert figures["phase4_other_messages"] == {"PlayerDailyCacheProcessor": 1, "TeamDefenseZoneAnalysisProcessor": 1}
    # The workers only staged; the DAG consolidated every staged row and removed the staging tables.
    assert figures["total_predictions"] == 135
    assert staging_tables_of(bq, figures["batch_id"]) == []
    assert worker.stats.staged_requests == 135
    assert figures["event_received_at"] <= figures["first_request_at"] <= figures["batch_completed_at"]
    [warning] = alerts(bq, day)
    assert warning["severity"] == "warning"
    assert "4 unusable Phase 4 event" in warning["message"]
    assert (row["alert_sent"], row["alert_type"]) == (True, "warning")

    # A rerun before the deadline: dedup first, so it is skipped at once instead of waiting for an event.
    started = time.monotonic()
    state, tasks = run_dag(phase5_dag, day, event_wait_seconds=None)
    assert state == "success"
    assert time.monotonic() - started < 120
    assert tasks["wait_for_phase4_event"] == "skipped"
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []
    _first, second = run_history(bq, day)
    assert (second["status"], second["skipped"], second["skip_reason"]) == ("skipped", True, "already_processed")
    assert second["records_processed"] == 0

    # Phase 6 heard of the batch once: the dedup rerun's hand-off was skipped (no message, no asset event).
    assert tasks["hand_off_to_phase6"] == "skipped"
    [handed_off] = [json.loads(m.data) for m in drain(config.PHASE5_COMPLETE_LOCAL_SUBSCRIPTION)]
    assert (handed_off["game_date"], handed_off["status"], handed_off["phase"]) == (
        day.isoformat(),
        "success",
        "phase_5_predictions",
    )
    assert handed_off["execution_id"] == figures["batch_id"]
    assert handed_off["correlation_id"] == f"corr{day:%m%d}"  # Phase 4's correlation id
    assert (handed_off["record_count"], handed_off["metadata"]["completion_pct"]) == (135, 100.0)

    # The next day's early event starts that day on the pubsub path.
    seed_day(bq, day + timedelta(days=1), players=80, ready_pct=90)
    with running_worker(stack.project):
        state, tasks = run_dag(phase5_dag, day + timedelta(days=1))
    assert state == "success", tasks
    [next_day] = run_history(bq, day + timedelta(days=1))
    assert next_day["triggered_by"] == "pubsub"


def test_a_happy_run_spends_one_job_on_the_fan_out_one_on_the_straggler_poll_and_one_on_consolidation(
    stack, bq, phase5_dag, drain, job_requests: list[dict[str, Any]]
) -> None:
    """issue 26's budget: with no event wait, the readiness wait's first try reuses check_batch_status's
    readiness row and the gate the wait's (no job for either). From the fan-out on: the fan-out reads its
    one-batch guard and the players in one query; the straggler wait's first poll comes an interval after
    the publish, and reads the staged players in the coverage query itself; consolidation is one MERGE.
    What the verdict and the later rounds need, they reuse (no job)."""
    from collections import Counter

    day = date(2025, 10, 19)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=120, ready_pct=100)
    job_requests.clear()  # the seeding above is the test's, not the DAG's
    with running_worker(stack.project):
        state, tasks = run_dag(
            phase5_dag, day, skip_event_wait=True, poll_interval_seconds=10, straggler_wait_minutes=1
        )
    assert state == "success", tasks
    jobs = Counter(labels(b)["airflow-task"] for b in dag_jobs(job_requests))
    assert len(active_predictions(bq, day)) == 120
    no_event_wait = {**FIRST_JOBS, "phase4_readiness-wait_for_phase4_ready": 0}
    assert {task: jobs[task] for task in FIRST_JOBS} == no_event_wait, jobs
    downstream = {task: n for task, n in jobs.items() if task.startswith(("fan_out", "retry_stragglers"))}
    assert downstream == {
        "fan_out_requests": 1,
        "retry_stragglers-wait_for_predictions_1": 1,
        "retry_stragglers-consolidate_predictions": 1,
    }, jobs


def test_no_event_takes_the_backup_path(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 11, 4)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    seed_day(bq, day, players=80, ready_pct=90)
    with running_worker(stack.project):
        state, tasks = run_dag(phase5_dag, day, event_wait_seconds=3)
    assert state == "success", tasks
    [row] = run_history(bq, day)
    assert (row["status"], row["triggered_by"], row["trigger_source"]) == ("success", "scheduler_backup", "scheduler")
    assert row["summary"]["requests_published"] == 72
    assert row["summary"]["event_received_at"] is None


def test_degraded_day_proceeds_with_the_ready_players(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 11, 13)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=200, ready_pct=35)  # 70 ready: under 80 % and under 100, but 50 or more
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, phase4_wait_minutes=0.05)
    assert state == "success", tasks
    assert worker.stats.received == 70
    assert len(active_predictions(bq, day)) == 70
    [warning] = alerts(bq, day)
    assert warning["severity"] == "warning"
    assert "proceeding with 70/200 ready (35.0 %)" in warning["message"]
    [row] = run_history(bq, day)
    assert (row["status"], row["summary"]["degraded"], row["dependency_check_passed"]) == ("success", True, True)


def test_off_day_ends_cleanly_without_alert(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 11, 9)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day - timedelta(days=1), players=40)  # games the day before: the schedule is alive
    seed_day(bq, day, games=False)
    state, tasks = run_dag(phase5_dag, day)
    assert state == "success"
    assert tasks["wait_for_phase4_event"] == "skipped"
    assert tasks["fan_out_requests"] == "skipped"
    assert tasks["record_batch_run"] == "success"
    [row] = run_history(bq, day)
    assert (row["status"], row["skip_reason"], row["summary"]["outcome"]) == ("skipped", "no_data", "no_games")
    assert alerts(bq, day) == []
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []


def test_schedule_outage_warns_and_lets_the_gates_decide(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 4, 20)  # no test seeds a date within 14 days of this one (and it is after start_date)
    seed_day(bq, day, players=80, ready_pct=90)
    delete_date(bq, config.SCHEDULE_TABLE, "game_date", day)  # features and Phase 4 ran; no schedule at all
    with running_worker(stack.project):
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert state == "success", tasks
    [warning] = alerts(bq, day)
    assert warning["severity"] == "warning"
    assert "no games within 14 days" in warning["message"]
    [row] = run_history(bq, day)
    assert (row["status"], row["summary"]["schedule_outage"]) == ("success", True)


@pytest.mark.parametrize(
    ("day", "seed", "words"),
    [
        (date(2025, 11, 10), {"players": 100, "ready_pct": 40}, "40/100 players ready (40.0 %)"),
        (
            date(2025, 11, 12),
            {"players": 450, "ready_pct": 93, "phase4_run": False},
            "MLFeatureStoreProcessor has not run",
        ),
    ],
    ids=["40-ready", "no-run-row"],
)
def test_phase4_not_ready_fails_with_one_critical_alert(stack, bq, phase5_dag, drain, day, seed, words) -> None:
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, **seed)
    # A bounded wait (here a few seconds of polling), then the gate.
    state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, phase4_wait_minutes=0.05)
    assert state == "failed"
    assert tasks["phase4_readiness.check_phase4_ready"] == "failed"
    assert tasks["fan_out_requests"] == "upstream_failed"
    [alert] = alerts(bq, day)
    assert alert["severity"] == "critical"
    assert words in alert["message"]
    assert "[" not in alert["message"]  # words, not the check's list of booleans
    [row] = run_history(bq, day)
    assert (row["status"], row["records_processed"], row["alert_type"]) == ("failed", 0, "critical")
    assert row["dependency_check_passed"] is False or row["dependency_check_passed"] is None
    assert requested_for(day) == []


def test_forty_missing_players_are_the_only_ones_republished(
    stack,
    bq,
    phase5_dag,
    drain,
) -> None:
    day = date(2025, 11, 7)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=450, ready_pct=93.34)
    ready = ready_players(bq, day)
    write_predictions(bq, day, ready[:380])
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert state == "success", tasks
    assert worker.stats.received == 40
    [row] = run_history(bq, day)
    # records_processed is the players predicted, as the coordinator counted them: the 380 and the 40.
    assert (row["status"], row["triggered_by"], row["records_processed"]) == ("success", "manual", 420)
    assert row["summary"]["requests_published"] == 40
    assert len(active_predictions(bq, day)) == 420


def test_worker_drops_are_filled_by_a_straggler_round(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 11, 8)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=200, ready_pct=90)
    with running_worker(stack.project, drop_rate=0.1, seed=7) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert state == "success", tasks
    dropped = set(worker.stats.dropped_ids)
    assert dropped
    [row] = run_history(bq, day)
    figures = row["summary"]
    assert (row["status"], figures["completion_pct"], figures["straggler_rounds"]) == ("success", 100.0, 1)
    assert figures["requests_published"] == 180 + len(dropped)
    assert dropped <= {request_id(day, p) for p in ready_players(bq, day)}


def test_deleted_trigger_subscription_takes_the_backup_path_and_provision_restores_it(
    stack,
    bq,
    phase5_dag,
) -> None:
    from nba_phase5.bigquery.clients import subscriber_client
    from nba_phase5_local.provisioning import provision

    day = date(2025, 11, 14)
    seed_day(bq, day, players=80, ready_pct=90)
    subscriber = subscriber_client()
    path = subscriber.subscription_path(stack.project, config.PHASE5_TRIGGER_SUBSCRIPTION)
    subscriber.delete_subscription(subscription=path)  # the plan's rollback step
    try:
        with running_worker(stack.project):
            # The run warns at once, then keeps trying until its deadline: the backup path belongs there.
            started = time.monotonic()
            state, tasks = run_dag(phase5_dag, day, event_wait_seconds=20)
            assert time.monotonic() - started >= 20
        assert state == "success", tasks
        [row] = run_history(bq, day)
        assert (row["status"], row["triggered_by"]) == ("success", "scheduler_backup")
        [warning] = alerts(bq, day)
        assert warning["severity"] == "warning"
        assert config.PHASE5_TRIGGER_SUBSCRIPTION in warning["message"]
    finally:
        assert f"subscription {config.PHASE5_TRIGGER_SUBSCRIPTION}" in provision(stack.project).created
    subscriber.get_subscription(subscription=path)


def test_worker_outage_fails_the_run_with_a_critical_alert(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 11, 15)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=60, ready_pct=100)
    # No worker at all: every request goes unanswered through both straggler rounds.
    state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, straggler_wait_minutes=0.05)
    assert state == "failed"
    assert tasks["retry_stragglers.verify_completion"] == "failed"
    [alert] = alerts(bq, day)
    assert alert["severity"] == "critical"
    assert "0/60 players predicted" in alert["message"]
    [row] = run_history(bq, day)
    assert (row["status"], row["summary"]["completion_pct"], row["alert_type"]) == ("failed", 0.0, "critical")
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)  # the requests nobody answered


def test_the_same_event_three_times_makes_one_batch(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 11, 6)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    report = seed_day(bq, day, players=100, ready_pct=90)
    for _ in range(3):  # Phase 4 retried upstream, or Pub/Sub redelivered
        publish_raw(stack.project, real_event(day, report.players_total))
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day)
    assert state == "success", tasks
    assert sum(worker.stats.deliveries.values()) == 90  # one request per ready player, once
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []  # every copy acked (and recorded)
    [row] = run_history(bq, day)
    assert (row["triggered_by"], row["records_processed"]) == ("pubsub", 90)
    assert alerts(bq, day) == []
