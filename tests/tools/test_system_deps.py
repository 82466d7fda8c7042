"""tools/system_deps.sh: `make test` and `make run` install what the machine lacks (fake apt-get, real script)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "system_deps.sh"
TOOLS = ("bash", "dirname", "readlink", "id", "cat", "env")


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A PATH with the shell's tools, java and a gcloud with its Pub/Sub emulator; apt-get only logs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    sdk = tmp_path / "sdk"
    (sdk / "platform" / "pubsub-emulator").mkdir(parents=True)
    (sdk / "bin").mkdir()
    _script(sdk / "bin" / "gcloud", "exit 0")
    (bin_dir / "gcloud").symlink_to(sdk / "bin" / "gcloud")
    _script(bin_dir / "java", "exit 0")
    _script(bin_dir / "chromium", "exit 0")
    _script(bin_dir / "apt-get", f'echo "$@" >> {tmp_path}/apt.log; case "$*" in *google-cloud*) exit 100;; esac')
    return tmp_path


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def _run(machine: Path, what: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(machine / "bin"), "HOME": str(machine)}
    return subprocess.run(["bash", str(SCRIPT), what], env=env, capture_output=True, text=True, check=False)


def _apt(machine: Path) -> list[str]:
    log = machine / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


needs_postgres = pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")), reason="the script looks for PostgreSQL there"
)


@needs_postgres
def test_a_machine_with_everything_installs_nothing(machine: Path) -> None:
    done = _run(machine, "test")
    assert done.returncode == 0, done.stderr
    assert _apt(machine) == []


@needs_postgres
def test_missing_chromium_is_installed_for_make_test_only(machine: Path) -> None:
    (machine / "bin" / "chromium").unlink()
    assert _run(machine, "run").returncode == 0
    assert _apt(machine) == []  # make run does not need a browser
    done = _run(machine, "test")
    assert done.returncode == 0, done.stderr
    assert _apt(machine) == ["update -qq", "install -y -qq chromium"]


def test_missing_java_is_installed_for_make_run(machine: Path) -> None:
    (machine / "bin" / "java").unlink()
    done = _run(machine, "run")
    assert done.returncode == 0, done.stderr
    assert _apt(machine)[-1] == "install -y -qq default-jre-headless"


def test_a_missing_cloud_cli_that_apt_cannot_find_says_where_to_get_it(machine: Path) -> None:
    (machine / "bin" / "gcloud").unlink()
    done = _run(machine, "run")
    assert done.returncode == 1
    assert "google-cloud-cli google-cloud-cli-pubsub-emulator are not in this machine's apt sources" in done.stderr
    assert "gcloud components install beta pubsub-emulator" in done.stderr


def test_a_cloud_cli_without_the_emulator_gets_the_emulator(machine: Path) -> None:
    shutil.rmtree(machine / "sdk" / "platform" / "pubsub-emulator")
    done = _run(machine, "run")
    assert done.returncode == 1  # the fake apt has no Google packages
    assert _apt(machine)[-1] == "install -y -qq google-cloud-cli-pubsub-emulator"
    assert os.path.exists(machine / "sdk")
