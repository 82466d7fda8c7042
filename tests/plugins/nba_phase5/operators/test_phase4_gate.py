"""The readiness gate tells "Phase 4 is not ready" from "BigQuery could not be asked".

Fast and offline: the operator's verdicts on records and trigger events, its synchronous path with a
stand-in hook, the notifier's choice of alert, and how the DAG wires them (retries, backoff, callback).
The same behaviour through whole DAG runs, with faults in the triggerer's polling, is in
``tests/reliability/test_gate_faults.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from nba_phase5.notifications import PipelineAlertNotifier
from nba_phase5.operators.phase4_gate import (
    UNAVAILABLE_MESSAGE,
    Phase4GateNotifier,
    Phase4GateOperator,
    Phase4NotReady,
    is_not_ready,
)

DAGS = Path(__file__).resolve().parents[4] / "dags"
GATE_TASK = "phase4_readiness.check_phase4_ready"


def _gate(**kwargs: Any) -> Phase4GateOperator:
    return Phase4GateOperator(
        task_id="check_phase4_ready", sql="SELECT TRUE, TRUE", use_legacy_sql=False, deferrable=True, **kwargs
    )


@pytest.mark.parametrize("records", [[True, False], [False, False], [True, 0], [], None], ids=repr)
def test_a_falsy_or_missing_row_is_a_final_not_ready(records: Any) -> None:
    with pytest.raises(Phase4NotReady) as raised:
        _gate()._validate_records(records)
    assert isinstance(raised.value, AirflowFailException)  # Airflow never retries it


def test_a_true_row_passes() -> None:
    _gate()._validate_records([True, True])


def test_trigger_events_split_into_not_ready_and_retryable_errors() -> None:
    gate = _gate()
    with pytest.raises(Phase4NotReady):
        gate.execute_complete({}, {"status": "success", "message": "Job completed", "records": [True, False]})
    with pytest.raises(Phase4NotReady):
        gate.execute_complete({}, {"status": "success", "message": "Job completed", "records": None})
    # What the trigger yields for a failed status poll, a failed result fetch or a job that ended in error.
    with pytest.raises(AirflowException, match="503") as raised:
        gate.execute_complete({}, {"status": "error", "message": "503, message='Service Unavailable'"})
    assert not isinstance(raised.value, AirflowFailException)
    gate.execute_complete({}, {"status": "success", "message": "Job completed", "records": [True, True]})


class _Job:
    def __init__(self, rows: list[list[Any]], error: dict[str, str] | None = None) -> None:
        self.job_id = "job_1"
        self.state = "DONE"
        self.error_result = error
        self.rows = rows

    def running(self) -> bool:
        return False

    def result(self) -> Any:
        return iter(self.rows)


class _TI:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _hook_inserting(monkeypatch: pytest.MonkeyPatch, insert: Any) -> None:
    """The provider's BigQueryHook, as the operator builds it, replaced by one whose insert is ``insert``."""

    class Hook:
        project_id = "p"
        location = "US"

        def __init__(self, **kwargs: Any) -> None:
            pass

        def insert_job(self, **kwargs: Any) -> Any:
            return insert()

    monkeypatch.setattr("airflow.providers.google.cloud.operators.bigquery.BigQueryHook", Hook)


def test_synchronous_path_when_the_job_is_done_at_insert(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.api_core.exceptions import ServiceUnavailable

    context: Any = {"ti": _TI()}
    _hook_inserting(monkeypatch, lambda: _Job([[True, False]]))
    with pytest.raises(Phase4NotReady):
        _gate().execute(context)
    _hook_inserting(monkeypatch, lambda: _Job([[True, True]]))
    _gate().execute(context)

    _hook_inserting(monkeypatch, lambda: _Job([], error={"reason": "backendError", "message": "try again"}))
    with pytest.raises(AirflowException, match="backendError") as job_error:
        _gate().execute(context)

    def unavailable() -> Any:
        raise ServiceUnavailable("insert: 503 backend unavailable")

    _hook_inserting(monkeypatch, unavailable)
    with pytest.raises(ServiceUnavailable) as insert_error:
        _gate().execute(context)
    assert not is_not_ready(job_error.value)
    assert not is_not_ready(insert_error.value)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every alert raised, as (severity, message), instead of writing it to BigQuery."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "nba_phase5.notifications.raise_alert",
        lambda context, severity, message, **kwargs: calls.append((severity, message)),
    )
    return calls


