"""`make up` starts the stack and a real Airflow with the DAG unpaused; `make down` leaves nothing running."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import local_airflow
import localstack
from helpers import run_make

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]


def _make(target: str, local_dir: Path, ports: dict[str, int]) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = run_make(
        target, f"LOCAL_DIR={local_dir}", timeout=540, **{name: str(port) for name, port in ports.items()}
    )
    return done


def test_make_up_serves_the_unpaused_dag_and_make_down_leaves_nothing(tmp_path: Path) -> None:
    ports = {name: localstack.free_port() for name in ("PUBSUB_PORT", "BQ_PORT", "BQ_GRPC_PORT", "AIRFLOW_PORT")}
    up = _make("up", tmp_path, ports)
    state_file = tmp_path / "airflow-server" / "server.json"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        login = re.search(r"Airflow UI:\s+(http://127\.0\.0\.1:(\d+))\s+\(user (\w+), password (\S+)\)", up.stdout)
        assert login, up.stdout
        assert int(login.group(2)) == ports["AIRFLOW_PORT"]
        api = local_airflow.AirflowAPI(login.group(1), login.group(3), login.group(4))
        assert api.get("/dags/nba_phase5_predictions")["is_paused"] is False
        assert (tmp_path / "airflow.env").exists()
        # The metadata DB is the private PostgreSQL cluster (SQLite locked under `airflow backfill create`).
        assert "postgresql+psycopg2://airflow@127.0.0.1:" in (tmp_path / "airflow.env").read_text()
        state = json.loads(state_file.read_text())
        names = sorted(s["name"] for s in state["servers"])
        assert names == ["api-server", "dag-processor", "postgres", "prediction-worker", "scheduler", "triggerer"]
        stack = json.loads((tmp_path / "stack.json").read_text())
        groups = [s["pid"] for s in state["servers"]] + [stack["pubsub"]["pid"], stack["bigquery"]["pid"]]
    finally:
        down = _make("down", tmp_path, ports)
        local_airflow.remove_cluster(tmp_path / "airflow-server")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "process groups ended" in down.stdout
    assert "ports freed" in down.stdout
    assert [p for p in ports.values() if localstack.port_open(p)] == []
    alive = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True).stdout.splitlines()
    assert [line for line in alive if int(line.split()[0]) in groups and not line.split()[1].startswith("Z")] == []
    assert local_airflow.processes_of(str(tmp_path / "airflow-server")) == []
