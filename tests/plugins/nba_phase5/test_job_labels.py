"""BigQuery job labels: DAG, task and game date, in the characters BigQuery accepts."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from nba_phase5 import job_labels
from nba_phase5.job_labels import label_value, labels_for


def test_values_use_only_what_bigquery_accepts() -> None:
    assert label_value("retry_stragglers.verify_completion") == "retry_stragglers-verify_completion"
    assert label_value("NBA Phase5/Predictions") == "nba_phase5_predictions"
    assert label_value("2025-11-28") == "2025-11-28"
    assert len(label_value("x" * 200)) == 63


def _context(params: dict[str, object], logical_date: datetime | None) -> dict[str, object]:
    dag_run = SimpleNamespace(dag_id="nba_phase5_predictions", run_after=datetime(2025, 11, 29, 5, 0, tzinfo=UTC))
    return {
        "dag_run": dag_run,
        "logical_date": logical_date,
        "params": params,
        "ti": SimpleNamespace(task_id="phase4_readiness.check_phase4_ready"),
    }


def test_a_task_is_labelled_with_its_dag_task_and_the_game_date_the_run_resolves() -> None:
    # Ticks at 05:00 UTC on the 29th = midnight Eastern: the run for game date 2025-11-29.
    scheduled = labels_for(_context({"game_date": None}, datetime(2025, 11, 29, 5, 0, tzinfo=UTC)))
    assert scheduled == {
        "dag": "nba_phase5_predictions",
        "task": "phase4_readiness-check_phase4_ready",
        "game_date": "2025-11-29",
    }
    manual = labels_for(_context({"game_date": "2025-03-25"}, None))
    assert manual["game_date"] == "2025-03-25"


def test_a_partial_context_gives_the_labels_it_can_and_never_fails() -> None:
    assert labels_for({"ti": SimpleNamespace(task_id="t")}) == {"task": "t"}
    assert labels_for({}) == {}


def test_outside_a_task_there_are_no_labels() -> None:
    assert job_labels.current_labels() == {}
