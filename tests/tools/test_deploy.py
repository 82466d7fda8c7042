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
    # The read-only check comes first: a project the DAG cannot use stops the deploy before anything.
    assert commands[0].endswith("-m nba_phase5 provision --check --project example-staging-project")
    steps = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert steps[0].startswith("[1/")
    assert "check the project's tables, topics and subscriptions" in steps[0]
    backups = commands[1:3]  # then the rollback point
    assert [c.split(" export ")[0].rsplit(" ", 1)[1] for c in backups] == ["dags", "plugins"]
    assert all(where in c and "/deploy-backups/nba-staging-" in c for c in backups)
    commands = commands[3:]
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


def _fake_run(calls: list[list[str]], failing: str | None = None):  # type: ignore[no-untyped-def]
    """Stands in for subprocess.run: records each command; the one containing ``failing`` fails."""

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        failed = failing is not None and failing in " ".join(argv)
        return subprocess.CompletedProcess(argv, 1 if failed else 0, stdout="{}", stderr="")

    return run


def test_a_failed_check_stops_the_deploy_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(deploy.subprocess, "run", _fake_run(calls, failing="provision --check"))
    for variable in ("PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"):
        monkeypatch.delenv(variable, raising=False)
    code = deploy.deploy("nba-staging", "us-east1", "example-staging-project", dry_run=False, backup_root=tmp_path)
    assert code == 1
    assert len(calls) == 1  # no backup, no provisioning, no upload
    assert calls[0][-4:] == ["provision", "--check", "--project", "example-staging-project"]
    assert list(tmp_path.iterdir()) == []  # not even an empty backup folder
    err = capsys.readouterr().err
    assert "error: step 1 (check the project's tables, topics and subscriptions" in err
    assert "project example-staging-project is not ready for the DAG (problems above)" in err
    assert "nothing was backed up or deployed" in err


def test_a_passing_check_lets_the_other_steps_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(deploy.subprocess, "run", _fake_run(calls))
    for variable in ("PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"):
        monkeypatch.delenv(variable, raising=False)
    code = deploy.deploy("nba-staging", "us-east1", "example-staging-project", dry_run=False, backup_root=tmp_path)
    assert code == 0
    assert "--check" in calls[0]
    assert calls[1][4:6] == ["dags", "export"]
    assert calls[2][4:6] == ["plugins", "export"]
    [backup] = tmp_path.iterdir()  # made when the backup ran, after the check passed
    assert sorted(p.name for p in backup.iterdir()) == ["dags", "plugins"]
    assert calls[-1][-1].endswith("nba_phase5_predictions.py")


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
        "apache-airflow-providers-slack",
        "apache-airflow-providers-smtp",
        "google-cloud-bigquery",
        "google-cloud-pubsub",
    }
