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


OLD_LAYOUT = {
    # what earlier deployments left in the bucket, beside other teams' DAGs and shared files
    "dags/nba_phase5_predictions.py": "old DAG",
    "dags/other_team_dag.py": "not ours",
    "dags/.airflowignore": "another team's ignore file",
    "dags/include/other_team_config.yaml": "not ours",
    "dags/include/sql/phase4_gate.sql": "ours, from before the bundle, under a shared name",
    "dags/nba_phase5/config.py": "a module the bundle still has",
    "dags/nba_phase5/removed_module.py": "a module since removed",
    "plugins/.airflowignore": "old, maybe shared",
    "plugins/nba_phase5/__init__.py": "the package where Composer 3 never synced it",
    "plugins/nba_phase5/airflow/operators/fan_out.py": "old",
    "plugins/other_team_plugin.py": "not ours",
}


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _commands(stdout: str) -> list[str]:
    return [line.strip()[2:] for line in stdout.splitlines() if line.strip().startswith("$ ")]


def test_dry_run_prints_every_command_in_a_safe_order_and_runs_none(tmp_path: Path) -> None:
    _write_tree(tmp_path / "deploy-backups" / "nba-staging-20261101T000000", OLD_LAYOUT)
    done = _make_deploy(*TARGET, "DRY_RUN=1", f"LOCAL_DIR={tmp_path}")
    assert done.returncode == 0, done.stdout + done.stderr
    commands = _commands(done.stdout)
    where = "--environment nba-staging --location us-east1 --project example-staging-project"
    # The read-only check comes first: a project the DAG cannot use stops the deploy before anything.
    assert commands[0].endswith("-m nba_phase5_local provision --check --project example-staging-project")
    steps = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert steps[0].startswith("[1] check the project's tables, topics and subscriptions")
    backups = commands[1:3]  # then the rollback point
    assert [c.split(" export ")[0].rsplit(" ", 1)[1] for c in backups] == ["dags", "plugins"]
    assert all(where in c and "/deploy-backups/nba-staging-" in c for c in backups)
    commands = commands[3:]
    assert commands[0].endswith("-m nba_phase5_local provision --project example-staging-project")
    assert commands[1].startswith("gcloud composer environments update nba-staging --location us-east1")
    assert "--update-pypi-packages-from-file" in commands[1]
    assert commands[1].endswith("/requirements.txt")
    assert "pools -- set prediction_fanout 4" in commands[2]
    uploads = [c for c in commands[3:] if " import " in c]
    kinds = [c.split(" import ")[0].rsplit(" ", 1)[1] for c in uploads]
    source_paths = [Path(c.split(" --source ")[1].split(" --destination ")[0]) for c in uploads]
    sources = [path.relative_to(path.parents[1]) for path in source_paths]
    # The bundle: the package's ignore file first, then the package, the DAG files last; nothing in plugins/.
    assert list(zip(kinds, map(str, sources), strict=True)) == [
        ("dags", "nba_phase5/.airflowignore"),
        ("dags", "dags/nba_phase5"),
        ("dags", "dags/nba_phase5_predictions.py"),
        ("dags", "dags/nba_phase5_self_check.py"),
    ]
    assert uploads[0].endswith("--destination nba_phase5")
    assert all(where in c for c in uploads)
    # Then what the previous deployment had and the bundle does not: ours only, after the DAG file.
    deletions = commands[3 + len(uploads) :]
    assert all(" delete " in c and where in c for c in deletions)
    assert [c.split(where)[1].split()[0] for c in deletions] == ["nba_phase5/removed_module.py", "nba_phase5"]
    assert [c.split(" delete ")[0].rsplit(" ", 1)[1] for c in deletions] == ["dags", "plugins"]
    # files of earlier versions under shared names are listed for a person, never deleted
    assert "    dags/include/sql/phase4_gate.sql" in done.stdout.splitlines()
    assert "    plugins/.airflowignore" in done.stdout.splitlines()
    assert "other_team" not in done.stdout
    # The bundle's files are listed, and no local-only module is among them.
    assert "    dags/nba_phase5/airflow/operators/fan_out.py" in done.stdout.splitlines()
    assert "dags/nba_phase5_local/worker.py" not in done.stdout
    assert "Deletions are read from the newest local backup" in done.stdout
    assert done.stdout.rstrip().endswith("Dry run: nothing was changed.")


