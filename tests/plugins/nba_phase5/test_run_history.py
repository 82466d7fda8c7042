"""The run's row in the shared run history: running at start, finished at the end, never silent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from helpers import alerts, run_history, task_context
from nba_phase5 import run_history as recorder
from nba_phase5.run_history import season_year


def test_season_year_starts_in_the_autumn() -> None:
    assert season_year(date(2025, 11, 28)) == 2025
    assert season_year(date(2026, 3, 1)) == 2025
    assert season_year(date(2026, 10, 21)) == 2026


def dead_run(day: date, run_id: str) -> dict[str, object]:
    """What Airflow hands a DAG-level failure callback: no task instance, the run and a reason."""
    run = SimpleNamespace(
        run_id=run_id,
        run_type="scheduled",
        conf={"game_date": day.isoformat()},
        logical_date=datetime(day.year, day.month, day.day, 5, tzinfo=UTC),
        run_after=None,
        start_date=datetime.now(UTC) - timedelta(hours=12),
        dag_id="nba_phase5_predictions",
    )
    return {"dag_run": run, "reason": "timed_out"}


@pytest.mark.integration
def test_a_run_that_times_out_while_running_is_recorded_failed_with_one_alert(bq, phase5_dag) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 5, 20)
    context = task_context(phase5_dag, "resolve_game_day", day)
    context["ti"].xcoms[("resolve_game_day", "started_at")] = datetime.now(UTC).isoformat()
    context["run_id"] = "scheduled__timeout"
    recorder.record(context, running=True)
    assert [r["status"] for r in run_history(bq, day)] == ["running"]  # a hung run is visible

    recorder.on_run_failure(dead_run(day, "scheduled__timeout"))
    [row] = run_history(bq, day)
    assert (row["status"], row["summary"]["outcome"], row["triggered_by"]) == ("failed", "failed", "scheduler_backup")
    assert row["processed_at"] is not None
    [alert] = alerts(bq, day)
    assert alert["severity"] == "critical"
    assert "timed_out" in alert["message"]

    # Called again (or after a run whose recorder ran): nothing more is written or alerted.
    recorder.on_run_failure(dead_run(day, "scheduled__timeout"))
    assert len(alerts(bq, day)) == 1
    assert len(run_history(bq, day)) == 1


@pytest.mark.integration
def test_a_run_that_died_before_its_first_row_still_gets_one(bq) -> None:  # type: ignore[no-untyped-def]
    day = date(2025, 5, 21)
    recorder.on_run_failure(dead_run(day, "scheduled__killed"))
    [row] = run_history(bq, day)
    assert (row["status"], row["run_id"]) == ("failed", "scheduled__killed")
    assert [a["severity"] for a in alerts(bq, day)] == ["critical"]


def test_the_trigger_of_a_run_that_never_waited_reads_airflows_run_type_enum() -> None:
    from airflow.sdk.api.datamodels._generated import DagRunType  # what a task sees as dag_run.run_type

    # str(DagRunType.BACKFILL) is "DagRunType.BACKFILL": a substring test on it labelled backfills wrongly.
    assert recorder.run_trigger({"dag_run": SimpleNamespace(run_type=DagRunType.BACKFILL)}) == "backfill"
    assert recorder.run_trigger({"dag_run": SimpleNamespace(run_type=DagRunType.MANUAL)}) == "manual"
    assert recorder.run_trigger({"dag_run": SimpleNamespace(run_type=DagRunType.SCHEDULED)}) == "scheduler_backup"
