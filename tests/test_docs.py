"""Every `make` target, `nba-phase5` command and flag, and script flag the docs name exists (tests/doc_commands.py);
and after `make venv` the console script runs from any directory, with no PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import doc_commands

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"


def test_every_target_command_and_flag_the_docs_name_exists() -> None:
    assert doc_commands.scan(doc_commands.docs()) == []


def test_the_docs_are_actually_read() -> None:
    # a scanner that matched nothing would pass the test above: it must see the commands the docs show
    texts = [s.text for path in doc_commands.docs() for s in doc_commands.snippets(path, path.name)]
    assert any(doc_commands.MAKE.search(t) for t in texts)
    assert any(doc_commands.CLI.search(t) for t in texts)


FAKE_DOC = """\
Run `make run DATE=2025-11-28`, then `make no-such-target`; `make -C . lint` works, and prose may say
"to make stragglers". `python -m nba_phase5_local --project p seed --date $(date -u +%F)
--no-such-flag` wraps a line.

```
source .local/stack.env && .venv/bin/nba-phase5 seed --date 2025-11-28 [--players N --ready-pct P --no-games]
GCP_PROJECT=<project> nba-phase5 provision --check   # also --bogus-in-comment
.venv/bin/nba-phase5 worker \\
    --drop-rate 0.05 --seed 1 --crash-later 3
nba-phase5 reboot --date 2025-11-28
nba-phase5-trigger-sub is a subscription, not the command
python tools/localstack.py up --pubsub-port 8085 --bq-port 9050 --no-such-port 1
python tools/clean.py --root . ; tools/system_test.py --verbose
```
"""


def test_the_scanner_reports_each_missing_target_command_and_flag(tmp_path: Path) -> None:
    doc = tmp_path / "fake.md"
    doc.write_text(FAKE_DOC)
    assert doc_commands.scan([doc], root=tmp_path) == [
        "fake.md:7: nba-phase5 provision: no flag --bogus-in-comment",
        "fake.md:8: nba-phase5 worker: no flag --crash-later",  # the line a `\` continues
        "fake.md:10: nba-phase5: no command 'reboot'",
        "fake.md:12: tools/localstack.py up: no flag --no-such-port",
        "fake.md:13: tools/system_test.py: takes no flags",
        "fake.md:1: make no-such-target: no such target in the Makefile",
        "fake.md:2: nba-phase5 seed: no flag --no-such-flag",
    ]


def _installed_since_pyproject() -> bool:
    """`make venv` has run with this pyproject.toml (its stamp is newer): the console script must be there."""
    stamp = VENV / ".installed"
    return stamp.exists() and stamp.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime


@pytest.mark.parametrize(
    "argv", [["bin/nba-phase5"], ["bin/python", "-m", "nba_phase5_local"]], ids=["script", "module"]
)
def test_the_cli_runs_from_any_directory_without_pythonpath_after_make_venv(argv: list[str], tmp_path: Path) -> None:
    if not _installed_since_pyproject():
        pytest.fail("make venv has not run since pyproject.toml changed: run it (make test does) and test again")
    plain = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path))}
    done = subprocess.run(
        [str(VENV / argv[0]), *argv[1:], "--help"], cwd=tmp_path, env=plain, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: nba-phase5 ")
    from nba_phase5_local.cli import build_parser

    for command in doc_commands._subcommands(build_parser()):
        assert command in done.stdout
