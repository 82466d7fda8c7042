"""Deploy the package to a Cloud Composer environment (the plan's staging → production step).

Standard library only. The steps, in an order that never lets Composer parse a DAG whose code is not
there yet:

0. ``python -m nba_phase5 provision --check``: the project has every table, column, topic and
   subscription the DAG uses (read-only); if not, stop before anything is written;
1. export the environment's current dags/ and plugins/ to .local/deploy-backups/ (the rollback point);
2. provision the Pub/Sub topics and subscriptions and the BigQuery tables (idempotent, never alters);
3. install ``requirements.txt`` as the environment's PyPI packages, only when they differ (an
   environment update takes many minutes, and Composer refuses an update that changes nothing);
4. create the ``prediction_fanout`` pool;
5. import ``plugins/`` (the package and its .airflowignore), then ``include/`` as ``dags/include``,
   then the DAG files last.

    python tools/deploy.py --env nba-staging --location us-east1 --project my-staging-project [--dry-run]
    make deploy ENV=nba-staging LOCATION=us-east1 PROJECT=my-staging-project [DRY_RUN=1]

``--dry-run`` prints every command and runs none. Rollback and promotion: docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKUPS = ROOT / ".local" / "deploy-backups"
POOL = ("prediction_fanout", "4", "Bounds concurrent fan-outs")
ENV_NAME = re.compile(r"^[a-z][-a-z0-9]{0,62}[a-z0-9]$")
LOCATION = re.compile(r"^[a-z]+-[a-z]+\d+$")
PROJECT = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class Step:
    what: str
    argv: tuple[str, ...]
    only_if_packages_differ: bool = False
    # Made just before the step runs, so a deploy refused by an earlier step leaves no empty folders.
    creates: tuple[Path, ...] = ()
    # Printed when the step fails: what to do about it.
    on_failure: str = ""

    def shell(self) -> str:
        return shlex.join(self.argv)


def validate(env: str, location: str, project: str) -> None:
    problems = []
    if not ENV_NAME.match(env or ""):
        problems.append(f"ENV={env!r} is not a Composer environment name (lower case letters, digits, '-')")
    if not LOCATION.match(location or ""):
        problems.append(f"LOCATION={location!r} is not a region such as us-east1")
    if not PROJECT.match(project or ""):
        problems.append(f"PROJECT={project!r} is not a GCP project id")
    if problems:
        raise DeployError("; ".join(problems) + ". Usage: make deploy ENV=<environment> LOCATION=<region> PROJECT=<id>")


def pypi_packages(requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """``requirements.txt`` as Composer's PyPI package map: name → version specifier."""
    packages = {}
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", line)
        if not match:
            raise DeployError(f"cannot read requirement {raw!r} in {requirements.name}")
        packages[match.group(1).lower()] = match.group(2).replace(" ", "")
    return packages


