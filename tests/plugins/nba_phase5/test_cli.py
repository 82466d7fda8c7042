"""The command line, run as a user runs it: a subprocess against the emulators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nba_phase5 import config
from nba_phase5.contract import Phase4CompletionEvent

pytestmark = pytest.mark.integration


PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": PLUGINS}
    return subprocess.run(
        [sys.executable, "-m", "nba_phase5", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_help_lists_every_command() -> None:
    out = cli("--help").stdout
    for command in ("provision", "seed", "publish-phase4"):
        assert command in out
    assert cli("seed", "--help").returncode == 0


def test_provision_seed_publish_round_trip(stack, drain) -> None:  # type: ignore[no-untyped-def]
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
def test_invalid_input_is_refused_and_nothing_published(stack, drain, args, message) -> None:  # type: ignore[no-untyped-def]
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    result = cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []


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
        [sys.executable, "-m", "nba_phase5", "seed", "--date", "2025-11-21"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"BIGQUERY_EMULATOR_HOST=http://127.0.0.1:{port} is set but nothing answers there" in done.stderr
    assert "make stack-up" in done.stderr
