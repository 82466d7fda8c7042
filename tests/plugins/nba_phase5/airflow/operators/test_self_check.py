"""The self-check's event task, offline: the probe is recorded before the task defers, and the trigger it
defers on is the package's, pointed at the probe's date and at a subscription no Phase 4 message is on."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from nba_phase5 import config
from nba_phase5.airflow import self_check
from nba_phase5.airflow.operators.self_check import Phase4EventTriggerCheckOperator


class _Hook:
    project_id = "p"

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


def test_it_records_the_probe_then_defers_on_the_phase4_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger

    steps: list[str] = []
    monkeypatch.setattr("nba_phase5.airflow.hooks.bigquery.Phase5BigQueryHook", _Hook)
    monkeypatch.setattr(self_check, "record_probe", lambda hook: steps.append(f"record with {type(hook).__name__}"))
    task = Phase4EventTriggerCheckOperator(task_id=self_check.EVENT_TASK, wait_seconds=30)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    assert steps == ["record with _Hook"]
    trigger = deferred.value.trigger
    assert isinstance(trigger, Phase4EventTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert trigger.subscription == self_check.UNUSED_SUBSCRIPTION != config.PHASE5_TRIGGER_SUBSCRIPTION
    assert (trigger.project_id, trigger.game_date) == ("p", self_check.PROBE_DATE.isoformat())
    classpath, _ = trigger.serialize()
    assert classpath == "nba_phase5.airflow.triggers.phase4_event.Phase4EventTrigger"  # what the triggerer imports


def test_resuming_judges_the_trigger_event() -> None:
    task = Phase4EventTriggerCheckOperator(task_id=self_check.EVENT_TASK)
    found = {"status": "event", "message_id": self_check.PROBE_MESSAGE_ID, "pulls": 0}
    assert task.execute_complete({}, found)["message_id"] == self_check.PROBE_MESSAGE_ID
    with pytest.raises(self_check.SelfCheckError):
        task.execute_complete({}, {"status": "unavailable", "reason": "NotFound", "pulls": 0})
