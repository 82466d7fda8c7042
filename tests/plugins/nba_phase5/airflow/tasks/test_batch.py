"""batch's tasks with fake BigQuery: check_batch_status is one query, after a cleared run's claim, and hands
Phase 4's readiness on; the degraded verdict warns."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from helpers import XComTI
from nba_phase5 import config
from nba_phase5.airflow import batch_claims
from nba_phase5.airflow.tasks import batch
from nba_phase5.bigquery.sql import render

T0, T1, T2 = "2026-12-01T05:00:00+00:00", "2026-12-01T05:10:00+00:00", "2026-12-01T05:20:00+00:00"


class Hook:
    project_id = "p"

    def get_client(self, project_id: str) -> object:
        return object()


def test_a_degraded_verdict_warns_with_its_own_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[tuple[str, str]] = []
    monkeypatch.setattr(batch, "warn", lambda context, kind, msg: warned.append((kind.name, msg)))
    context = {"ti": XComTI(config.TASKS.readiness_verdict), "params": {"phase4_wait_minutes": 30}}
    readiness = {"done": False, "players_ready": 70, "players_total": 200}
    assert batch.proceed_with_ready_players(readiness, "2025-11-28", context)["degraded"] is True
    words = "Phase 4 not fully ready for 2025-11-28 after 30 min: proceeding with 70/200 ready (35.0 %)"
    assert warned == [("phase4_degraded", words)]
    assert batch.proceed_with_ready_players({**readiness, "done": True}, "2025-11-28", context)["degraded"] is False
    assert len(warned) == 1


class QueryHook(Hook):
    """The package's hook as check_batch_status uses it: every query answers ``row``; each is recorded."""

    def __init__(self, row: dict[str, Any], events: list[str]) -> None:
        self.row, self.events = row, events

    def query_rows(self, sql: str, params: Any) -> list[dict[str, Any]]:
        self.events.append("query " + next(n for n in ("game_day", "batch_status") if sql == render(f"{n}.sql")))
        return [dict(self.row)]


class StatusTI(XComTI):
    """check_batch_status's task instance: this run's XComs; Airflow says which runs are live, none yielded."""

    try_number = 1

    def __init__(self, live: set[str]) -> None:
        super().__init__(config.TASKS.batch_status, {})
        self.live = live

    def xcom_pull(self, task_ids: Any, key: str = "return_value", **other_run: Any) -> Any:
        return None if other_run else super().xcom_pull(task_ids, key)

    def get_dr_count(self, dag_id: str, run_ids: list[str], states: list[str]) -> int:
        return sum(run in self.live for run in run_ids)


GAME_DAY = {"game_date": "2026-12-01", "started_at": T0, "games": 7, "schedule_outage": False, "batches": []}
CLAIM = {"batch_started_at": T0, "batch_id": "batch_2026-12-01_1796101200", "staged_batches": []}
PHASE4 = {"phase4_ran": True, "players_ready": 400, "done": True, "can_proceed": True, "phase4_processed_at": None}
THRESHOLDS = {"min_ready_players": 100, "min_ready_pct": 80.0, "degraded_min_players": 50}


def status_context(ti: XComTI, *, skip_event_wait: bool, run_type: str = "manual") -> dict[str, Any]:
    params = {"force": False, "in_flight_minutes": 10, "skip_event_wait": skip_event_wait, **THRESHOLDS}
    ctx: dict[str, Any] = {"ti": ti, "run_id": "run_a", "params": params}
    ctx["dag"] = SimpleNamespace(dag_id="nba_phase5_predictions")
    ctx["dag_run"] = SimpleNamespace(run_type=run_type)
    return ctx


def claims_row(run_id: str, at: str) -> dict[str, Any]:
    """A run's claims as batch_status.sql returns them (its ``claims`` column)."""
    return {"run_id": run_id, "started_at": datetime.fromisoformat(at), "first_claimed_at": datetime.fromisoformat(at)}


