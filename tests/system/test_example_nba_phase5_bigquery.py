"""The system test's own code, in `make test`: the same DAG and runner as `make system-test`, against the
emulators (BigQuery through the strict proxy when the stack has one) instead of real Google Cloud."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import system_test

pytestmark = pytest.mark.integration

TASKS = ("create_sandbox", "seed_phase4", "check_phase4_ready", "inbox_merge", "consolidate_staged", "delete_sandbox")


def test_the_system_test_passes_on_the_emulators_and_leaves_only_the_platforms_datasets(
    stack, bq, tmp_path: Path
) -> None:
    endpoints = {name: os.environ[name] for name in system_test.EMULATOR_VARS}  # the stack's (the strict proxy's)
    env = system_test.system_env(
        stack.project,
        tmp_path / "airflow",
        base={**os.environ, system_test.ENV_ID_ENV: "ci"},
        endpoints=endpoints,
        connection_extra={"is_anonymous": True},
    )
    done = system_test.run(env, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:]
    summary = done.stdout[done.stdout.index("EXECUTION SUMMARY") :].splitlines()
    assert "sandbox suffix _st_ci" in summary[0]
    states = dict(line.split() for line in summary[1:] if line.strip())
    assert {task: states[task] for task in TASKS} == dict.fromkeys(TASKS, "success")
    assert states["watcher"] == "skipped"  # nothing failed
    assert states["(run)"] == "success"
    # The gate's job was done at insert (bqemulator), and the gate deferred on BigQueryJobTrigger all the same.
    assert re.search(r"Pausing task as DEFERRED.*task_id=check_phase4_ready", done.stdout)
    # Teardown deleted the sandbox, and only the sandbox.
    datasets = {dataset.dataset_id for dataset in bq.list_datasets()}
    assert not {name for name in datasets if name.endswith("_st_ci")}
    assert {"nba_reference", "nba_predictions", "nba_raw"} <= datasets
