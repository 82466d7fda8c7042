"""What `make deploy` does, as a list of steps (commands) it prints in a dry run and runs otherwise.

Read-only checks and the backup first, then what the environment needs (topics and tables, PyPI
packages, the pool), then the bundle (the DAG files last), then the deletions of what a previous
deployment had under this package's own paths and the bundle no longer has. Standard library only.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import bundle  # tools/ is sys.path[0] when run as a script, and on the tests' pythonpath

#: What this package owns in the bucket, per folder: only these are ever deleted. ``plugins/nba_phase5/``
#: is where versions before the bundle put the package (Composer 3 never synced it to the triggerer).
OWNED = {"dags": (f"{bundle.PACKAGE}/", *bundle.DAG_FILES), "plugins": (f"{bundle.PACKAGE}/",)}
#: Where versions before the bundle also wrote, under names other teams may use too: never deleted,
#: listed so that a person who knows the bucket can delete them.
SHARED_LEGACY = {"dags": ("include/sql/", "include/schemas/"), "plugins": (".airflowignore",)}
ENVIRONMENTS = ("gcloud", "composer", "environments")
STORAGE = (*ENVIRONMENTS, "storage")


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


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def stale_files(previous: Path, composer: Path) -> dict[str, list[str]]:
    """Per bucket folder, what this package owns in ``previous`` (an export of the environment's dags/
    and plugins/) and the bundle ``composer`` lacks: files, or a whole folder the bundle has none of."""
    stale: dict[str, list[str]] = {}
    for kind, owned in OWNED.items():
        has = files_under(composer / kind)
        gone = {f for f in files_under(previous / kind) - has if any(f == o or f.startswith(o) for o in owned)}
        empty = {o for o in owned if o.endswith("/") and not any(f.startswith(o) for f in has)}
        whole = {o for o in empty if any(f.startswith(o) for f in gone)}
        stale[kind] = sorted(whole | {f for f in gone if not any(f.startswith(o) for o in whole)})
    return stale


def shared_leftovers(previous: Path) -> list[str]:
    """Files of versions before the bundle under names other teams may share: listed, never deleted."""
    return sorted(
        f"{kind}/{f}"
        for kind, names in SHARED_LEGACY.items()
        for f in files_under(previous / kind)
        if any(f == n or f.startswith(n) for n in names)
    )


def check_step(project: str) -> Step:
    """``provision --check``: first, and read-only, so that a project lacking a column the DAG reads or
    writes (or the wrong project id) stops the deploy before the backup, the provisioning or any upload.
    """
    return Step(
        "check the project's tables, topics and subscriptions against what the DAG uses",
        (sys.executable, "-m", "nba_phase5_local", "provision", "--check", "--project", project),
        on_failure=(
            f"project {project} is not ready for the DAG (problems above); nothing was backed up or deployed. "
            f"A new project lacking tables or topics: create them with `.venv/bin/nba-phase5 provision "
            f"--project {project}`, then deploy again. A wrong column: provisioning never alters an existing "
            "table; the table's owner must fix it (docs/deploy.md)."
        ),
    )


def plan(
    env: str, location: str, project: str, staged: Path, backup: Path | None = None, previous: Path | None = None
) -> list[Step]:
    """The deployment's commands for the bundle staged in ``staged`` (see ``stage``): :func:`preflight`
    then :func:`upload`, its deletions read from ``previous`` (an export of the environment)."""
    return preflight(env, location, project, backup) + upload(env, location, project, staged, previous)


def _where(env: str, location: str, project: str) -> tuple[str, ...]:
    return ("--environment", env, "--location", location, "--project", project)


def preflight(env: str, location: str, project: str, backup: Path | None) -> list[Step]:
    """The read-only ``provision --check``, then (with ``backup``) the export of the environment's
    current dags/ and plugins/ there: the rollback point (docs/deploy.md), before anything changes."""
    steps = [check_step(project)]
    if backup is not None:
        steps += [
            Step(
                f"back up the environment's {kind}/ (rollback point)",
                (*STORAGE, kind, "export", *_where(env, location, project), "--destination", str(backup / kind)),
                creates=(backup / kind,),
            )
            for kind in ("dags", "plugins")
        ]
    return steps


def upload(env: str, location: str, project: str, staged: Path, previous: Path | None) -> list[Step]:
    """Provision, requirements, pool; the bundle's files (the DAG files last); then the deletions."""
    where = _where(env, location, project)
    steps = environment_steps(env, project, where, staged)
    steps += bundle_steps(where, staged / "composer")
    return steps if previous is None else steps + deletion_steps(where, staged / "composer", previous)


def environment_steps(env: str, project: str, where: tuple[str, ...], staged: Path) -> list[Step]:
    """What the environment needs before the code: topics and tables, PyPI packages, the pool."""
    requirements = ("--update-pypi-packages-from-file", str(staged / "requirements.txt"))
    return [
        Step(
            "provision Pub/Sub and BigQuery (idempotent)",
            (sys.executable, "-m", "nba_phase5_local", "provision", "--project", project),
        ),
        Step(
            "install requirements.txt as the environment's PyPI packages",
            (*ENVIRONMENTS, "update", env, *where[2:], *requirements),
            only_if_packages_differ=True,
        ),
        Step(
            "create the fan-out pool",
            (*ENVIRONMENTS, "run", env, *where[2:], "pools", "--", "set", *bundle.pool_args()),
        ),
    ]


def bundle_steps(where: tuple[str, ...], composer: Path) -> list[Step]:
    """The package's .airflowignore first, then the package, the plugins, and the DAG files last."""
    package = composer / "dags" / bundle.PACKAGE
    ignore = ("--source", str(package / ".airflowignore"), "--destination", bundle.PACKAGE)
    steps = [
        Step(
            f"dags/{bundle.PACKAGE}/.airflowignore (first: no module of the package is parsed as a DAG file)",
            (*STORAGE, "dags", "import", *where, *ignore),
        ),
        Step(
            f"dags/{bundle.PACKAGE}/ ({len(files_under(package))} files)",
            (*STORAGE, "dags", "import", *where, "--source", str(package)),
        ),
    ]
    steps += [
        Step(f"plugins/{p.name} (a real Airflow plugin)", (*STORAGE, "plugins", "import", *where, "--source", str(p)))
        for p in sorted((composer / "plugins").iterdir())
    ]
    return steps + [
        Step(
            f"dags/{name} (last: its code is in place)",
            (*STORAGE, "dags", "import", *where, "--source", str(composer / "dags" / name)),
        )
        for name in bundle.DAG_FILES
    ]


def deletion_steps(where: tuple[str, ...], composer: Path, previous: Path) -> list[Step]:
    """Delete what the previous deployment had under this package's own paths and the bundle lacks."""
    leftovers = shared_leftovers(previous)
    if leftovers:
        print(
            "Left in place (written by a version before the bundle, under names other DAGs may share; delete "
            "them with `gcloud composer environments storage dags|plugins delete` if only this package uses them):\n"
            + "".join(f"    {name}\n" for name in leftovers),
            end="",
        )
    return [
        Step(
            f"delete {kind}/{name} (not in the bundle)", (*STORAGE, kind, "delete", *where, name.rstrip("/"), "--quiet")
        )
        for kind, stale in stale_files(previous, composer).items()
        for name in stale
    ]
