"""The stack tool starts real emulators and leaves nothing behind when it stops them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import localstack

pytestmark = pytest.mark.integration


def _group_members(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,stat=,comm="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[0] == str(pgid) and not line.split()[1].startswith("Z")]


def test_start_then_stop_frees_ports_and_processes(tmp_path: Path) -> None:
    ports = [localstack.free_port() for _ in range(3)]
    stack = localstack.start_stack(
        "stack-test", pubsub_port=ports[0], bq_port=ports[1], bq_grpc_port=ports[2], log_dir=tmp_path
    )
    try:
        assert all(localstack.port_open(p) for p in ports)
        assert any("java" in line for line in _group_members(stack.pubsub.pid)), "gcloud forks a java child"
    finally:
        localstack.stop_stack(stack)
    assert not any(localstack.port_open(p) for p in ports)
    assert _group_members(stack.pubsub.pid) == []
    assert _group_members(stack.bigquery.pid) == []


def test_busy_port_is_a_clear_error(stack) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(localstack.StackError, match="already in use"):
        localstack.start_stack("x", pubsub_port=stack.pubsub.port, bq_port=localstack.free_port())


def test_missing_gcloud_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(localstack.StackError, match="pubsub-emulator"):
        localstack.pubsub_argv(8085, "p")


def test_env_file_exports_what_a_shell_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localstack, "LOCAL", tmp_path)
    monkeypatch.setattr(localstack, "STATE_FILE", tmp_path / "stack.json")
    monkeypatch.setattr(localstack, "ENV_FILE", tmp_path / "stack.env")
    server = localstack.Server("s", os.getpid(), 1, "log")
    localstack.write_state(localstack.Stack("proj", server, server, 2))
    text = (tmp_path / "stack.env").read_text()
    for var in (
        "PUBSUB_EMULATOR_HOST",
        "BIGQUERY_EMULATOR_HOST",
        "GCP_PROJECT",
        "AIRFLOW_HOME",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        "PYTHONPATH",
    ):
        assert f"export {var}=" in text
    assert localstack.read_state() is not None


def test_bigquery_data_survives_a_restart_with_a_data_dir(tmp_path: Path) -> None:
    from nba_phase5.clients import bigquery_client

    ports = [localstack.free_port() for _ in range(3)]
    kwargs = {
        "pubsub_port": ports[0],
        "bq_port": ports[1],
        "bq_grpc_port": ports[2],
        "log_dir": tmp_path / "logs",
        "data_dir": tmp_path / "bq",
    }
    saved = os.environ.get("BIGQUERY_EMULATOR_HOST")
    os.environ["BIGQUERY_EMULATOR_HOST"] = f"http://127.0.0.1:{ports[1]}"
    try:
        for round_ in range(2):
            stack = localstack.start_stack("persist", **kwargs)  # type: ignore[arg-type]
            try:
                client = bigquery_client("persist")
                if round_ == 0:
                    client.create_dataset("kept")
                assert [d.dataset_id for d in client.list_datasets()] == ["kept"]
            finally:
                localstack.stop_stack(stack)
    finally:
        if saved is None:
            os.environ.pop("BIGQUERY_EMULATOR_HOST")
        else:
            os.environ["BIGQUERY_EMULATOR_HOST"] = saved
