"""The stack tool starts real emulators and leaves nothing behind when it stops them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

import localstack

ROOT = Path(__file__).resolve().parents[2]


def _group_members(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,stat=,comm="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[0] == str(pgid) and not line.split()[1].startswith("Z")]


@pytest.mark.integration
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


@pytest.mark.integration
def test_busy_port_is_a_clear_error(stack) -> None:
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
    for var, value in localstack.dags_test_env().items():  # for `airflow dags test` by hand
        assert f"export {var}={value}\n" in text
    assert localstack.read_state() is not None


def test_the_scheduler_keeps_the_deadline_alert_a_sourced_stack_env_turns_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import local_airflow_config

    switch = localstack.dags_test_env()
    assert switch, "nothing to check: Airflow fixed apache/airflow#73428, delete this test"
    for var, value in switch.items():  # `make up` from a shell that sourced .local/stack.env
        monkeypatch.setenv(var, value)
    stack_env = localstack.stack_env("p", "127.0.0.1:1", "http://127.0.0.1:2")
    env = local_airflow_config.airflow_env(stack_env, tmp_path / "home", 8080, 5432, tmp_path / "composer")
    assert env["GCP_PROJECT"] == "p"
    assert not set(switch) & set(env)


@pytest.mark.integration
def test_dags_test_by_hand_from_a_plain_shell_that_sourced_stack_env(
    stack, airflow_db: Path, bq, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's by-hand run: `source .local/stack.env && .venv/bin/airflow dags test DAG DATE` exits 0
    from a shell with nothing else set (an off day: the run ends after resolving it)."""
    from datetime import date

    from nba_phase5_local.seeding import seed_day

    monkeypatch.setattr(localstack, "LOCAL", tmp_path)
    monkeypatch.setattr(localstack, "STATE_FILE", tmp_path / "stack.json")
    monkeypatch.setattr(localstack, "ENV_FILE", tmp_path / "stack.env")
    localstack.write_state(stack)
    (tmp_path / "airflow").symlink_to(airflow_db)  # stack.env's AIRFLOW_HOME: the session's migrated DB
    seed_day(bq, date(2024, 6, 10), players=5)  # games the day before: the 11th is an off day, not an outage
    seed_day(bq, date(2024, 6, 11), games=False)
    plain = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8"}
    by_hand = "source {} && .venv/bin/airflow dags test nba_phase5_predictions 2024-06-11"
    done = subprocess.run(
        ["bash", "-c", by_hand.format(shlex.quote(str(tmp_path / "stack.env")))],
        cwd=ROOT,
        env=plain,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "state=success" in done.stdout + done.stderr


@pytest.mark.integration
def test_bigquery_data_survives_a_restart_with_a_data_dir(tmp_path: Path) -> None:
    from nba_phase5.bigquery.clients import bigquery_client

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
            stack = localstack.start_stack("persist", **kwargs)
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


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def _ended(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def test_a_stale_pid_pointing_at_a_foreign_process_is_left_alone(tmp_path: Path) -> None:
    ours = _sleeper()
    recorded = localstack.Server.started("pubsub-emulator", ours.pid, 1, "log", "sleep")
    assert recorded.alive()  # positive control: the process we started is ours while it runs
    _ended(ours)
    assert not recorded.alive()
    time.sleep(0.1)  # a later start time, as any process given the pid afterwards has
    decoy = _sleeper()  # the same program, started later: what a reused pid (or a reboot) hands us
    try:
        stale = localstack.Server("pubsub-emulator", decoy.pid, 1, "log", recorded.identity)
        older_version = localstack.Server("bigquery-emulator", decoy.pid, 2, "log")  # no identity recorded
        assert not stale.alive()
        assert not older_version.alive()
        localstack.stop_server(stale, grace=1)
        # `make stack-down` and `make down` with state files naming the decoy
        local = tmp_path / "local"
        (local / "airflow-server").mkdir(parents=True)
        (local / "stack.json").write_text(
            json.dumps(
                {
                    "project": "p",
                    "pubsub": asdict(stale),
                    "bigquery": asdict(older_version),
                    "bigquery_grpc_port": 3,
                }
            )
        )
        (local / "airflow-server" / "server.json").write_text(
            json.dumps(
                {
                    "home": str(local / "airflow-server"),
                    "port": 1,
                    "username": "u",
                    "password": "p",
                    "servers": [asdict(stale)],
                }
            )
        )
        env = {**os.environ, "NBA_PHASE5_LOCAL_DIR": str(local)}
        for tool in ("local_airflow.py", "localstack.py"):
            done = subprocess.run(
                [sys.executable, str(ROOT / "tools" / tool), "down"], env=env, capture_output=True, text=True
            )
            assert done.returncode in (0, 1), done.stderr
        time.sleep(0.5)
        assert decoy.poll() is None, "the decoy was signalled"
    finally:
        _ended(decoy)


def test_stop_server_ends_the_group_we_started() -> None:
    ours = _sleeper()
    server = localstack.Server.of_child("sleeper", ours)
    assert server.alive()
    localstack.stop_server(server, grace=2)  # reaps it, too
    assert not server.alive()
    assert not Path(f"/proc/{ours.pid}").exists()


def test_secrets_are_written_owner_only_and_shared_folders_are_never_narrowed(tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o755)
    ours.chmod(0o755)
    localstack.write_private(ours / "secret.json", "{}")
    assert (ours / "secret.json").stat().st_mode & 0o777 == 0o600
    assert ours.stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    localstack.private_dir(shared)
    assert shared.stat().st_mode & 0o7777 == 0o1777
