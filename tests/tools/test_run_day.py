"""`make run`'s path end to end: seed, worker, DAG run, Phase 4's event while it waits, summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def make_run(date: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "run_day.py"), "--date", date, "--players", "150", "--drop-rate", "0.1"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
        capture_output=True,
        text=True,
        timeout=600,
    )


def field(output: str, name: str) -> str:
    match = re.search(rf"^  {re.escape(name)}\s+(.*)$", output, re.MULTILINE)
    assert match, f"{name!r} not in summary:\n{output}"
    return match.group(1).strip()


def test_a_whole_day_then_a_rerun_that_dedups(stack, airflow_db) -> None:
    first = make_run("2025-12-02")
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "Phase 4's feature store published its completion message" in out
    assert field(out, "triggered_by") == "pubsub"
    assert field(out, "status") == "success"
    assert field(out, "completion") == "100.0 %"
    dropped = int(field(out, "dropped by the worker").split()[0])
    assert dropped > 0
    assert field(out, "stragglers per round").startswith(f"round 1: {dropped} ")
    # Progress comes from what the tasks wrote to BigQuery, not from the run's log text.
    for line in ("run history: running", "Phase 4 completion events received by the wait: 1", "run history: success"):
        assert line in out, out
    # The workers staged; the DAG consolidated (the staging tables are gone by the end).
    staged = [
        int(n) for n in re.findall(r"staging tables the workers wrote for the date, not yet consolidated: (\d+)", out)
    ]
    assert max(staged) > 0, out
    assert staged[-1] == 0, out
    consolidated = re.findall(r"players with a new prediction in player_prop_predictions \(consolidated\): (\d+)", out)
    assert consolidated, out
    assert int(consolidated[-1]) > 0, out
    published = [int(n) for n in re.findall(r"prediction requests published \(publish ledger\): (\d+)", out)]
    assert published
    assert published[-1] == int(field(out, "requests published").split()[0])

    second = make_run("2025-12-02")
    assert second.returncode == 0, second.stdout + second.stderr
    assert field(second.stdout, "status") == "already_complete"
    assert field(second.stdout, "requests published").startswith("0 this run")
    assert "already complete: no new requests were published" in second.stdout
