"""`make up` starts the stack and a real Airflow with the DAG unpaused; `make down` leaves nothing running."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import local_airflow
import local_postgres
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
        assert "postgresql+psycopg2://airflow:" in (tmp_path / "airflow.env").read_text()
        state = json.loads(state_file.read_text())
        assert_secrets_owner_only(tmp_path)
        assert_metadata_db_wants_a_password(tmp_path / "airflow-server", state)
        names = sorted(s["name"] for s in state["servers"])
        assert names == ["api-server", "dag-processor", "postgres", "prediction-worker", "scheduler", "triggerer"]
        stack = json.loads((tmp_path / "stack.json").read_text())
        groups = [s["pid"] for s in state["servers"]] + [stack["pubsub"]["pid"], stack["bigquery"]["pid"]]
    finally:
        down = _make("down", tmp_path, ports)
        local_postgres.remove_cluster(tmp_path / "airflow-server")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "process groups ended" in down.stdout
    assert "ports freed" in down.stdout
    assert [p for p in ports.values() if localstack.port_open(p)] == []
    alive = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True).stdout.splitlines()
    assert [line for line in alive if int(line.split()[0]) in groups and not line.split()[1].startswith("Z")] == []
    assert local_airflow.processes_of(str(tmp_path / "airflow-server")) == []


def _secret_values(local: Path) -> set[str]:
    home = local / "airflow-server"
    values = set(json.loads((home / "local-secrets.json").read_text()).values())
    values |= set(json.loads((home / "passwords.json").read_text()).values())
    config = home / "airflow.cfg"  # Airflow writes its defaults there, with a generated Fernet key
    fernet = re.search(r"^fernet_key = (\S+)$", config.read_text(), re.MULTILINE) if config.exists() else None
    if fernet:
        values.add(fernet.group(1))
    assert len(values) >= 4  # jwt, api key, db password, admin password
    return values


def assert_secrets_owner_only(local: Path) -> None:
    """Every file under ``local`` holding one of the stack's secrets is 0600-or-narrower in a 0700 folder."""
    values = [v.encode() for v in _secret_values(local)]
    holders = []
    for path in local.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        if any(value in path.read_bytes() for value in values):
            holders.append(path)
            assert path.stat().st_mode & 0o077 == 0, f"{path} {oct(path.stat().st_mode)}"
            assert path.parent.stat().st_mode & 0o077 == 0, f"{path.parent} {oct(path.parent.stat().st_mode)}"
    named = {p.name for p in holders}
    assert {"airflow.env", "server.json", "local-secrets.json", "passwords.json"} <= named, named


def assert_metadata_db_wants_a_password(home: Path, state: dict) -> None:
    import psycopg2

    hba = (local_postgres.cluster_dir(home) / "pg_hba.conf").read_text().splitlines()
    rules = [line.split() for line in hba if line.strip() and not line.lstrip().startswith("#")]
    assert rules
    assert all(rule[-1] == "scram-sha-256" for rule in rules), rules  # no `trust` line
    [db] = [s for s in state["servers"] if s["name"] == "postgres"]
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=db["port"], user="airflow", dbname="airflow", connect_timeout=5)