def test_the_real_run_deletes_what_its_own_backup_shows_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    fake = _fake_run(calls)

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if " export " in " ".join(argv):  # the environment's current files land in the backup
            kind = argv[4]
            destination = Path(argv[argv.index("--destination") + 1])
            _write_tree(destination, {k.split("/", 1)[1]: v for k, v in OLD_LAYOUT.items() if k.startswith(kind)})
        return fake(argv, **kwargs)

    monkeypatch.setattr(deploy.subprocess, "run", run)
    for variable in ("PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"):
        monkeypatch.delenv(variable, raising=False)
    assert deploy.deploy("nba-staging", "us-east1", "example-staging-project", dry_run=False, backup_root=tmp_path) == 0
    deletes = [c for c in calls if c[5:6] == ["delete"]]
    assert [(c[4], c[12]) for c in deletes] == [("dags", "nba_phase5/removed_module.py"), ("plugins", "nba_phase5")]
    dag_file = next(i for i, c in enumerate(calls) if c[-1].endswith("nba_phase5_predictions.py"))
    assert dag_file < calls.index(deletes[0])


def _fake_run(calls: list[list[str]], failing: str | None = None):
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
    # An empty environment: nothing to delete; the daily DAG, then the self-check that checks it, last.
    assert [call[-1].rsplit("/", 1)[-1] for call in calls[-2:]] == [
        "nba_phase5_predictions.py",
        "nba_phase5_self_check.py",
    ]


def test_what_is_staged_is_the_bundle_and_requirements(tmp_path: Path) -> None:
    staged = deploy.stage(tmp_path)
    assert (staged / "composer" / "dags" / "nba_phase5_predictions.py").exists()
    assert (staged / "composer" / "dags" / "nba_phase5_self_check.py").exists()
    assert (staged / "composer" / "dags" / "nba_phase5" / "airflow" / "operators" / "fan_out.py").exists()
    assert (staged / "composer" / "dags" / "nba_phase5" / "include" / "sql" / "phase4_gate.sql").exists()
    assert list((staged / "composer" / "plugins").iterdir()) == []
    assert (staged / "requirements.txt").exists()
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


def test_requirements_are_ranges_of_what_the_image_lacks() -> None:
    packages = deploy.pypi_packages(ROOT / "requirements.txt")
    image = deploy.pypi_packages(ROOT / "requirements-composer-image.txt")
    assert set(packages) == {"apache-airflow-providers-slack", "apache-airflow-providers-smtp"}
    assert not any(spec.startswith("==") for spec in packages.values())  # never a pin
    assert all(">=" in spec and "<" in spec for spec in packages.values())  # a range, bounded
    assert "apache-airflow" not in packages  # Composer owns Airflow itself
    # what the image ships is never sent to Composer, but the local venv installs it
    assert {"apache-airflow-providers-google", "google-cloud-bigquery", "google-cloud-pubsub"} == set(image)
    assert not set(image) & set(packages)
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert {"-r requirements.txt", "-r requirements-composer-image.txt"} <= set(dev)


def test_the_verified_versions_fall_in_the_ranges() -> None:
    from packaging.requirements import Requirement

    pinned = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    pinned = {name.lower(): version for name, version in pinned.items()}
    for source in ("requirements.txt", "requirements-composer-image.txt"):
        for name, spec in deploy.pypi_packages(ROOT / source).items():
            assert Requirement(f"{name}{spec}").specifier.contains(pinned[name]), (source, name, pinned[name])
