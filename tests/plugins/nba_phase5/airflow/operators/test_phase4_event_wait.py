"""Which path starts the batch: the sensor's decisions that need no Pub/Sub."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from nba_phase5.airflow.operators.phase4_event_wait import Phase4EventWaitOperator
from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger
from nba_phase5_local.phase4_publisher import build_envelope


class Run:
    def __init__(self, run_type: str) -> None:
        self.run_type = run_type


def sensor(**kwargs: Any) -> Phase4EventWaitOperator:
    return Phase4EventWaitOperator(task_id="wait_for_phase4_event", game_date="2025-11-28", **kwargs)


def test_backfill_runs_do_not_wait() -> None:
    assert sensor().execute({"dag_run": Run("backfill")}) == {"triggered_by": "backfill"}


@pytest.mark.parametrize("flag", [True, "True", "true"])
def test_skip_event_wait_is_the_manual_path(flag: object) -> None:
    assert sensor(skip_wait=flag).execute({"dag_run": Run("manual")}) == {"triggered_by": "manual"}


def test_scheduled_run_defers_to_the_trigger_until_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        '{"conn_type": "google_cloud_platform", "extra": {"project": "p", "is_anonymous": true}}',
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor(skip_wait="False", wait_seconds="None").execute({"dag_run": Run("scheduled")})
    trigger = deferred.value.trigger
    assert isinstance(trigger, Phase4EventTrigger)
    assert trigger.deadline == "2025-11-28T06:00:00-08:00"  # 06:00 Pacific, the platform's backup time
    assert trigger.project_id == "p"
    assert deferred.value.method_name == "execute_complete"


def test_event_completes_on_the_pubsub_path() -> None:
    event = {
        "status": "event",
        "message_id": "7",
        "received_at": "2025-11-28T09:00:00+00:00",
        "event": {
            "event_type": "phase4_complete",
            "game_date": "2025-11-28",
            "players_ready": 420,
            "players_total": 450,
        },
        "rejected": [],
        "others": {},
    }
    result = sensor().execute_complete({}, event)
    assert result["triggered_by"] == "pubsub"
    assert result["event_received_at"] == "2025-11-28T09:00:00+00:00"
    assert (result["correlation_id"], result["execution_id"], result["others"]) == (None, None, {})
    with pytest.raises(RuntimeError, match="Unexpected"):
        sensor().execute_complete({}, {"status": "error"})


def test_the_envelope_carries_its_ids_and_the_others_counts_through() -> None:
    envelope = build_envelope(date(2025, 11, 28), record_count=450, correlation_id="4c1d9e2f")
    others = {"PlayerDailyCacheProcessor": 1, "MLFeatureStoreProcessor:failed": 1}
    event = {
        "status": "event",
        "message_id": "8",
        "received_at": "2025-11-28T09:00:00+00:00",
        "event": envelope.to_dict(),
        "pulls": 2,
        "rejected": [],
        "others": others,
    }
    result = sensor().execute_complete({}, event)
    assert result == {
        "rejected": [],
        "others": others,
        "late_phase4_events": [],
        "triggered_by": "pubsub",
        "event": envelope.to_dict(),
        "message_id": "8",
        "event_received_at": "2025-11-28T09:00:00+00:00",
        "correlation_id": "4c1d9e2f",
        "execution_id": envelope.execution_id,
    }
    assert (result["event"]["correlation_id"], result["event"]["execution_id"]) == ("4c1d9e2f", envelope.execution_id)


def test_the_plans_run_id_is_the_correlation_id_and_the_deadline_path_keeps_others() -> None:
    plan = {"event_type": "phase4_complete", "game_date": "2025-11-28", "players_ready": 1, "run_id": "r-1"}
    event = {"status": "event", "message_id": "9", "received_at": "2025-11-28T09:00:00+00:00", "event": plan}
    assert sensor().execute_complete({}, event)["correlation_id"] == "r-1"
    deadline = {"status": "deadline", "deadline": "2025-11-28T06:00:00-08:00", "pulls": 3, "rejected": []}
    others = {"PlayerCompositeFactorsProcessor": 2}
    assert sensor().execute_complete({}, {**deadline, "others": others}) == {
        "triggered_by": "scheduler_backup",
        "rejected": [],
        "others": others,
        "late_phase4_events": [],
    }


def test_late_events_of_a_finished_date_are_warned_about_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    warned: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "nba_phase5.airflow.operators.phase4_event_wait.warn", lambda ctx, kind, msg: warned.append((kind.name, msg))
    )
    finished = {"2025-11-27": datetime(2025, 11, 27, 15, 0, tzinfo=UTC)}
    monkeypatch.setattr("nba_phase5.airflow.operators.phase4_event_wait.finished_at", lambda hook, dates: finished)
    monkeypatch.setattr("nba_phase5.airflow.operators.phase4_event_wait.bigquery_hook", lambda: None)
    late = [
        {"message_id": "1", "game_date": "2025-11-27", "players": 460, "at": "2025-11-27T19:00:00+00:00"},
        {"message_id": "2", "game_date": "2025-11-27", "players": 450, "at": "2025-11-27T10:00:00+00:00"},
        {"message_id": "3", "game_date": "2025-11-26", "players": 440, "at": "2025-11-26T20:00:00+00:00"},
    ]
    deadline = {"status": "deadline", "deadline": "2025-11-28T06:00:00-08:00", "pulls": 3, "late": late}
    result = sensor().execute_complete({}, deadline)
    # Only the event published after its date's batch finished; one with no finished batch has a run to act on it.
    assert [e["message_id"] for e in result["late_phase4_events"]] == ["1"]
    [(kind, message)] = warned
    assert kind == "phase4_event_late"
    assert message.startswith("Phase 4 published the feature store again for 2025-11-27 at 2025-11-27T19:00:00")
    assert "(460 players)" in message
    assert "Trigger a run for 2025-11-27" in message


def test_unusable_events_are_one_warning_of_their_own_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "nba_phase5.airflow.operators.phase4_event_wait.warn", lambda ctx, kind, msg: warned.append((kind.name, msg))
    )
    rejected = [{"message_id": "7", "reason": "not JSON"}, {"message_id": "8", "reason": "no game_date"}]
    sensor()._report_rejected({}, rejected)
    [(kind, message)] = warned
    assert kind == "phase4_events_rejected"
    assert message.startswith("2 unusable Phase 4 event(s) on nba-phase5-trigger-sub were acked and ignored: 7: ")
