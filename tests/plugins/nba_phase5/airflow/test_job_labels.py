"""BigQuery job labels: the Google provider's airflow-dag / airflow-task, and the game date."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from nba_phase5.airflow import job_labels
from nba_phase5.airflow.job_labels import airflow_labels, labels_for

IDS = [
    ("nba_phase5_predictions", "retry_stragglers.verify_completion"),  # a group's "." → "-"
    ("NBA_Phase5_Predictions", "Fan_Out"),  # lower-cased
    ("nba.phase5", "fan_out_requests"),  # a "." in the DAG id is not replaced: no labels at all
    ("nba_phase5_predictions", "t" * 63),  # the longest value that fits ...
    ("nba_phase5_predictions", "t" * 64),  # ... and one more: no labels, never a truncated one
    ("d" * 64, "fan_out_requests"),
]


@pytest.mark.parametrize(("dag_id", "task_id"), IDS)
def test_dag_and_task_labels_are_exactly_the_google_providers(dag_id: str, task_id: str) -> None:
    from airflow.providers.google.cloud.operators.bigquery import BigQueryInsertJobOperator
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None):
        operator = BigQueryInsertJobOperator(task_id=task_id, configuration={"query": {"query": "SELECT 1"}})
    # The provider labels the jobs its operator submits here; ours must be the same keys and values.
    operator._add_job_labels()
    assert airflow_labels(dag_id=dag_id, task_id=task_id) == operator.configuration.get("labels", {})


def test_the_keys_are_the_providers() -> None:
    assert job_labels.job_labels(dag_id="d", task_id="g.t", game_date="2025-11-28") == {
        "airflow-dag": "d",
        "airflow-task": "g-t",
        "game_date": "2025-11-28",
    }
    assert job_labels.job_labels(dag_id="d", task_id="t", game_date="") == {"airflow-dag": "d", "airflow-task": "t"}


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
        "airflow-dag": "nba_phase5_predictions",
        "airflow-task": "phase4_readiness-check_phase4_ready",
        "game_date": "2025-11-29",
    }
    manual = labels_for(_context({"game_date": "2025-03-25"}, None))
    assert manual["game_date"] == "2025-03-25"


def test_a_partial_context_gives_the_labels_it_can_and_never_fails() -> None:
    assert labels_for({"ti": SimpleNamespace(task_id="t", dag_id="d")}) == {"airflow-dag": "d", "airflow-task": "t"}
    # The provider writes the DAG and task labels together or not at all.
    assert labels_for({"ti": SimpleNamespace(task_id="t")}) == {}
    assert labels_for({}) == {}


def test_outside_a_task_there_are_no_labels() -> None:
    assert job_labels.current_labels() == {}