@pytest.mark.parametrize(
    ("claims", "coverage", "branch"),
    [
        ([claims_row("run_b", T0), claims_row("run_a", T1)], {"done": False}, config.TASKS.concurrent_run),
        ([claims_row("run_a", T1)], {"done": True}, config.TASKS.already_complete),
        ([claims_row("run_b", T0), claims_row("run_a", T1)], {"done": True}, config.TASKS.concurrent_run),
        ([claims_row("run_dead", T0), claims_row("run_a", T1)], {"done": False}, config.TASKS.event),
    ],
    ids=["held", "complete", "held-beats-complete", "dead-holder"],
)
def test_check_batch_status_claims_first_then_reads_holder_and_coverage_in_one_query(
    monkeypatch: pytest.MonkeyPatch, claims: list[dict[str, Any]], coverage: dict[str, Any], branch: str
) -> None:
    events: list[str] = []
    monkeypatch.setattr(batch_claims, "claim_again_if_cleared", lambda context, day: events.append("claim if cleared"))
    counts = {"players_ready": 5, "players_complete": 5 if coverage["done"] else 0, "players_missing": 0}
    row = {**counts, "players_in_flight": 0, **coverage, "claims": claims, "phase4": PHASE4}
    monkeypatch.setattr(batch, "bigquery_hook", lambda: QueryHook(row, events))
    ti = StatusTI(live={"run_a", "run_b"})
    ctx = status_context(ti, skip_event_wait=False)
    assert batch.check_batch_status(GAME_DAY, CLAIM, ctx) == branch
    # A cleared run's new claim lands before the one job that reads the claims (the one-batch race).
    assert events == ["claim if cleared", "query batch_status"]
    status = ti.xcom_pull(config.TASKS.batch_status, batch.BATCH_STATUS_KEY)
    assert "claims" not in status
    assert "phase4" not in status
    assert status["state"] == {
        config.TASKS.concurrent_run: "held",
        config.TASKS.already_complete: "fully_complete",
    }.get(branch, "not_started")


@pytest.mark.parametrize(
    ("skip_event_wait", "run_type", "pushed"),
    [(True, "manual", PHASE4), (False, "backfill", PHASE4), (False, "scheduled", {}), (False, "manual", {})],
    ids=["skip-event-wait", "backfill", "scheduled-waits", "manual-waits"],
)
def test_check_batch_status_hands_the_readiness_row_to_the_wait_only_when_no_event_wait_comes_between(
    monkeypatch: pytest.MonkeyPatch, skip_event_wait: bool, run_type: str, pushed: dict[str, Any]
) -> None:
    """The readiness row comes from check_batch_status's one job, with the run's thresholds as parameters;
    a run that waits for the event gets ``{}`` (the row would be hours old), still pushed for the XComArg."""
    events: list[str] = []
    sent: list[Any] = []
    monkeypatch.setattr(batch_claims, "claim_again_if_cleared", lambda context, day: None)
    row = {"players_ready": 5, "players_complete": 0, "players_missing": 5, "done": False, "claims": []}

    class ParamsHook(QueryHook):
        def query_rows(self, sql: str, params: Any) -> list[dict[str, Any]]:
            sent.append(params)
            return super().query_rows(sql, params)

    monkeypatch.setattr(batch, "bigquery_hook", lambda: ParamsHook({**row, "phase4": PHASE4}, events))
    ti = StatusTI(live={"run_a"})
    assert batch.check_batch_status(
        GAME_DAY, CLAIM, status_context(ti, skip_event_wait=skip_event_wait, run_type=run_type)
    ) == (config.TASKS.event)
    assert events == ["query batch_status"]  # one job: no readiness query of its own
    assert ti.xcom_pull(config.TASKS.batch_status, batch.PHASE4_READINESS_KEY) == pushed
    [params] = sent
    # The thresholds as values of the run's params, never formatted into the SQL.
    assert {name: params[name]["value"] for name in THRESHOLDS} == THRESHOLDS
    assert params["phase4_processor"]["value"] == config.PHASE4_PROCESSOR
