"""Deploy the package to a Cloud Composer environment (the plan's staging → production step).

Standard library only. The steps, in an order that never lets Composer parse a DAG whose code is not
there yet:

0. ``python -m nba_phase5_local provision --check``: the project has every table, column, topic and
   subscription the DAG uses (read-only); if not, stop before anything is written;
1. export the environment's current dags/ and plugins/ to .local/deploy-backups/ (the rollback point);
2. provision the Pub/Sub topics and subscriptions and the BigQuery tables (idempotent, never alters);
3. install ``requirements.txt`` as the environment's PyPI packages, only when they differ (an
   environment update takes many minutes, and Composer refuses an update that changes nothing);
4. create the ``prediction_fanout`` pool;
5. upload the bundle (``make bundle``, tools/bundle.py): the package's ``.airflowignore`` first, then
   the package ``dags/nba_phase5/`` (with its ``include/``), then the DAG files last;
6. delete what the previous deployment had under this package's own paths (``dags/nba_phase5/``, the
   DAG files, ``plugins/nba_phase5/`` where versions before the bundle put the package) and the bundle
   no longer has, read from the backup of step 1. Nothing else in the bucket is ever deleted; files of
   older versions under shared names (``dags/include/``, ``plugins/.airflowignore``) are listed for a
   person to remove.

    python tools/deploy.py --env nba-staging --location us-east1 --project my-staging-project [--dry-run]
    make deploy ENV=nba-staging LOCATION=us-east1 PROJECT=my-staging-project [DRY_RUN=1]

``--dry-run`` prints every command and runs none; its deletions are read from the newest local backup
of the environment (a real run reads the backup it has just taken). Rollback and promotion: docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bundle  # tools/ is sys.path[0] when run as a script, and on the tests' pythonpath
from deploy_plan import Step, files_under, preflight, upload

ROOT = Path(__file__).resolve().parents[1]
# NBA_PHASE5_LOCAL_DIR moves .local (`make deploy LOCAL_DIR=...`, the tests).
BACKUPS = Path(os.environ.get("NBA_PHASE5_LOCAL_DIR") or ROOT / ".local") / "deploy-backups"

ENV_NAME = re.compile(r"^[a-z][-a-z0-9]{0,62}[a-z0-9]$")
LOCATION = re.compile(r"^[a-z]+-[a-z]+\d+$")
PROJECT = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")


class DeployError(RuntimeError):
    pass


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


def stage(destination: Path) -> Path:
    """Build the bundle (what goes into the bucket) and put requirements.txt beside it."""
    bundle.build(destination / "composer")
    shutil.copy2(ROOT / "requirements.txt", destination / "requirements.txt")
    return destination


def latest_backup(env: str, backups: Path = BACKUPS) -> Path | None:
    """The newest local backup of ``env`` (what a dry run compares the bundle against)."""
    found = sorted(p for p in backups.glob(f"{env}-*") if p.is_dir()) if backups.is_dir() else []
    return found[-1] if found else None


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
    print(f"Deploying nba_phase5 to Composer environment {env} ({location}, project {project})")
    with tempfile.TemporaryDirectory(prefix="nba-phase5-deploy-") as staging:
        staged = stage(Path(staging))
        files = sorted(f"{kind}/{f}" for kind in ("dags", "plugins") for f in files_under(staged / "composer" / kind))
        print(f"The bundle (make bundle), {len(files)} files:\n" + "".join(f"    {f}\n" for f in files), end="")
        first = preflight(env, location, project, backup)
        if dry_run:
            previous = latest_backup(env, backup_root)
            print(
                f"Deletions are read from the newest local backup, {previous}; a real run reads the one it takes."
                if previous
                else "No local backup of this environment yet: a real run reads its deletions from the one it takes."
            )
            return _deploy(
                first + upload(env, location, project, staged, previous), env, location, project, dry_run=True
            )
        if _deploy(first, env, location, project, dry_run=False, last=False) != 0:
            return 1
        rest = upload(env, location, project, staged, backup)
        return _deploy(rest, env, location, project, dry_run=False, offset=len(first))


def _deploy(
    steps: list[Step], env: str, location: str, project: str, *, dry_run: bool, offset: int = 0, last: bool = True
) -> int:
    run_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
    }
    wanted = pypi_packages()
    for number, step in enumerate(steps, offset + 1):
        if step.only_if_packages_differ and not dry_run:
            current = installed_packages(env, location, project)
            if all(current.get(name) == spec for name, spec in wanted.items()):
                print(f"[{number}] {step.what}: already installed, skipped")
                continue
        note = " (only when the environment's packages differ)" if step.only_if_packages_differ else ""
        print(f"[{number}] {step.what}{note}\n  $ {step.shell()}", flush=True)
        if dry_run:
            continue
        for folder in step.creates:
            folder.mkdir(parents=True)
        if subprocess.run(list(step.argv), env=run_env, check=False).returncode != 0:
            print(f"error: step {number} ({step.what}) failed; nothing after it ran", file=sys.stderr)
            if step.on_failure:
                print(f"error: {step.on_failure}", file=sys.stderr)
            return 1
    if last:
        print(
            "Dry run: nothing was changed."
            if dry_run
            else "Deployed. Now run the self-check and see it succeed (docs/deploy.md, After a deploy):\n"
            f"  gcloud composer environments run {env} --location {location} --project {project} "
            "dags trigger -- nba_phase5_self_check"
        )
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
