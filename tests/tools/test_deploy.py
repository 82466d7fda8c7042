"""`make deploy` (tools/deploy.py) in dry-run mode: the Composer commands, in a safe order, and nothing run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import deploy
from helpers import run_make

ROOT = Path(__file__).resolve().parents[2]
TARGET = ("ENV=nba-staging", "LOCATION=us-east1", "PROJECT=example-staging-project")


def _make_deploy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = run_make("-s", "deploy", *args, timeout=300, **env)
    return done


def test_dry_run_prints_every_command_in_a_safe_order_and_runs_none() -> None:
    done = _make_deploy(*TARGET, "DRY_RUN=1")
    assert done.returncode == 0, done.stdout + done.stderr
    commands = [line.strip()[2:] for line in done.stdout.splitlines() if line.strip().startswith("$ ")]
    where = "--environment nba-staging --location us-east1 --project example-staging-project"
    backups = commands[:2]  # the rollback point comes first
    assert [c.split(" export ")[0].rsplit(" ", 1)[1] for c in backups] == ["dags", "plugins"]
    assert all(where in c and "/deploy-backups/nba-staging-" in c for c in backups)
    commands = commands[2:]
    assert commands[0].endswith("-m nba_phase5 provision --project example-staging-project")
    assert commands[1].startswith("gcloud composer environments update nba-staging --location us-east1")
    assert "--update-pypi-packages-from-file" in commands[1]
    assert commands[1].endswith("/requirements.txt")
    assert "pools -- set prediction_fanout 4" in commands[2]
    imports = commands[3:]
    kinds = [c.split(" import ")[0].rsplit(" ", 1)[1] for c in imports]
    sources = [Path(c.split(" --source ")[1]).name for c in imports]
    # Code first, the DAG file last: Composer never parses a DAG whose package is not there yet.
    assert list(zip(kinds, sources, strict=True)) == [
        ("plugins", ".airflowignore"),
        ("plugins", "nba_phase5"),
        ("dags", "include"),
        ("dags", "nba_phase5_predictions.py"),
    ]
    assert all(where in c for c in imports)
    assert done.stdout.rstrip().endswith("Dry run: nothing was changed.")


def test_staged_tree_has_what_composer_needs_and_no_bytecode(tmp_path: Path) -> None:
    staged = deploy.stage(tmp_path)
    assert (staged / "dags" / "nba_phase5_predictions.py").exists()
    assert (staged / "plugins" / ".airflowignore").exists()
    assert (staged / "plugins" / "nba_phase5" / "operators" / "fan_out.py").exists()
    assert (staged / "include" / "sql" / "phase4_gate.sql").exists()
    assert list(staged.rglob("__pycache__")) == []
    assert list(staged.rglob("*.pyc")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ENV=", "LOCATION=us-east1", "PROJECT=example-staging-project"), "ENV='' is not a Composer environment name"),
        (("ENV=nba-staging", "LOCATION=mars", "PROJECT=example-staging-project"), "LOCATION='mars' is not a region"),
        (("ENV=nba-staging", "LOCATION=us-east1", "PROJECT=x"), "PROJECT='x' is not a GCP project id"),
    ],
)
def test_missing_or_malformed_target_is_a_usage_error(args: tuple[str, ...], message: str) -> None:
    done = _make_deploy(*args, "DRY_RUN=1")
    assert done.returncode != 0
    assert message in done.stderr
    assert "Usage: make deploy ENV=<environment> LOCATION=<region> PROJECT=<id>" in done.stderr


def test_refuses_to_deploy_from_a_shell_pointed_at_the_emulators() -> None:
    done = _make_deploy(*TARGET, "DRY_RUN=1", PUBSUB_EMULATOR_HOST="127.0.0.1:8085")
    assert done.returncode != 0
    assert "PUBSUB_EMULATOR_HOST set: provisioning would go to the local emulators" in done.stderr


def test_requirements_become_composer_pypi_packages() -> None:
    packages = deploy.pypi_packages(ROOT / "requirements.txt")
    assert packages["apache-airflow-providers-google"].startswith("==")
    assert "apache-airflow" not in packages  # Composer owns Airflow itself
    assert set(packages) == {
        "apache-airflow-providers-google",
        "apache-airflow-providers-smtp",
        "google-cloud-bigquery",
        "google-cloud-pubsub",
    }
