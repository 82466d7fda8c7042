"""The poll sensor: done, stalled (settle), timed out, or reused from an earlier complete poll."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from helpers import XComTI
from nba_phase5.airflow.operators.bigquery_wait import DEADLINE_KEY, BigQueryWaitOperator


class CountingHook:
    """Stands in for the BigQuery hook where the sensor looks it up: scripted rows, counted calls."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.calls = 0

    def query_rows(self, sql: str, params: Any) -> list[dict[str, Any]]:
        row = self.rows[min(self.calls, len(self.rows) - 1)]
        self.calls += 1
        return [row]


def sensor(hook: CountingHook, **kwargs: Any) -> BigQueryWaitOperator:
    task = BigQueryWaitOperator(task_id="wait", sql="SELECT 1", max_wait_minutes=30, **kwargs)
    task.__dict__["hook"] = hook  # the cached_property the sensor reads
    return task


def resume(task: BigQueryWaitOperator, ti: XComTI, times: int) -> dict[str, Any] | None:
    from airflow.sdk.exceptions import TaskDeferred

    result = None
    for _ in range(times):
        try:
            result = task.execute_complete({"ti": ti})
        except TaskDeferred:
            continue
        return result
    return result


def settled(task: BigQueryWaitOperator, polls: int) -> dict[str, Any]:
    """Start the wait (it defers), resume it up to ``polls`` times; it must end settled."""
    from airflow.sdk.exceptions import TaskDeferred

    ti = XComTI("wait")
    with pytest.raises(TaskDeferred):
        task.execute({"ti": ti})
    result = resume(task, ti, polls)
    assert result is not None
    assert result["settled"] is True
    return result


def test_settles_after_polls_without_progress() -> None:
    rows = [{"done": False, "requests_done": n} for n in (10, 400, 409, 409, 409, 409)]
    hook = CountingHook(rows)
    result = settled(sensor(hook, progress_column="requests_done", settle_polls=3), 10)
    assert result["requests_done"] == 409
    assert hook.calls == 6  # 10, 400, 409 and three more polls at 409


def test_without_settle_it_waits_for_the_deadline() -> None:
    hook = CountingHook([{"done": False, "requests_done": 5}])
    task = sensor(hook)
    ti = XComTI("wait")
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred):
        task.execute({"ti": ti})
    assert resume(task, ti, 5) is None  # still deferring: no settle, deadline 30 min away
    ti.xcom_push(DEADLINE_KEY, "2000-01-01T00:00:00+00:00")
    result = task.execute_complete({"ti": ti})
    assert result is not None
    assert result["timed_out"] is True


def test_reuses_an_earlier_complete_poll_without_a_query() -> None:
    hook = CountingHook([{"done": False}])
    ti = XComTI("wait_2", {})
    result = sensor(hook, earlier_result={"done": True, "requests_done": 418}).execute({"ti": ti})
    assert result == {"done": True, "requests_done": 418, "reused": True}
    assert hook.calls == 0


def test_an_incomplete_earlier_poll_is_not_reused() -> None:
    hook = CountingHook([{"done": True, "requests_done": 418}])
    ti = XComTI("wait_2", {})
    result = sensor(hook, earlier_result={"done": False, "settled": True}).execute({"ti": ti})
    assert result is not None
    assert result["done"] is True
    assert hook.calls == 1


READY = {
    "done": True,
    "phase4_ran": True,
    "can_proceed": True,
    "phase4_processed_at": datetime(2026, 12, 1, 9, tzinfo=UTC),
}


def first_try(try_number: int = 1) -> XComTI:
    ti = XComTI("wait", {})
    ti.try_number = try_number
    return ti


def test_a_first_try_returns_a_ready_first_poll_without_a_query() -> None:
    hook = CountingHook([{"done": False}])
    result = sensor(hook, first_poll=READY).execute({"ti": first_try()})
    # The row as a poll would return it (timestamps as ISO, the gate's columns kept), marked reused.
    assert result == {
        **READY,
        "phase4_processed_at": "2026-12-01T09:00:00+00:00",
        "timed_out": False,
        "settled": False,
        "reused": True,
    }
    assert hook.calls == 0


