"""The readiness gate tells "Phase 4 is not ready" from "BigQuery could not be asked".

Fast and offline: the operator's verdicts on rows and trigger events, its synchronous and deferring paths
with a stand-in hook, the notifier's choice of alert, and how the DAG wires them (retries, backoff,
callback).
The same behaviour through whole DAG runs, with faults in the triggerer's polling, is in
``tests/reliability/test_gate_faults.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from nba_phase5.airflow.notifications import PipelineAlertNotifier
from nba_phase5.airflow.operators.phase4_gate import (
    UNAVAILABLE_MESSAGE,
    Phase4GateNotifier,
    Phase4GateOperator,
    Phase4NotReady,
    is_not_ready,
    verdict,
)
from nba_phase5.core.alert_kinds import AlertKind

DAGS = Path(__file__).resolve().parents[5] / "dags"
GATE_TASK = "phase4_readiness.check_phase4_ready"


def _gate(**kwargs: Any) -> Phase4GateOperator:
    return Phase4GateOperator(task_id="check_phase4_ready", sql="SELECT TRUE AS a, TRUE AS b", **kwargs)


def _done(row: dict[str, Any] | None) -> dict[str, Any]:
    return {"status": "success", "message": "BigQuery job j done", "row": row}


@pytest.mark.parametrize(
    "row", [{"ran": True, "ok": False}, {"ran": False, "ok": False}, {"ran": True, "ok": 0}, {}, None], ids=repr
)
def test_a_falsy_or_missing_row_is_a_final_not_ready(row: Any) -> None:
    with pytest.raises(Phase4NotReady) as raised:
        verdict(_done(row))
    assert isinstance(raised.value, AirflowFailException)  # Airflow never retries it


def test_a_true_row_passes_and_is_returned() -> None:
    assert verdict(_done({"ran": True, "ok": True})) == {"ran": True, "ok": True}


def test_trigger_events_split_into_not_ready_and_retryable_errors() -> None:
    gate = _gate()
    with pytest.raises(Phase4NotReady):
        gate.execute_complete({}, _done({"phase4_ran": True, "can_proceed": False}))
    with pytest.raises(Phase4NotReady):
        gate.execute_complete({}, _done(None))
    # What the trigger yields for a failed lookup or a job that ended in error.
    for message in ("ServiceUnavailable: 503 backend unavailable", "NotFound: 404 Not found: Job p:j"):
        with pytest.raises(AirflowException, match=message.split(":")[0]) as raised:
            gate.execute_complete({}, {"status": "error", "message": message})
        assert not isinstance(raised.value, AirflowFailException)
    gate.execute_complete({}, _done({"phase4_ran": True, "can_proceed": True}))


class _Job:
    """A query job as google-cloud-bigquery returns it from ``client.query``."""

    def __init__(self, rows: list[dict[str, Any]], *, state: str = "DONE", error: Exception | None = None) -> None:
        self.job_id, self.project, self.location = "job_1", "p", "us-west2"
        self.state, self.error_result, self.rows, self.error = state, None, rows, error

    def result(self, **kwargs: Any) -> Any:
        if self.error is not None:
            raise self.error
        return iter(self.rows)


class _Hook:
    """The package's hook as the gate uses it: ``start_query`` answers with ``job`` (or raises it)."""

    location = "us-west2"

    def __init__(self, job: Any) -> None:
        self.job = job

    def start_query(self, sql: str, params: Any) -> Any:
        if isinstance(self.job, Exception):
            raise self.job
        return self.job


def _gate_with(monkeypatch: pytest.MonkeyPatch, job: Any, **kwargs: Any) -> Phase4GateOperator:
    gate = _gate(**kwargs)
    gate.__dict__["hook"] = _Hook(job)  # the cached hook, without building the real one
    return gate


