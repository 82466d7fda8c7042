"""The post-deploy self-check DAG: its shape offline, then whole runs through `dag.test()` on the emulators.

The runs defer for real: `dag.test()` builds each trigger from what the task serialized and runs it in
process, as the triggerer would. Spies on the two triggers record what they did in there.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from nba_phase5 import config
from nba_phase5.airflow import self_check

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILE = DAGS / "nba_phase5_self_check.py"


@pytest.fixture(scope="module")
def parsed():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags[self_check.DAG_ID]


def test_it_is_manual_tagged_and_defers_on_the_packages_own_triggers(parsed) -> None:
    from nba_phase5.airflow.operators.phase4_gate import Phase4GateOperator
    from nba_phase5.airflow.operators.self_check import Phase4EventTriggerCheckOperator

    assert type(parsed.timetable).__name__ == "NullTimetable"  # schedule=None: a person starts it, after a deploy
    assert {"nba", "phase5", "self-check"} <= set(parsed.tags)
    assert sorted(parsed.task_ids) == sorted([self_check.BIGQUERY_TASK, self_check.EVENT_TASK])
    gate = parsed.get_task(self_check.BIGQUERY_TASK)
    assert isinstance(gate, Phase4GateOperator)
    assert gate.deferrable is True
    assert gate.always_defer is True  # bqemulator (and a fast real job) is done at insert: defer anyway
    assert gate.location is None  # the package's setting, read where the task runs
    assert isinstance(parsed.get_task(self_check.EVENT_TASK), Phase4EventTriggerCheckOperator)


def test_the_dag_file_holds_no_logic_and_imports_only_light_modules() -> None:
    tree = ast.parse(DAG_FILE.read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {
        "__future__",
        "airflow.sdk",
        "nba_phase5",
        "nba_phase5.airflow",
        "nba_phase5.bigquery",
        "nba_phase5.airflow.operators.phase4_gate",
        "nba_phase5.airflow.operators.self_check",
    }
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import)]
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    assert [f.name for f in functions] == ["nba_phase5_self_check"]  # only the wiring
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.If, ast.For, ast.While, ast.Try))]


def test_parsing_it_loads_no_google_client(tmp_path: Path) -> None:
    """The DAG processor parses the file every 30 s: the clients load only when a task runs (TID253)."""
    import os
    import subprocess
    import sys

    probe = (
        "import runpy, sys; before = set(sys.modules); runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('google', 'pandas', 'numpy'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(DAGS.parent / "plugins"), "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(DAG_FILE)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_sql_reads_one_partition_of_each_dataset() -> None:
    from nba_phase5.bigquery.sql import render

    rendered = render("self_check.sql")
    datasets = {
        name.split(".")[0] for name in (config.RUN_HISTORY_TABLE, config.PREDICTIONS_TABLE, config.SCHEDULE_TABLE)
    }
    assert datasets == {table.split(".")[0] for table in vars(config.TABLES).values()}
    assert rendered.count("= @probe_date") == 3


# --- Whole runs on the emulators ------------------------------------------------------------------------


@pytest.fixture
def self_check_dag(airflow_db: Path):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags[self_check.DAG_ID]


@pytest.fixture
def trigger_spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """What each trigger did when `dag.test()` ran it: the job lookups' locations, inbox looks and pulls."""
    from nba_phase5.airflow.triggers.bigquery_job import BigQueryJobTrigger
    from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger

    seen: dict[str, list[Any]] = {"job_lookups": [], "inbox_looks": [], "pulls": []}
    outcome, find, pull = BigQueryJobTrigger.outcome, Phase4EventTrigger._find, Phase4EventTrigger._pull

    def spy_outcome(self: BigQueryJobTrigger) -> Any:
        seen["job_lookups"].append((self.location, self.hook.location))
        return outcome(self)

    async def spy_find(self: Phase4EventTrigger, target: date) -> Any:
        seen["inbox_looks"].append((target, self.bigquery_hook.location))
        return await find(self, target)

    async def spy_pull(self: Phase4EventTrigger, timeout: float) -> Any:
        seen["pulls"].append(self.subscription)
        return await pull(self, timeout)

    monkeypatch.setattr(BigQueryJobTrigger, "outcome", spy_outcome)
    monkeypatch.setattr(Phase4EventTrigger, "_find", spy_find)
    monkeypatch.setattr(Phase4EventTrigger, "_pull", spy_pull)
    return seen


def _run(dag: Any) -> dict[str, str]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    dag_run = dag.test(logical_date=datetime.now(UTC))
    with create_session() as session:
        run = session.get(DagRun, dag_run.id)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
        states["run"] = str(run.state)
    return states


def _publish(project: str, *bodies: dict[str, Any]) -> None:
    from nba_phase5.bigquery.clients import publisher_client

    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PHASE4_COMPLETE_TOPIC)
    for body in bodies:
        publisher.publish(topic, json.dumps(body).encode()).result(timeout=30)


@pytest.mark.integration
def test_a_run_defers_on_both_triggers_in_the_location_and_takes_no_phase4_message(
    stack, bq, self_check_dag, trigger_spies, drain
) -> None:
    from nba_phase5.bigquery.bq import run_query
    from nba_phase5_local.phase4_publisher import build_envelope

    drain(config.PHASE5_TRIGGER_SUBSCRIPTION, empty_pulls=3)
    today = datetime.now(UTC).date()
    waiting = [
        build_envelope(today, record_count=450).to_dict(),  # a prediction run's event: must stay for it
        build_envelope(today, record_count=300, processor="PlayerDailyCacheProcessor").to_dict(),
    ]
    _publish(stack.project, *waiting)

    for _ in range(2):  # a second check finds its probe row and adds none
        states = _run(self_check_dag)
        assert states == {self_check.BIGQUERY_TASK: "success", self_check.EVENT_TASK: "success", "run": "success"}

    location = config.bigquery_location()
    assert trigger_spies["job_lookups"]  # the gate deferred, twice, though bqemulator is done at insert
    assert set(trigger_spies["job_lookups"]) == {(location, location)}
    assert trigger_spies["inbox_looks"] == [(self_check.PROBE_DATE, location)] * 2
    assert trigger_spies["pulls"] == []  # ended on the probe at its first look
    still_there = drain(config.PHASE5_TRIGGER_SUBSCRIPTION, empty_pulls=3)
    assert sorted(json.loads(m.data)["processor_name"] for m in still_there) == [
        "MLFeatureStoreProcessor",
        "PlayerDailyCacheProcessor",
    ]
    probes = run_query(
        bq,
        f"SELECT message_id, pulled_for_date FROM `{bq.project}.{config.EVENT_INBOX_TABLE}` WHERE game_date = @d",
        {"d": self_check.PROBE_DATE},
    )
    assert probes == [{"message_id": self_check.PROBE_MESSAGE_ID, "pulled_for_date": self_check.PROBE_DATE}]
