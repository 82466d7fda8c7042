"""The command line, run as a user runs it: a subprocess against the emulators; and the real-project guard
of ``seed``, ``publish-phase4`` and ``worker``, in process with every client factory booby-trapped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nba_phase5 import config
from nba_phase5.bigquery import clients
from nba_phase5.core.contract import Phase4CompletionEvent
from nba_phase5_local import cli as cli_module

PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": PLUGINS}
    return subprocess.run(
        [sys.executable, "-m", "nba_phase5_local", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.integration
def test_help_lists_every_command() -> None:
    out = cli("--help").stdout
    for command in ("provision", "seed", "publish-phase4"):
        assert command in out
    assert cli("seed", "--help").returncode == 0


@pytest.mark.integration
def test_provision_seed_publish_round_trip(stack, drain) -> None:
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    assert "Nothing to create" in cli("provision").stdout
    seeded = cli("seed", "--date", "2025-11-21", "--players", "200", "--ready-pct", "85")
    assert seeded.returncode == 0, seeded.stderr
    assert "200 players, 170 production-ready" in seeded.stdout
    published = cli("publish-phase4", "--date", "2025-11-21")
    assert published.returncode == 0, published.stderr
    [message] = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    event = Phase4CompletionEvent.from_json(message.data)
    # The platform's envelope by default: readiness is counted in BigQuery, not carried.
    assert (event.shape, event.players_ready, event.total_players, event.is_feature_store) == (
        "envelope",
        None,
        200,
        True,
    )
    published = cli("publish-phase4", "--date", "2025-11-21", "--shape", "script")
    assert published.returncode == 0, published.stderr
    [message] = drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    event = Phase4CompletionEvent.from_json(message.data)
    assert (event.shape, event.players_ready, event.total_players) == ("script", 170, None)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seed", "--date", "2025-02-30"], "not a calendar date"),
        (["seed", "--date", "2025-11-21", "--ready-pct", "120"], "between 0 and 100"),
        (["publish-phase4", "--date", "2025-11-21", "--players-ready", "9"], "give both"),
        (["publish-phase4", "--date", "2025-11-21", "--players-ready", "9", "--players-total", "3"], "exceeds"),
        (["publish-phase4", "--date", "2025-11-22"], "no players"),
        (["publish-phase4", "--date", "2025-11-21", "--shape", "xml"], "invalid choice"),
        (["publish-phase4", "--date", "2025-11-21", "--processor", "NoSuchProcessor"], "invalid choice"),
        (["publish-phase4", "--date", "2025-11-21", "--shape", "plan", "--status", "failed"], "no status"),
    ],
)
def test_invalid_input_is_refused_and_nothing_published(stack, drain, args, message) -> None:
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    result = cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []


@pytest.mark.integration
def test_emulator_down_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": PLUGINS,
        "GCP_PROJECT": "p",
        "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{port}",
    }
    env.pop("PUBSUB_EMULATOR_HOST", None)
    done = subprocess.run(
        [sys.executable, "-m", "nba_phase5_local", "seed", "--date", "2025-11-21"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"BIGQUERY_EMULATOR_HOST=http://127.0.0.1:{port} is set but nothing answers there" in done.stderr
    assert "make stack-up" in done.stderr


# The real-project guard (nba_phase5_local.project_guard) -------------------------------------------------------

REAL = "nba-props-prod"
BQ_EMULATOR = {"BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9"}
PUBSUB_EMULATOR = {"PUBSUB_EMULATOR_HOST": "127.0.0.1:9"}
GUARDED = {
    "seed": ["seed", "--date", "2025-11-28"],
    "publish-phase4": ["publish-phase4", "--date", "2025-11-28"],
    "publish-phase4-counts": ["publish-phase4", "--date", "2025-11-28", "--players-ready", "3", "--players-total", "4"],
    "worker": ["worker", "--max-messages", "1"],
}


class ClientReachedError(Exception):
    """A Google client was about to be built: the command got past the guard (and no further)."""


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every client factory raises instead of building; returns the names of those that were called.

    No emulator variable is set and ``GCP_PROJECT`` names a real-looking project."""
    import signal

    calls: list[str] = []

    def trap(name: str):
        def factory(*_: object, **__: object) -> None:
            calls.append(name)
            raise ClientReachedError(name)

        return factory

    for name in ("bigquery_client", "publisher_client", "subscriber_client"):
        monkeypatch.setattr(clients, name, trap(name))
    # main() probes the emulators' sockets when their variables are set: nothing listens here.
    monkeypatch.setattr(clients, "check_emulators", lambda: None)
    # The worker command installs a SIGTERM handler: keep pytest's own.
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    for variable in ("BIGQUERY_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GCP_PROJECT", REAL)
    return calls


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in process; assert it exits 2; return its one stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(argv)
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    return line