def test_a_job_done_at_insert_is_judged_in_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.api_core.exceptions import BadRequest, ServiceUnavailable

    with pytest.raises(Phase4NotReady):
        _gate_with(monkeypatch, _Job([{"ran": True, "ok": False}])).execute({})
    assert _gate_with(monkeypatch, _Job([{"ran": True, "ok": True}])).execute({}) == {"ran": True, "ok": True}
    with pytest.raises(BadRequest) as job_error:
        _gate_with(monkeypatch, _Job([], error=BadRequest("backendError: try again"))).execute({})
    with pytest.raises(ServiceUnavailable) as insert_error:
        _gate_with(monkeypatch, ServiceUnavailable("insert: 503 backend unavailable")).execute({})
    assert not is_not_ready(job_error.value)
    assert not is_not_ready(insert_error.value)


def test_a_running_job_defers_on_the_packages_trigger_with_the_jobs_location(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from nba_phase5.airflow.triggers.bigquery_job import BigQueryJobTrigger

    gate = _gate_with(monkeypatch, _Job([], state="RUNNING"), poll_interval=7.0)
    with pytest.raises(TaskDeferred) as deferred:
        gate.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, BigQueryJobTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert trigger.serialize() == (
        "nba_phase5.airflow.triggers.bigquery_job.BigQueryJobTrigger",
        {
            "job_id": "job_1",
            "project_id": "p",
            "location": "us-west2",
            "poll_interval": 7.0,
            "gcp_conn_id": "google_cloud_default",
        },
    )


def test_always_defer_defers_a_job_done_at_insert_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the self-check and the system test rely on to prove the triggerer runs the trigger."""
    from airflow.sdk.exceptions import TaskDeferred

    from nba_phase5.airflow.triggers.bigquery_job import BigQueryJobTrigger

    gate = _gate_with(monkeypatch, _Job([{"ran": True, "ok": True}]), always_defer=True)
    with pytest.raises(TaskDeferred) as deferred:
        gate.execute({})
    assert isinstance(deferred.value.trigger, BigQueryJobTrigger)
    assert deferred.value.trigger.location == "us-west2"
    assert gate.execute_complete({}, _done({"ran": True, "ok": True})) == {"ran": True, "ok": True}
    # Not deferrable at all: always_defer changes nothing, the task judges the job itself.
    in_task = _gate_with(monkeypatch, _Job([{"ok": True}]), always_defer=True, deferrable=False)
    assert in_task.execute({}) == {"ok": True}


class _Try:
    """A task instance on its ``try_number``-th try (a clear starts a new try too)."""

    def __init__(self, try_number: int) -> None:
        self.try_number = try_number


# The readiness wait's last row (phase4_readiness.sql's columns and the wait's own), as its XComArg resolves.
WAIT_ROW = {"phase4_ran": True, "done": False, "players_ready": 60, "can_proceed": True, "timed_out": True}


def test_a_first_try_judges_the_waits_row_without_a_query(monkeypatch: pytest.MonkeyPatch) -> None:
    no_query = RuntimeError("the first try must not ask BigQuery again")
    gate = _gate_with(monkeypatch, no_query, readiness=WAIT_ROW)
    assert gate.execute({"ti": _Try(1)}) == {"phase4_ran": True, "can_proceed": True}
    # The same verdicts as the query's: a "no" is final (the critical alert), never retried.
    for row in ({**WAIT_ROW, "can_proceed": False}, {**WAIT_ROW, "phase4_ran": False, "can_proceed": False}):
        with pytest.raises(Phase4NotReady):
            _gate_with(monkeypatch, no_query, readiness=row).execute({"ti": _Try(1)})


def test_a_retry_or_a_missing_row_asks_bigquery_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.api_core.exceptions import ServiceUnavailable

    # A retry (or a clear) queries, even though the wait's row said yes: the answer is the query's.
    retry = _gate_with(monkeypatch, _Job([{"phase4_ran": True, "can_proceed": False}]), readiness=WAIT_ROW)
    with pytest.raises(Phase4NotReady):
        retry.execute({"ti": _Try(2)})
    with pytest.raises(ServiceUnavailable):  # and its errors are retryable, as the query's always were
        _gate_with(monkeypatch, ServiceUnavailable("insert: 503"), readiness=WAIT_ROW).execute({"ti": _Try(3)})
    # No row, or a row without the gate's columns (another query's): the gate queries on the first try too.
    for readiness in (None, {"done": True}, [WAIT_ROW]):
        gate = _gate_with(monkeypatch, _Job([{"phase4_ran": True, "can_proceed": False}]), readiness=readiness)
        with pytest.raises(Phase4NotReady):
            gate.execute({"ti": _Try(1)})


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every alert raised, as (kind name, message), instead of writing it to BigQuery."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "nba_phase5.airflow.notifications.send_alert",
        lambda context, kind, message, **kwargs: calls.append((kind.name, message)),
    )
    return calls


def _notifier() -> Phase4GateNotifier:
    # The DAG's pair, with a plain template in place of the DAG's `phase4_not_ready` macro.
    return Phase4GateNotifier(
        not_ready=PipelineAlertNotifier(
            kind=AlertKind.phase4_not_ready, message="Phase 4 is not ready: {{ params.words }}", include_exception=False
        ),
        unavailable=PipelineAlertNotifier(kind=AlertKind.gate_unavailable, message=UNAVAILABLE_MESSAGE),
    )


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (
            Phase4NotReady("Test failed. Results: [True, False]"),
            ("phase4_not_ready", "Phase 4 is not ready: 40/100 ready"),
        ),
        (
            AirflowException("503, message='Service Unavailable', url='http://bq/queries/job_1'"),
            (
                "gate_unavailable",
                f"{UNAVAILABLE_MESSAGE}: 503, message='Service Unavailable', url='http://bq/queries/job_1'",
            ),
        ),
        (
            AirflowException("BigQuery job job_1 failed: {'reason': 'backendError'}"),
            ("gate_unavailable", f"{UNAVAILABLE_MESSAGE}: BigQuery job job_1 failed: {{'reason': 'backendError'}}"),
        ),
        # Another "do not retry" failure is still not a verdict on Phase 4.
        (AirflowFailException("something else"), ("gate_unavailable", f"{UNAVAILABLE_MESSAGE}: something else")),
        (None, ("gate_unavailable", UNAVAILABLE_MESSAGE)),  # killed from outside: no exception at all
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
        ("phase4_not_ready", "Phase 4 is not ready: 40/100 ready"),
        ("phase4_not_ready", "Phase 4 is not ready: 10/100 ready"),
        ("gate_unavailable", f"{UNAVAILABLE_MESSAGE}: reset"),
    ]


@pytest.fixture(scope="module")
def gate_task() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags["nba_phase5_predictions"].get_task(GATE_TASK)


def test_the_dag_gate_retries_bigquery_errors_within_the_sla(gate_task: Any) -> None:
    assert isinstance(gate_task, Phase4GateOperator)
    assert gate_task.deferrable is True
    assert gate_task.location is None  # the package's setting, read when the task runs
    assert "game_date" in gate_task.query_params  # typed parameters, never formatted into the SQL
    # The wait's return value (an XComArg, not a pull by task id): the first try judges it without a query.
    readiness = gate_task.readiness
    assert (readiness.operator.task_id, readiness.key) == ("phase4_readiness.wait_for_phase4_ready", "return_value")
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
    assert (callback.not_ready.kind, callback.not_ready.include_exception) == (AlertKind.phase4_not_ready, False)
    assert AlertKind.phase4_not_ready.severity == "critical"
    assert "phase4_not_ready(ti, params)" in callback.not_ready.message
    assert (callback.unavailable.kind, callback.unavailable.message) == (
        AlertKind.gate_unavailable,
        UNAVAILABLE_MESSAGE,
    )
    assert AlertKind.gate_unavailable.severity == "error"