def stage(destination: Path, root: Path = ROOT) -> Path:
    """Copy what Composer gets (dags/, plugins/, include/, requirements.txt) without caches or bytecode."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
    for folder in ("dags", "plugins", "include"):
        shutil.copytree(root / folder, destination / folder, ignore=ignore, dirs_exist_ok=True)
    shutil.copy2(root / "requirements.txt", destination / "requirements.txt")
    return destination


def check_step(project: str) -> Step:
    """``provision --check``: first, and read-only, so that a project lacking a column the DAG reads or
    writes (or the wrong project id) stops the deploy before the backup, the provisioning or any upload.
    """
    return Step(
        "check the project's tables, topics and subscriptions against what the DAG uses",
        (sys.executable, "-m", "nba_phase5", "provision", "--check", "--project", project),
        on_failure=(
            f"project {project} is not ready for the DAG (problems above); nothing was backed up or deployed. "
            f"A new project lacking tables or topics: create them with `python -m nba_phase5 provision "
            f"--project {project}`, then deploy again. A wrong column: provisioning never alters an existing "
            "table; the table's owner must fix it (docs/deploy.md)."
        ),
    )


def plan(env: str, location: str, project: str, root: Path = ROOT, backup: Path | None = None) -> list[Step]:
    """The deployment's commands for the tree at ``root`` (a staged copy, see ``stage``).

    The read-only ``provision --check`` comes first. With ``backup``, the environment's current dags/
    and plugins/ are exported there next: the rollback point (docs/deploy.md), before anything changes.
    ``deploy`` validates the arguments first.
    """
    where = ("--environment", env, "--location", location, "--project", project)
    environments = ("gcloud", "composer", "environments")
    storage = (*environments, "storage")
    steps = [check_step(project)]
    if backup is not None:
        steps += [
            Step(
                f"back up the environment's {kind}/ (rollback point)",
                (*storage, kind, "export", *where, "--destination", str(backup / kind)),
                creates=(backup / kind,),
            )
            for kind in ("dags", "plugins")
        ]
    requirements = str(root / "requirements.txt")
    steps += [
        Step(
            "provision Pub/Sub and BigQuery (idempotent)",
            (sys.executable, "-m", "nba_phase5", "provision", "--project", project),
        ),
        Step(
            "install requirements.txt as the environment's PyPI packages",
            (*environments, "update", env, *where[2:], "--update-pypi-packages-from-file", requirements),
            only_if_packages_differ=True,
        ),
        Step("create the fan-out pool", (*environments, "run", env, *where[2:], "pools", "--", "set", *POOL)),
    ]
    plugin_sources = sorted((root / "plugins").iterdir())
    steps += [
        Step(f"plugins/{p.name}", (*storage, "plugins", "import", *where, "--source", str(p))) for p in plugin_sources
    ]
    steps.append(
        Step("include/ as dags/include", (*storage, "dags", "import", *where, "--source", str(root / "include")))
    )
    dag_files = sorted(p for p in (root / "dags").iterdir() if p.is_file())
    steps += [Step(f"dags/{p.name}", (*storage, "dags", "import", *where, "--source", str(p))) for p in dag_files]
    return steps


def installed_packages(env: str, location: str, project: str) -> dict[str, str]:
    argv = [
        "gcloud", "composer", "environments", "describe", env, "--location", location, "--project", project,
        "--format=json(config.softwareConfig.pypiPackages)",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DeployError(f"cannot describe environment {env}: {done.stderr.strip()}")
    described = json.loads(done.stdout or "{}")
    packages = described.get("config", {}).get("softwareConfig", {}).get("pypiPackages", {}) or {}
    return {k.lower(): v.replace(" ", "") for k, v in packages.items()}


def deploy(env: str, location: str, project: str, *, dry_run: bool, backup_root: Path = BACKUPS) -> int:
    # Every refusal comes before anything is written (the backup folders included).
    validate(env, location, project)
    emulators = [v for v in ("PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST") if os.environ.get(v)]
    if emulators:
        raise DeployError(
            f"{' and '.join(emulators)} set: provisioning would go to the local emulators, not {project}. "
            "Deploy from a shell that has not sourced .local/stack.env (or unset them)."
        )
    backup = backup_root / f"{env}-{time.strftime('%Y%m%dT%H%M%S')}"
    with tempfile.TemporaryDirectory(prefix="nba-phase5-deploy-") as staging:
        steps = plan(env, location, project, stage(Path(staging)), backup)
        return _deploy(steps, env, location, project, dry_run=dry_run)


def _deploy(steps: list[Step], env: str, location: str, project: str, *, dry_run: bool) -> int:
    run_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
    }
    wanted = pypi_packages()
    print(f"Deploying nba_phase5 to Composer environment {env} ({location}, project {project})")
    for number, step in enumerate(steps, 1):
        if step.only_if_packages_differ and not dry_run:
            current = installed_packages(env, location, project)
            if all(current.get(name) == spec for name, spec in wanted.items()):
                print(f"[{number}/{len(steps)}] {step.what}: already installed, skipped")
                continue
        note = " (only when the environment's packages differ)" if step.only_if_packages_differ else ""
        print(f"[{number}/{len(steps)}] {step.what}{note}\n  $ {step.shell()}", flush=True)
        if dry_run:
            continue
        for folder in step.creates:
            folder.mkdir(parents=True)
        if subprocess.run(list(step.argv), env=run_env, check=False).returncode != 0:
            print(f"error: step {number} ({step.what}) failed; nothing after it ran", file=sys.stderr)
            if step.on_failure:
                print(f"error: {step.on_failure}", file=sys.stderr)
            return 1
    print("Dry run: nothing was changed." if dry_run else "Deployed. Check the DAG in the environment's UI.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy nba_phase5 to a Cloud Composer environment")
    parser.add_argument("--env", required=True, help="Composer environment name")
    parser.add_argument("--location", required=True, help="its region, e.g. us-east1")
    parser.add_argument("--project", required=True, help="its GCP project id")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    args = parser.parse_args(argv)
    try:
        return deploy(args.env, args.location, args.project, dry_run=args.dry_run)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