def _passes_the_guard(argv: list[str], built: list[str]) -> None:
    with pytest.raises(ClientReachedError):
        cli_module.main(argv)
    assert built, "the command should have gone on to build a client"


@pytest.mark.parametrize("command", GUARDED)
def test_guarded_commands_refuse_a_real_project_without_the_flag(
    command: str, built: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = _refused(GUARDED[command], capsys)
    assert built == []
    assert line.startswith(f"nba-phase5 {GUARDED[command][0]}: error: refusing to run")
    assert f"'{REAL}'" in line
    assert f"--allow-real-project {REAL}" in line


def test_seed_refusal_says_what_would_be_deleted(built: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    line = _refused(GUARDED["seed"], capsys)
    assert "delete 2025-11-28's schedule, feature-store and Phase 4 run-history rows" in line
    assert "BIGQUERY_EMULATOR_HOST" in line


@pytest.mark.parametrize("command", GUARDED)
@pytest.mark.parametrize("emulators", [{}, {**BQ_EMULATOR, **PUBSUB_EMULATOR}], ids=["real", "emulators"])
def test_guarded_commands_refuse_a_flag_naming_another_project(
    command: str,
    emulators: dict[str, str],
    built: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable, value in emulators.items():
        monkeypatch.setenv(variable, value)
    line = _refused([*GUARDED[command], "--allow-real-project", "nba-props-staging"], capsys)
    assert built == []
    assert "'nba-props-staging'" in line
    assert f"'{REAL}'" in line


@pytest.mark.parametrize(
    ("command", "emulators"),
    [
        ("seed", PUBSUB_EMULATOR),  # seed's BigQuery would be real
        ("publish-phase4", PUBSUB_EMULATOR),  # counting reads the real feature store
        ("publish-phase4", BQ_EMULATOR),
        ("publish-phase4-counts", BQ_EMULATOR),
        ("worker", PUBSUB_EMULATOR),
        ("worker", BQ_EMULATOR),
    ],
)
def test_one_real_service_is_enough_to_refuse(
    command: str,
    emulators: dict[str, str],
    built: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable, value in emulators.items():
        monkeypatch.setenv(variable, value)
    _refused(GUARDED[command], capsys)
    assert built == []


@pytest.mark.parametrize(
    ("command", "emulators"),
    [
        ("seed", BQ_EMULATOR),
        ("publish-phase4", {**BQ_EMULATOR, **PUBSUB_EMULATOR}),
        ("publish-phase4-counts", PUBSUB_EMULATOR),  # given both counts it never reads BigQuery
        ("worker", {**BQ_EMULATOR, **PUBSUB_EMULATOR}),
    ],
)
def test_guarded_commands_run_against_the_emulators(
    command: str, emulators: dict[str, str], built: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in emulators.items():
        monkeypatch.setenv(variable, value)
    _passes_the_guard(GUARDED[command], built)


@pytest.mark.parametrize("command", GUARDED)
def test_guarded_commands_run_on_the_real_project_the_flag_names(command: str, built: list[str]) -> None:
    _passes_the_guard([*GUARDED[command], "--allow-real-project", REAL], built)


def test_the_flag_follows_project_given_on_the_command_line(
    built: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # --project wins over GCP_PROJECT, for the guard as for the command.
    _passes_the_guard(["--project", "other", *GUARDED["seed"], "--allow-real-project", "other"], built)
    _refused(["--project", "other", *GUARDED["seed"], "--allow-real-project", REAL], capsys)


def test_seed_refuses_a_real_project_as_a_user_runs_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    # Were the guard missing, the client would fail at once for want of credentials, never reach Google.
    env.update(PYTHONPATH=PLUGINS, GCP_PROJECT=REAL, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "none.json"))
    done = subprocess.run(
        [sys.executable, "-m", "nba_phase5_local", *GUARDED["seed"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"--allow-real-project {REAL}" in done.stderr
