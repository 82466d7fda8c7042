"""The run's row in the shared run history: running at start, finished at the end, never silent."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from helpers import alerts, run_history
from nba_phase5.airflow.tasks import run_history as recorder
from nba_phase5.core.run_facts import RunFacts
from nba_phase5.core.states import RunStatus, TriggeredBy, triggered_by_run_type


def test_the_rows_season_year_is_the_platforms() -> None:
    # September is still the season before (game_day.season_year, the platform's rule): 2025-26 → 2025.
    started = datetime(2026, 9, 15, 5, tzinfo=UTC)
    row = recorder.production_row(
        run_id="r",
        day=date(2026, 9, 15),
        status=RunStatus.RUNNING,
        triggered_by=TriggeredBy.MANUAL,
        started=started,
        finished=None,
        force=False,
        figures={},
    )
    assert row["season_year"] == 2025


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
def test_a_run_that_times_out_while_running_is_recorded_failed_with_one_alert(bq, phase5_dag) -> None:
    day = date(2025, 5, 20)
    facts = RunFacts(
        run_id="scheduled__timeout",
        triggered_by=TriggeredBy.SCHEDULER_BACKUP,
        force=False,
        game_day={"game_date": day.isoformat(), "started_at": datetime.now(UTC).isoformat()},
        claim={"batch_id": "batch_2025-05-20_1747717200"},
    )
    recorder.record(facts, running=True)
    assert [r["status"] for r in run_history(bq, day)] == ["running"]  # a hung run is visible

    recorder.on_run_failure(dead_run(day, "scheduled__timeout"))
    [row] = run_history(bq, day)
    assert (row["status"], row["summary"]["outcome"], row["triggered_by"]) == ("failed", "failed", "scheduler_backup")
    assert row["processed_at"] is not None
    # The batch id survives: the pointer to the staging tables the run leaves behind.
    assert (row["summary"]["batch_id"], row["summary"]["correlation_id"]) == ("batch_2025-05-20_1747717200",) * 2
    [alert] = alerts(bq, day)
    assert alert["severity"] == "critical"
    assert "timed_out" in alert["message"]
    assert "batch_2025-05-20_1747717200" in alert["message"]

    # Called again (or after a run whose recorder ran): nothing more is written or alerted.
    recorder.on_run_failure(dead_run(day, "scheduled__timeout"))
    assert len(alerts(bq, day)) == 1
    assert len(run_history(bq, day)) == 1


@pytest.mark.integration
def test_a_run_that_died_before_its_first_row_still_gets_one(bq) -> None:
    day = date(2025, 5, 21)
    recorder.on_run_failure(dead_run(day, "scheduled__killed"))
    [row] = run_history(bq, day)
    assert (row["status"], row["run_id"]) == ("failed", "scheduled__killed")
    assert [a["severity"] for a in alerts(bq, day)] == ["critical"]


def test_the_trigger_of_a_run_that_never_waited_reads_airflows_run_type_enum() -> None:
    from airflow.sdk.api.datamodels._generated import DagRunType  # what a task sees as dag_run.run_type

    # str(DagRunType.BACKFILL) is "DagRunType.BACKFILL": a substring test on it labelled backfills wrongly.
    assert triggered_by_run_type(DagRunType.BACKFILL) is TriggeredBy.BACKFILL
    assert triggered_by_run_type(DagRunType.MANUAL) is TriggeredBy.MANUAL
    assert triggered_by_run_type(DagRunType.SCHEDULED) is TriggeredBy.SCHEDULER_BACKUP


def _finished_run(day: date) -> RunFacts:
    """The facts of a run that fanned out, consolidated and verified."""
    batch = f"batch_{day}_1764306003"
    event = {"game_date": day.isoformat(), "processor_name": "MLFeatureStoreProcessor", "correlation_id": "4f2a9c1e"}
    return RunFacts(
        run_id="scheduled__finished",
        triggered_by=TriggeredBy.SCHEDULER_BACKUP,
        force=False,
        game_day={"game_date": day.isoformat(), "games": 7, "started_at": datetime.now(UTC).isoformat()},
        claim={"batch_id": batch},
        event={"triggered_by": "pubsub", "event": event, "message_id": "9", "correlation_id": "4f2a9c1e"},
        verdict={"players_ready": 120, "players_total": 130},
        fan_out={"published": 120, "batch_id": batch},
        consolidation={"rows_affected": 118, "staging_tables": 3},
        verify={"players_ready": 120, "players_complete": 118, "players_missing": 2, "completion_pct": 98.33},
    )


def test_the_row_is_the_coordinators_as_the_platforms_monitoring_reads_it() -> None:
    """predictions/coordinator/run_history.py 52-57, 132-165, 217-259 (docs/platform.md §4): the names the
    daily health e-mail filters on (processor_name LIKE 'Prediction%'), the counts and the summary keys."""
    day = date(2025, 5, 22)
    row = recorder.build_row(_finished_run(day))
    assert (row["processor_name"], row["phase"]) == ("PredictionCoordinator", "phase_5_predictions")
    assert (row["output_dataset"], row["output_table"]) == ("nba_predictions", "player_prop_predictions")
    assert (row["status"], row["records_processed"], row["records_skipped"]) == ("partial", 118, 2)
    summary = json.loads(str(row["summary"]))
    coordinator_keys = {
        "expected": 120,
        "completed": 118,
        "failed": 2,
        "total_predictions": 118,
        "completion_percentage": 98.33,
        "batch_id": f"batch_{day}_1764306003",
        "correlation_id": "4f2a9c1e",  # Phase 4's, from its completion message
        "records_processed": 118,
        "records_failed": 2,
    }
    assert {k: summary[k] for k in coordinator_keys} == coordinator_keys
    assert json.loads(str(row["upstream_dependencies"])) == ["MLFeatureStoreProcessor"]


def test_the_start_row_says_starting_with_the_batch_and_correlation_ids() -> None:
    day = date(2025, 5, 23)
    row = recorder.build_row(_finished_run(day), running=True)
    assert (row["status"], row["processed_at"]) == ("running", None)
    summary = json.loads(str(row["summary"]))
    assert (summary["status"], summary["batch_id"], summary["correlation_id"]) == (
        "starting",
        f"batch_{day}_1764306003",
        "4f2a9c1e",
    )


def test_a_run_whose_game_day_never_resolved_is_still_recorded_failed_on_its_own_date() -> None:
    """resolve_game_day failed (BigQuery down): the recorder still writes the run's row, ``failed``, on the date
    the run's clock gives, so a dead BigQuery fails the recorder too instead of letting it succeed silently."""
    run = SimpleNamespace(run_type="scheduled", run_after=datetime(2025, 11, 28, 5, tzinfo=UTC))
    context = {"run_id": "r", "dag_run": run, "params": {"force": False, "game_date": None}, "logical_date": None}
    facts = recorder.run_facts(context, {}, channels=False)
    assert facts.game_date == "2025-11-28"
    row = recorder.build_row(facts)
    assert (row["status"], row["data_date"]) == ("failed", date(2025, 11, 28))
    assert json.loads(str(row["summary"]))["message"] == "resolve_game_day did not finish (see its log)"
