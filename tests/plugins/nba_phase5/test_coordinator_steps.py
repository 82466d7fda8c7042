"""The plan's 15 coordinator unit tests, adapted one for one to the DAG's steps.

Each step runs its real code against the emulators with seeded data: the readiness wait, the batch
branch, the fan-out, the event trigger. Only the Airflow task instance is a stand-in (XComTI).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from helpers import XComTI, ready_players, task_context, write_predictions
from nba_phase5 import config
from nba_phase5.airflow.operators.bigquery_wait import DEADLINE_KEY, BigQueryWaitOperator
from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator
from nba_phase5.airflow.operators.phase4_event_wait import Phase4EventWaitOperator
from nba_phase5.airflow.tasks import batch
from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger
from nba_phase5.bigquery.clients import publisher_client
from nba_phase5.bigquery.sql import render
from nba_phase5.core.alert_kinds import AlertKind
from nba_phase5.core.contract import Phase4CompletionEvent
from nba_phase5.core.coverage import readiness_words
from nba_phase5.core.prediction_requests import BODY_FIELDS, request_id
from nba_phase5.core.staging import mint_batch_id
from nba_phase5_local.phase4_publisher import build_event, publish_completion_event
from nba_phase5_local.seeding import seed_day

pytestmark = pytest.mark.integration


class _AnyJsonError(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("event body is not JSON")

    __hash__ = str.__hash__


ANY_JSON_ERROR = _AnyJsonError("event body is not JSON …")


def readiness_sensor(phase5_dag: Any, day: date, max_wait_minutes: float = 0) -> BigQueryWaitOperator:
    return BigQueryWaitOperator(
        task_id="wait_for_phase4_ready",
        sql=render("phase4_readiness.sql"),
        query_params={
            "game_date": day,
            "phase4_processor": config.PHASE4_PROCESSOR,
            "phase4_ran_statuses": list(config.PHASE4_RAN_STATUSES),
            "min_ready_players": 100,
            "min_ready_pct": 80.0,
            "degraded_min_players": 50,
        },
        max_wait_minutes=max_wait_minutes,
        poll_interval_seconds=30,
    )


def fan_out(day: date, task_id: str = "fan_out_requests", **kwargs: Any) -> PredictionFanOutOperator:
    return PredictionFanOutOperator(
        task_id=task_id,
        game_date=day.isoformat(),
        batch_id=f"batch_{day}_1760000000",
        **kwargs,
    )


def ctx(task_id: str) -> dict[str, Any]:
    return {"ti": XComTI(task_id), "run_id": "test_run"}


# 1–3: _validate_phase4_ready


def test_validate_phase4_ready_success(bq, phase5_dag) -> None:
    day = date(2025, 10, 1)
    seed_day(bq, day, players=450, ready_pct=93.34)
    row = readiness_sensor(phase5_dag, day).execute(ctx("wait"))
    assert row["done"] is True
    assert (row["players_ready"], row["players_total"]) == (420, 450)
    assert round(100 * row["players_ready"] / row["players_total"], 1) == 93.3


def test_validate_phase4_ready_not_complete(bq, phase5_dag) -> None:
    day = date(2025, 10, 2)
    seed_day(bq, day, players=450, ready_pct=93.34, phase4_run=False)
    row = readiness_sensor(phase5_dag, day).execute(ctx("wait"))
    assert row["phase4_ran"] is False
    assert row["done"] is False
    assert row["timed_out"] is True


def test_validate_phase4_ready_partial_run_counts_as_ran(bq, phase5_dag) -> None:
    day = date(2025, 10, 16)
    seed_day(bq, day, players=450, ready_pct=93.34, phase4_status="partial")
    row = readiness_sensor(phase5_dag, day).execute(ctx("wait"))
    assert (row["phase4_ran"], row["phase4_status"], row["done"]) == (True, "partial", True)


def test_validate_phase4_ready_below_threshold(bq, phase5_dag) -> None:
    day = date(2025, 10, 3)
    seed_day(bq, day, players=450, ready_pct=13.34)
    row = readiness_sensor(phase5_dag, day).execute(ctx("wait"))
    assert row["players_ready"] == 60
    assert row["done"] is False  # 13.3 % and fewer than 100
    assert row["can_proceed"] is True  # 60 ≥ 50: degraded
    # 100 or more ready is ready, whatever the share.
    seed_day(bq, day, players=900, ready_pct=12)
    row = readiness_sensor(phase5_dag, day).execute(ctx("wait"))
    assert (row["players_ready"], row["done"]) == (108, True)


def test_a_small_ready_slate_passes_the_gate(bq, phase5_dag) -> None:
    day = date(2025, 10, 17)
    seed_day(bq, day, players=30, ready_pct=90)  # one game: 27 of 30 ready, under the 50-player floor
    row = readiness_sensor(phase5_dag, day).execute(ctx("wait"))
    assert (row["players_ready"], row["done"], row["can_proceed"]) == (27, True, True)


# 4–5: _wait_for_phase4


def test_wait_for_phase4_immediate(bq, phase5_dag) -> None:
    day = date(2025, 10, 4)
    seed_day(bq, day, players=100, ready_pct=90)
    # Ready on the first poll: returns at once, never defers.
    row = readiness_sensor(phase5_dag, day, max_wait_minutes=30).execute(ctx("wait"))
    assert row["done"] is True
    assert row["timed_out"] is False


def test_wait_for_phase4_timeout(bq, phase5_dag) -> None:
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
    from airflow.sdk.exceptions import TaskDeferred

    day = date(2025, 10, 5)
    seed_day(bq, day, players=100, ready_pct=90, phase4_run=False)
    sensor = readiness_sensor(phase5_dag, day, max_wait_minutes=30)
    context = ctx("wait")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)
    assert isinstance(deferred.value.trigger, TimeDeltaTrigger)
    deadline = datetime.fromisoformat(context["ti"].xcom_pull("wait", DEADLINE_KEY))
    assert timedelta(minutes=29) < deadline - datetime.now(UTC) <= timedelta(minutes=30)
    # Resumed after the 30 minutes: one more poll, then give up with the last counts.
    context["ti"].xcom_push(DEADLINE_KEY, (datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    row = sensor.execute_complete(context, event=None)
    assert row is not None
    assert row["timed_out"] is True
    assert row["phase4_ran"] is False


# 6–7: _get_batch_status


def claimed_day(day: date) -> tuple[dict[str, Any], dict[str, Any]]:
    """What resolve_game_day and claim_batch hand check_batch_status for ``day``: a game day, claimed now."""
    started = datetime.now(UTC).isoformat()
    batch_id = mint_batch_id(day, datetime.fromisoformat(started))
    game_day = {"game_date": day.isoformat(), "started_at": started, "games": 7, "schedule_outage": False}
    claim = {"batch_started_at": started, "batch_id": batch_id, "staged_batches": [batch_id]}
    return {**game_day, "batches": []}, claim


def test_get_batch_status_fully_complete(bq, phase5_dag) -> None:
    day = date(2025, 10, 6)
    seed_day(bq, day, players=100, ready_pct=90)
    write_predictions(bq, day, ready_players(bq, day))
    context = task_context(phase5_dag, "check_batch_status", day)
    assert batch.check_batch_status(*claimed_day(day), context) == config.TASKS.already_complete
    status = context["ti"].xcom_pull(config.TASKS.batch_status, batch.BATCH_STATUS_KEY)
    assert status["state"] == "fully_complete"
    assert status["players_complete"] == status["players_ready"] == 90


def test_get_batch_status_partially_complete(bq, phase5_dag) -> None:
    day = date(2025, 10, 7)
    seed_day(bq, day, players=450, ready_pct=93.34)
    write_predictions(bq, day, ready_players(bq, day)[:300])
    context = task_context(phase5_dag, "check_batch_status", day)
    assert batch.check_batch_status(*claimed_day(day), context) == config.TASKS.event
    status = context["ti"].xcom_pull(config.TASKS.batch_status, batch.BATCH_STATUS_KEY)
    assert status["state"] == "partially_complete"
    assert (status["players_complete"], status["players_ready"]) == (300, 420)


# 8: _get_players_needing_retry


def test_get_players_needing_retry(bq) -> None:
    day = date(2025, 10, 8)
    seed_day(bq, day, players=450, ready_pct=93.34)
    ready = ready_players(bq, day)
    write_predictions(bq, day, ready[:380])
    missing = fan_out(day).missing_requests()
    assert [row["player_lookup"] for row in missing] == ready[380:]
    assert all(row["game_id"].startswith("00") for row in missing)
    assert len(missing) == 40


# 9–10: _start_batch_internal


def test_start_batch_internal_deduplication(bq, phase5_dag, drain) -> None:
    day = date(2025, 10, 9)
    seed_day(bq, day, players=100, ready_pct=90)
    write_predictions(bq, day, ready_players(bq, day))
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    context = task_context(phase5_dag, "check_batch_status", day)
    assert batch.check_batch_status(*claimed_day(day), context) == config.TASKS.already_complete
    assert fan_out(day).execute(ctx("fan_out_requests"))["published"] == 0
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []


def test_start_batch_internal_phase4_not_ready_raises_critical_alert(bq, phase5_dag) -> None:
    from helpers import alerts
    from nba_phase5.airflow.notifications import PipelineAlertNotifier

    day = date(2025, 10, 10)
    seed_day(bq, day, players=100, ready_pct=40)
    row = readiness_sensor(phase5_dag, day).execute(ctx("wait"))
    assert row["players_ready"] == 40
    assert row["can_proceed"] is False
    context = task_context(phase5_dag, "phase4_readiness.check_phase4_ready", day)
    context["ti"].xcom_push("return_value", row)
    context["ti"].task_id = batch.READINESS_WAIT
    context["ti"].xcom_push("return_value", row)
    context["ti"].task_id = config.TASKS.in_group(config.TASKS.readiness_group, config.TASKS.readiness_gate)
    message = batch.phase4_not_ready_message(context["ti"], context["params"])
    notifier = PipelineAlertNotifier(kind=AlertKind.phase4_not_ready, message=message, include_exception=False)
    notifier.notify({**context, "exception": RuntimeError("Test failed: [True, False]")})
    [alert] = alerts(bq, day)
    assert alert["severity"] == "critical"
    assert alert["message"] == (
        f"Phase 4 is not ready: 40/100 players ready (40.0 %) for {day}, fewer than the 50 needed to proceed. "
        "No predictions will be made."
    )
    assert alert["task_id"] == "phase4_readiness.check_phase4_ready"


def test_not_ready_reasons_are_words() -> None:
    assert readiness_words({"phase4_ran": False}, "2025-11-28", 50) == (
        "MLFeatureStoreProcessor has not run for 2025-11-28"
    )
    assert readiness_words({"phase4_ran": True, "players_total": 0}, "2025-11-28", 50).startswith(
        "No feature records found"
    )


# 11–13: /trigger and /start


def _trigger(day: date, deadline_in: float) -> Phase4EventTrigger:
    return Phase4EventTrigger(
        project_id=config.project_id(),
        subscription=config.PHASE5_TRIGGER_SUBSCRIPTION,
        game_date=day.isoformat(),
        deadline=(datetime.now(UTC) + timedelta(seconds=deadline_in)).isoformat(),
        poke_interval=0.5,
        pull_timeout=2,
    )


async def _first_event(trigger: Phase4EventTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("trigger ended without an event")


def _publish_raw(project: str, *bodies: bytes) -> None:
    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PHASE4_COMPLETE_TOPIC)
    for body in bodies:
        publisher.publish(topic, body).result(timeout=10)


def test_trigger_endpoint_valid_message(stack, drain) -> None:
    day = date(2025, 10, 11)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    event = build_event(day, 420, 450, run_id="phase4-run-1")
    publish_completion_event(publisher_client(), stack.project, event)
    payload = asyncio.run(_first_event(_trigger(day, 20)))
    assert payload["status"] == "event"
    assert Phase4CompletionEvent.from_dict(payload["event"]) == event
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []  # acked after validation


def test_trigger_endpoint_invalid_message(stack, drain) -> None:
    day = date(2025, 10, 12)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    later = day + timedelta(days=18)  # a date no other test of the session waits for
    tomorrow = build_event(later, 1, 2)
    past = build_event(date(2025, 9, 14), 1, 2)  # before the awaited date, and a date no other test uses
    _publish_raw(
        stack.project,
        b'{"event_type":"phase4_complete","players_ready":1,"players_total":2}',  # missing game_date
        b"not json",
        past.to_json(),  # a past date: starts nothing, kept for a run waiting for that date
        tomorrow.to_json(),
    )
    payload = asyncio.run(_first_event(_trigger(day, 4)))
    assert payload["status"] == "deadline"
    # Everything was acked: the invalid ones dropped, the past date's and tomorrow's recorded in the inbox first.
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []
    # The two unusable ones are reported (the past date's event is a Phase 4 backfill, not an error).
    assert [r["reason"] for r in payload["rejected"]] == ["event is missing game_date", ANY_JSON_ERROR]
    # Each date's run finds its event in the inbox at once, without pulling: tomorrow's, and the past
    # date's (a manual rerun of it, or the staging check, waiting while today's run pulled the event).
    for waited, event in ((later, tomorrow), (past.game_date, past)):
        found = asyncio.run(_first_event(_trigger(waited, 4)))
        assert (found["status"], found["pulls"]) == ("event", 0)
        assert Phase4CompletionEvent.from_dict(found["event"]) == event


def test_start_endpoint_scheduler_trigger(stack, drain) -> None:
    day = date(2025, 10, 13)
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    # Deadline already passed and nothing waiting: exactly one pull, then the backup path.
    payload = asyncio.run(_first_event(_trigger(day, -60)))
    assert payload["status"] == "deadline"
    assert payload["pulls"] == 1
    sensor = Phase4EventWaitOperator(task_id="wait_for_phase4_event", game_date=day.isoformat())
    assert sensor.execute_complete({}, payload) == {
        "triggered_by": "scheduler_backup",
        "rejected": [],
        "others": {},
        "late_phase4_events": [],
    }
    # A deadline in the past still takes an event that is waiting.
    publish_completion_event(publisher_client(), stack.project, Phase4CompletionEvent(day, 420, 450))
    assert asyncio.run(_first_event(_trigger(day, -60)))["status"] == "event"


# 14–15: /retry


def test_retry_endpoint_no_players(bq, drain) -> None:
    day = date(2025, 10, 14)
    seed_day(bq, day, players=100, ready_pct=90)
    write_predictions(bq, day, ready_players(bq, day))
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    result = fan_out(day, task_id="republish_round_1").execute(ctx("republish_round_1"))
    assert (result["requested"], result["published"], result["players"]) == (0, 0, 0)
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []


def test_retry_endpoint_with_players(bq, drain) -> None:
    day = date(2025, 10, 15)
    seed_day(bq, day, players=450, ready_pct=93.34)
    ready = ready_players(bq, day)
    write_predictions(bq, day, ready[:380])
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    result = fan_out(day, task_id="republish_round_1").execute(ctx("republish_round_1"))
    assert (result["requested"], result["published"], result["failed"]) == (40, 40, 0)
    messages = drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    bodies = [json.loads(m.data) for m in messages]
    assert sorted(b["player_lookup"] for b in bodies) == ready[380:]
    assert {m.attributes["request_id"] for m in messages} == {request_id(day, p) for p in ready[380:]}
    assert all(list(b) == list(BODY_FIELDS) for b in bodies)  # the coordinator's body, field by field
    # No line table configured: every player is sent as the coordinator sends a player without a line.
    assert {(b["game_date"], json.dumps(b["line_values"]), b["line_source"]) for b in bodies} == {
        (day.isoformat(), "[null]", "NO_PROP_LINE")
    }
