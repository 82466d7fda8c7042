"""The local Airflow runs the Composer bundle alone: the event run and the backfill tests beside this
one pass only if the scheduler, DAG processor, task processes and triggerer import from it."""

from __future__ import annotations

from pathlib import Path

import pytest

import local_airflow
from e2e.scheduler import DAG_ID

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def test_every_component_runs_with_the_bundle_alone_on_its_path(stack, airflow: local_airflow.LocalAirflow) -> None:
    # What every component was started with (their /proc environ is unreadable: setproctitle reuses it).
    env = airflow.env(stack.env())
    dags = Path(airflow.composer) / "dags"
    plugins = Path(airflow.composer) / "plugins"
    assert env["PYTHONPATH"] == str(dags)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(dags)
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(plugins)
    assert (dags / "nba_phase5" / "airflow" / "triggers" / "phase4_event.py").is_file()
    assert list(plugins.iterdir()) == []
    assert not (dags / "nba_phase5_local").exists()


def test_the_dag_was_parsed_from_the_bundle_without_import_errors(
    airflow: local_airflow.LocalAirflow, api: local_airflow.AirflowAPI
) -> None:
    details = api.get(f"/dags/{DAG_ID}/details")
    assert Path(details["fileloc"]) == Path(airflow.composer) / "dags" / "nba_phase5_predictions.py"
    assert api.get("/importErrors")["total_entries"] == 0
