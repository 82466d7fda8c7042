"""Every DAG file parses cleanly, offline, and the daily DAG has the shape outside tests rely on."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"

# Dedup before any wait: an already complete day never waits for an event it already consumed. Most other
# edges are data (DATA_EDGES): every task that reads the game date or the batch takes it as an XComArg, and
# the recorder takes every task's result (an off day skips claim_batch and so all but the recorder).
EXPECTED_EDGES = {
    "resolve_game_day": [
        "check_batch_status",
        "claim_batch",
        "fan_out_requests",
        "phase4_readiness.check_phase4_ready",
        "phase4_readiness.proceed_with_ready_players",
        "phase4_readiness.wait_for_phase4_ready",
        "record_batch_run",
        "retry_stragglers.consolidate_predictions",
        "retry_stragglers.republish_round_1",
        "retry_stragglers.republish_round_2",
        "retry_stragglers.verify_completion",
        "retry_stragglers.wait_for_predictions_1",
        "retry_stragglers.wait_for_predictions_2",
        "retry_stragglers.wait_for_predictions_3",
        "wait_for_phase4_event",
    ],
    "claim_batch": [
        "check_batch_status",
        "fan_out_requests",
        "record_batch_run",
        "retry_stragglers.consolidate_predictions",
        "retry_stragglers.republish_round_1",
        "retry_stragglers.republish_round_2",
        "retry_stragglers.verify_completion",
        "retry_stragglers.wait_for_predictions_1",
        "retry_stragglers.wait_for_predictions_2",
        "retry_stragglers.wait_for_predictions_3",
    ],
    "check_batch_status": [
        "phase4_readiness.wait_for_phase4_ready",
        "record_batch_run",
        "skip_already_complete",
        "skip_concurrent_run",
        "wait_for_phase4_event",
    ],
    "skip_already_complete": [
        "batch_done",
        "record_batch_run",
    ],
    "skip_concurrent_run": [
        "batch_done",
        "record_batch_run",
    ],
    "wait_for_phase4_event": [
        "fan_out_requests",
        "phase4_readiness.wait_for_phase4_ready",
        "record_batch_run",
        "retry_stragglers.republish_round_1",
        "retry_stragglers.republish_round_2",
    ],
    "fan_out_requests": [
        "record_batch_run",
        "retry_stragglers.wait_for_predictions_1",
    ],
    "phase4_readiness.wait_for_phase4_ready": [
        "phase4_readiness.check_phase4_ready",
        "phase4_readiness.proceed_with_ready_players",
        "record_batch_run",
    ],
    "phase4_readiness.check_phase4_ready": [
        "phase4_readiness.proceed_with_ready_players",
    ],
    "phase4_readiness.proceed_with_ready_players": [
        "fan_out_requests",
        "record_batch_run",
    ],
    "retry_stragglers.wait_for_predictions_1": [
        "retry_stragglers.republish_round_1",
        "retry_stragglers.wait_for_predictions_2",
    ],
    "retry_stragglers.republish_round_1": [
        "record_batch_run",
        "retry_stragglers.wait_for_predictions_2",
    ],
    "retry_stragglers.wait_for_predictions_2": [
        "retry_stragglers.republish_round_2",
        "retry_stragglers.wait_for_predictions_3",
    ],
    "retry_stragglers.republish_round_2": [
        "record_batch_run",
        "retry_stragglers.wait_for_predictions_3",
    ],
    "retry_stragglers.wait_for_predictions_3": [
        "retry_stragglers.consolidate_predictions",
        "retry_stragglers.verify_completion",
    ],
    "retry_stragglers.consolidate_predictions": [
        "record_batch_run",
        "retry_stragglers.verify_completion",
    ],
    "retry_stragglers.verify_completion": [
        "batch_done",
        "record_batch_run",
    ],
    "batch_done": [],
    "record_batch_run": [
        "hand_off_to_phase6",
    ],
    "hand_off_to_phase6": [],
}

# What flows between tasks, (task, XCom key) by reader: XComArgs only. The recorder's inputs are the run's
# facts (RunFacts); nothing in the DAG file or the recorder pulls by task id.
DATA_EDGES = {
    "claim_batch": [
        ("resolve_game_day", "return_value"),
    ],
    "check_batch_status": [
        ("claim_batch", "return_value"),
        ("resolve_game_day", "return_value"),
    ],
    "wait_for_phase4_event": [
        ("resolve_game_day", "game_date"),
    ],
    "fan_out_requests": [
        ("claim_batch", "batch_id"),
        ("claim_batch", "batch_started_at"),
        ("claim_batch", "staged_batches"),
        ("resolve_game_day", "game_date"),
        ("wait_for_phase4_event", "return_value"),
    ],
    "phase4_readiness.wait_for_phase4_ready": [
        ("check_batch_status", "phase4_readiness"),
        ("resolve_game_day", "game_date"),
    ],
    "phase4_readiness.check_phase4_ready": [
        ("phase4_readiness.wait_for_phase4_ready", "return_value"),
        ("resolve_game_day", "game_date"),
    ],
    "phase4_readiness.proceed_with_ready_players": [
        ("phase4_readiness.wait_for_phase4_ready", "return_value"),
        ("resolve_game_day", "game_date"),
    ],
    "retry_stragglers.wait_for_predictions_1": [
        ("claim_batch", "batch_started_at"),
        ("claim_batch", "staged_batches"),
        ("resolve_game_day", "game_date"),
    ],
    "retry_stragglers.republish_round_1": [
        ("claim_batch", "batch_id"),
        ("claim_batch", "batch_started_at"),
        ("claim_batch", "staged_batches"),
        ("resolve_game_day", "game_date"),
        ("retry_stragglers.wait_for_predictions_1", "return_value"),
        ("wait_for_phase4_event", "return_value"),
    ],
    "retry_stragglers.wait_for_predictions_2": [
        ("claim_batch", "batch_started_at"),
        ("claim_batch", "staged_batches"),
        ("resolve_game_day", "game_date"),
        ("retry_stragglers.wait_for_predictions_1", "return_value"),
    ],
    "retry_stragglers.republish_round_2": [
        ("claim_batch", "batch_id"),
        ("claim_batch", "batch_started_at"),
        ("claim_batch", "staged_batches"),
        ("resolve_game_day", "game_date"),
        ("retry_stragglers.wait_for_predictions_2", "return_value"),
        ("wait_for_phase4_event", "return_value"),
    ],
    "retry_stragglers.wait_for_predictions_3": [
        ("claim_batch", "batch_started_at"),
        ("claim_batch", "staged_batches"),
        ("resolve_game_day", "game_date"),
        ("retry_stragglers.wait_for_predictions_2", "return_value"),
    ],
    "retry_stragglers.consolidate_predictions": [
        ("claim_batch", "return_value"),
        ("resolve_game_day", "game_date"),
    ],
    "retry_stragglers.verify_completion": [
        ("claim_batch", "return_value"),
        ("resolve_game_day", "return_value"),
        ("retry_stragglers.wait_for_predictions_3", "return_value"),
    ],
    "record_batch_run": [
        ("check_batch_status", "batch_status"),
        ("claim_batch", "return_value"),
        ("fan_out_requests", "return_value"),
        ("phase4_readiness.proceed_with_ready_players", "return_value"),
        ("phase4_readiness.wait_for_phase4_ready", "return_value"),
        ("resolve_game_day", "return_value"),
        ("retry_stragglers.consolidate_predictions", "return_value"),
        ("retry_stragglers.republish_round_1", "return_value"),
        ("retry_stragglers.republish_round_2", "return_value"),
        ("retry_stragglers.verify_completion", "return_value"),
        ("wait_for_phase4_event", "return_value"),
    ],
    "hand_off_to_phase6": [
        ("record_batch_run", "return_value"),
    ],
}


@pytest.fixture(scope="module")
def dagbag(monkeypatch_module):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook

    monkeypatch_module.delenv("NBA_PHASE5_DEADLINE_ALERTS")  # the DAG as deployed: with its deadline alert

    def no_connections(*args, **kwargs):
        raise AssertionError(f"connection looked up while parsing: {args} {kwargs}")

    def no_network(self, address):
        raise AssertionError(f"network access while parsing: {address}")

    monkeypatch_module.setattr(BaseHook, "get_connection", classmethod(no_connections))
    monkeypatch_module.setattr(socket.socket, "connect", no_network)
    bag = DagBag(dag_folder=str(DAGS))
    monkeypatch_module.undo()
    return bag


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_every_dag_file_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(list(DAGS.glob("*.py")))


def test_every_dag_has_owner_tags_retries_and_no_catchup(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.catchup is False, dag_id
        assert dag.doc_md, dag_id
        assert dag.default_args["owner"] not in ("", "airflow"), dag_id
        assert dag.default_args["retries"] >= 2, dag_id


def test_task_graph_matches_the_design(dagbag) -> None:
    dag = dagbag.dags["nba_phase5_predictions"]
    edges = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
    assert edges == EXPECTED_EDGES


def test_data_flows_only_as_xcomargs_and_the_recorder_takes_every_result(dagbag) -> None:
    from airflow.sdk.definitions.xcom_arg import XComArg

    dag = dagbag.dags["nba_phase5_predictions"]
    data = {}
    for task in dag.tasks:
        refs = {
            (op.task_id, key)
            for field in task.template_fields
            for op, key in XComArg.iter_xcom_references(getattr(task, field, None))
        }
        if refs:
            data[task.task_id] = sorted(refs)
    assert data == {task: [tuple(ref) for ref in refs] for task, refs in DATA_EDGES.items()}
    # Every task whose result the run's record reads is an input of the recorder.
    recorded = {task for task, _ in DATA_EDGES["record_batch_run"]}
    assert recorded == {t.task_id for t in dag.tasks} - {
        "record_batch_run",
        "hand_off_to_phase6",
        "batch_done",
        "retry_stragglers.wait_for_predictions_1",
        "retry_stragglers.wait_for_predictions_2",
        "retry_stragglers.wait_for_predictions_3",
        "phase4_readiness.check_phase4_ready",
        "skip_already_complete",
        "skip_concurrent_run",
    }


def test_the_dag_file_and_the_recorder_pull_nothing_by_task_id() -> None:
    import inspect

    from nba_phase5.airflow.tasks import run_history
    from nba_phase5.core import run_facts, run_summary

    sources = [(DAGS / "nba_phase5_predictions.py").read_text()]
    sources += [inspect.getsource(module) for module in (run_history, run_summary, run_facts)]
    for source in sources:
        assert "xcom_pull" not in source
        assert "task_ids=" not in source


def test_branch_join_and_recorder_trigger_rules(dagbag) -> None:
    dag = dagbag.dags["nba_phase5_predictions"]
    assert dag.get_task("batch_done").trigger_rule == "none_failed_min_one_success"
    assert dag.get_task("record_batch_run").trigger_rule == "all_done"
    # What the workers staged is consolidated after a failed round too, never after a skip (a yield).
    assert dag.get_task("retry_stragglers.consolidate_predictions").trigger_rule == "none_skipped"
    # Phase 6 runs on the asset only when the batch was announced (the task skips otherwise)
    # (an alias: the table's bigquery:// asset is added through it at run time, in the connection's project)
    [alias] = dag.get_task("hand_off_to_phase6").outlets
    assert (type(alias).__name__, alias.name) == ("AssetAlias", "nba_phase5_predictions")
    assert dag.get_task("fan_out_requests").pool == "prediction_fanout"
    gate = dag.get_task("phase4_readiness.check_phase4_ready")
    assert gate.deferrable is True
    assert gate.location is None  # the package's location setting, read when the task runs


def test_params_validate_in_the_trigger_form(dagbag) -> None:
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["nba_phase5_predictions"]
    assert {
        "game_date",
        "force",
        "skip_event_wait",
        "event_wait_seconds",
        "phase4_wait_minutes",
        "straggler_wait_minutes",
        "poll_interval_seconds",
    } <= set(dag.params)
    assert "prop_types" not in dag.params  # the platform predicts points only

    def validated(conf: dict) -> dict:
        params = copy.deepcopy(dag.params)
        params.update(conf)
        return params.validate()

    good = validated({"game_date": "2025-11-28", "degraded_min_players": 50})
    assert good["game_date"] == "2025-11-28"
    assert good["force"] is False
    bad_confs = (
        {"game_date": "28/11/2025"},
        {"degraded_min_players": 0},
        {"event_deadline": "25:00"},
        {"force": "yes"},
    )
    for bad in bad_confs:
        with pytest.raises(ParamValidationError):
            validated(bad)


def test_tasks_a_user_may_clear_are_documented(dagbag) -> None:
    dag = dagbag.dags["nba_phase5_predictions"]
    for task in dag.tasks:
        assert task.doc_md or task.doc, task.task_id


def test_the_run_for_d_opens_at_midnight_eastern_and_outlasts_its_waits(dagbag) -> None:
    from datetime import timedelta

    dag = dagbag.dags["nba_phase5_predictions"]
    assert "0 0 * * *" in (Path(__file__).resolve().parents[2] / "dags" / "nba_phase5_predictions.py").read_text()
    assert dag.params["event_deadline"] == "06:00"
    # 00:00 ET to 06:00 PT is 9 h; plus the 30-minute readiness wait and three straggler waits.
    assert dag.dagrun_timeout > timedelta(hours=9, minutes=30 + 3 * dag.params["straggler_wait_minutes"])


def test_the_trigger_form_is_in_sections_with_the_date_and_force_first(dagbag) -> None:
    from nba_phase5.airflow.dag_params import SECTIONS

    params = dagbag.dags["nba_phase5_predictions"].params
    schemas = {name: params.get_param(name).schema for name in params}
    assert list(params)[:2] == ["game_date", "force"]
    for name, schema in schemas.items():
        assert schema.get("title"), name
        assert params.get_param(name).description, name
        assert schema.get("section") in SECTIONS, name
    order = [SECTIONS.index(schema["section"]) for schema in schemas.values()]
    assert order == sorted(order)  # each section's params together, sections in the form's order


def test_a_run_not_finished_by_10_am_eastern_raises_the_critical_alert(dagbag) -> None:
    from datetime import timedelta

    # 10:00 ET is 10 h after the 00:00 ET tick, 9 h the night EDT begins, 11 h the night it ends: one alert
    # per span; only the one that lands on 10:00 ET pages (sla.py).
    deadlines = dagbag.dags["nba_phase5_predictions"].deadline
    assert {type(d.reference).__name__ for d in deadlines} == {"DagRunLogicalDateDeadline"}
    assert sorted(d.interval for d in deadlines) == [timedelta(hours=h) for h in (9, 10, 11)]
    assert {d.callback.path for d in deadlines} == {"nba_phase5.airflow.sla.deadline_missed"}


def test_data_moves_as_xcomargs_and_every_task_id_is_written_once(dagbag) -> None:
    """No task pulls another's XCom by a task-id string in the DAG file; the ids come from config.TASKS."""
    import re

    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    from nba_phase5.config import TASKS

    source = (DAGS / "nba_phase5_predictions.py").read_text()
    assert "xcom_pull" not in source
    assert "task_ids" not in source
    dag = dagbag.dags["nba_phase5_predictions"]
    short_ids = {task.task_id.rpartition(".")[2] for task in dag.tasks} | {TASKS.readiness_group, TASKS.retry_group}
    for task_id in short_ids:
        assert not re.search(rf"[\"']{task_id}[\"']", source), f"{task_id} spelled in the DAG file"
    declared = {value for value in vars(TASKS.__class__).values() if isinstance(value, str)}
    assert short_ids - {t for t in short_ids if t.startswith(("wait_for_predictions_", "republish_round_"))} <= declared
    fan_out = dag.get_task(TASKS.fan_out)
    for name, source_task in (
        ("game_date", TASKS.game_day),
        ("batch_started_at", TASKS.claim),
        ("batch_id", TASKS.claim),
    ):
        arg = getattr(fan_out, name)
        assert isinstance(arg, PlainXComArg), name
        assert (arg.operator.task_id, arg.key) == (source_task, name)
    assert fan_out.phase4_event.operator.task_id == TASKS.event  # Phase 4's correlation id, as an XComArg
    last_wait = dag.get_task(TASKS.in_group(TASKS.retry_group, TASKS.wait_round(3)))
    staged = last_wait.staged_batches
    assert (staged.operator.task_id, staged.key) == (TASKS.claim, "staged_batches")
    assert (fan_out.staged_batches.operator.task_id, fan_out.staged_batches.key) == (TASKS.claim, "staged_batches")
    republish = dag.get_task(TASKS.in_group(TASKS.retry_group, TASKS.republish_round(1)))
    assert republish.coverage.operator.task_id == TASKS.in_group(TASKS.retry_group, TASKS.wait_round(1))


# A parse of the DAG file, in a fresh interpreter: which Google clients and URI handlers it loaded (the
# google.cloud namespace itself is made at start-up by a .pth file of the venv).
PARSE_PROBE = """
import sys
from airflow.models.dagbag import DagBag
bag = DagBag(sys.argv[1])
assert not bag.import_errors, bag.import_errors
print(sorted(m for m in sys.modules if m.startswith(("google.cloud.", "airflow.providers.google.assets"))))
"""


def test_a_parse_loads_no_cloud_client_and_no_asset_uri_handler(tmp_path: Path) -> None:
    """An asset URI with a provider's scheme, built while parsing, makes Airflow load every provider's URI
    handler (the GCS one imports the GCS client: 0.5-1.5 s of each parse). The hand-off's outlet is an
    alias instead, and the bigquery:// asset is built at run time."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PYTHONPATH": str(DAGS.parent / "plugins"),
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    env.pop("GCP_PROJECT", None)  # nothing in the parse may need a project
    done = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(DAGS / "nba_phase5_predictions.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