@pytest.mark.parametrize(
    ("first_poll", "try_number"),
    [({"done": False, "phase4_ran": True}, 1), (None, 1), ({}, 1), (READY, 2)],
    ids=["not-done", "none", "empty", "retry"],
)
def test_the_wait_polls_when_the_first_poll_is_not_ready_or_on_a_retry(first_poll: Any, try_number: int) -> None:
    hook = CountingHook([{"done": True, "phase4_ran": True, "can_proceed": True}])
    result = sensor(hook, first_poll=first_poll).execute({"ti": first_try(try_number)})
    assert result is not None
    assert "reused" not in result
    assert hook.calls == 1


def test_quiet_polls_do_not_settle_the_wait_while_requests_are_in_flight() -> None:
    """A worker slow to start: nothing moves, but requests are in flight, so the wait goes on."""
    in_flight = [{"done": False, "players_complete": 0, "players_in_flight": 200}] * 6
    landed = [{"done": False, "players_complete": 190, "players_in_flight": 0}] * 4
    hook = CountingHook(in_flight + landed)
    task = sensor(hook, progress_column="players_complete", settle_polls=3, settle_blocked_by="players_in_flight")
    result = settled(task, 20)
    assert result["players_complete"] == 190
    # Six quiet polls in flight did not count; the settle came three quiet polls after they landed.
    assert hook.calls == 10


def test_a_delayed_wait_defers_one_interval_before_its_first_poll() -> None:
    """Right after a fan-out the workers cannot have answered: the first poll comes an interval later."""
    from airflow.sdk.exceptions import TaskDeferred

    hook = CountingHook([{"done": True}])
    task = sensor(hook, poll_interval_seconds=60, delay_first_poll=True)
    ti = XComTI("wait")
    with pytest.raises(TaskDeferred):
        task.execute({"ti": ti})
    assert hook.calls == 0
    result = task.execute_complete({"ti": ti})
    assert result is not None
    assert (result["done"], hook.calls) == (True, 1)


def test_a_delayed_short_wait_sleeps_one_interval_before_its_first_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[Any] = []
    hook = CountingHook([{"done": True}])
    real_query = hook.query_rows
    monkeypatch.setattr(hook, "query_rows", lambda sql, params: steps.append("poll") or real_query(sql, params))
    monkeypatch.setattr("nba_phase5.airflow.operators.bigquery_wait.time.sleep", lambda s: steps.append(("sleep", s)))
    result = sensor(hook, poll_interval_seconds=10, delay_first_poll=True).execute({"ti": XComTI("wait")})
    assert result is not None
    assert steps == [("sleep", 10.0), "poll"]


class StagedHook(CountingHook):
    """A hook whose prediction-state SQL names the staging tables it was asked for."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__(rows)
        self.rendered: list[tuple[str, list[str], bool]] = []
        self.queries: list[str] = []

    def prediction_state_sql(self, template: str, batch_ids: list[str], *, force: bool = False) -> str:
        self.rendered.append((template, batch_ids, force))
        return f"-- {template} over the staging tables of {batch_ids} (#{len(self.rendered)})"

    def query_rows(self, sql: str, params: Any) -> list[dict[str, Any]]:
        self.queries.append(sql)
        return super().query_rows(sql, params)


def test_each_poll_reads_the_staged_players_in_its_own_one_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a batch, every poll renders the template anew with the staging tables there are by then (a
    worker creates one per request), and that one query is the poll's only job."""
    monkeypatch.setattr("nba_phase5.airflow.operators.bigquery_wait.time.sleep", lambda s: None)
    hook = StagedHook([{"done": False}, {"done": True}])
    task = BigQueryWaitOperator(
        task_id="wait",
        sql="prediction_coverage.sql",
        query_params={"force": {"type": "BOOL", "value": "true"}},
        poll_interval_seconds=1,
        staged_batches=["batch_own", "batch_dead"],
    )
    task.__dict__["hook"] = hook
    result = task.execute({"ti": XComTI("wait")})
    assert result is not None
    assert result["done"] is True
    assert hook.rendered == [("prediction_coverage.sql", ["batch_own", "batch_dead"], True)] * 2
    assert hook.queries == [
        "-- prediction_coverage.sql over the staging tables of ['batch_own', 'batch_dead'] (#1)",
        "-- prediction_coverage.sql over the staging tables of ['batch_own', 'batch_dead'] (#2)",
    ]