def _notifier() -> Phase4GateNotifier:
    # The DAG's pair, with a plain template in place of the DAG's `phase4_not_ready` macro.
    return Phase4GateNotifier(
        not_ready=PipelineAlertNotifier(
            severity="critical", message="Phase 4 is not ready: {{ params.words }}", include_exception=False
        ),
        unavailable=PipelineAlertNotifier(severity="error", message=UNAVAILABLE_MESSAGE),
    )


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (Phase4NotReady("Test failed. Results: [True, False]"), ("critical", "Phase 4 is not ready: 40/100 ready")),
        (
            AirflowException("503, message='Service Unavailable', url='http://bq/queries/job_1'"),
            ("error", f"{UNAVAILABLE_MESSAGE}: 503, message='Service Unavailable', url='http://bq/queries/job_1'"),
        ),
        (
            AirflowException("BigQuery job job_1 failed: {'reason': 'backendError'}"),
            ("error", f"{UNAVAILABLE_MESSAGE}: BigQuery job job_1 failed: {{'reason': 'backendError'}}"),
        ),
        # Another "do not retry" failure is still not a verdict on Phase 4.
        (AirflowFailException("something else"), ("error", f"{UNAVAILABLE_MESSAGE}: something else")),
        (None, ("error", UNAVAILABLE_MESSAGE)),  # killed from outside: no exception at all
    ],
    ids=["not-ready", "poll-503", "job-error", "other-fail", "no-exception"],
)
def test_the_notifier_picks_one_alert_by_the_exception(
    recorded: list[tuple[str, str]], exception: BaseException | None, expected: tuple[str, str]
) -> None:
    _notifier()({"params": {"words": "40/100 ready"}, "exception": exception})
    assert recorded == [expected]


def test_the_notifier_renders_afresh_for_each_failure(recorded: list[tuple[str, str]]) -> None:
    notifier = _notifier()  # one object serves every failure of the task in a process
    notifier({"params": {"words": "40/100 ready"}, "exception": Phase4NotReady("no")})
    notifier({"params": {"words": "10/100 ready"}, "exception": Phase4NotReady("no")})
    notifier({"params": {"words": "10/100 ready"}, "exception": RuntimeError("reset")})
    assert recorded == [
        ("critical", "Phase 4 is not ready: 40/100 ready"),
        ("critical", "Phase 4 is not ready: 10/100 ready"),
        ("error", f"{UNAVAILABLE_MESSAGE}: reset"),
    ]


@pytest.fixture(scope="module")
def gate_task() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags["nba_phase5_predictions"].get_task(GATE_TASK)


def test_the_dag_gate_retries_bigquery_errors_within_the_sla(gate_task: Any) -> None:
    from airflow.providers.google.cloud.operators.bigquery import BigQueryCheckOperator

    assert isinstance(gate_task, Phase4GateOperator)
    assert (gate_task.deferrable, gate_task.use_legacy_sql) == (True, False)
    assert gate_task.template_fields == BigQueryCheckOperator.template_fields  # kept: sql, query_params, …
    retries = gate_task.retries
    assert retries is not None
    assert retries >= 3
    # A multiplier: True would mean 1.0, a constant delay.
    assert gate_task.retry_exponential_backoff == 2.0
    # Airflow waits between 1x and 2x base * 2^(try-1) (jitter hashed per try), capped by max_retry_delay.
    longest = sum(
        (
            min(gate_task.max_retry_delay, 2 * gate_task.retry_delay * 2 ** (attempt - 1))
            for attempt in range(1, retries + 1)
        ),
        timedelta(),
    )
    assert longest <= timedelta(minutes=10), longest  # the gate sits ~30 min before the 07:00 PT SLA
    [callback] = gate_task.on_failure_callback
    assert isinstance(callback, Phase4GateNotifier)
    assert isinstance(callback.not_ready, PipelineAlertNotifier)
    assert isinstance(callback.unavailable, PipelineAlertNotifier)
    assert (callback.not_ready.severity, callback.not_ready.include_exception) == ("critical", False)
    assert "phase4_not_ready(ti, params)" in callback.not_ready.message
    assert (callback.unavailable.severity, callback.unavailable.message) == ("error", UNAVAILABLE_MESSAGE)
