"""How a local Airflow is configured: its settings, the secrets its components share, its environment.

Standard library only. Secrets are made once, kept across restarts in owner-only files (0600 in a 0700
folder) under the Airflow home, and never printed.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import bundle  # tools/ is sys.path[0] when run as a script, and on the tests' pythonpath
import localstack
from local_postgres import DB_NAME, DB_USER
from supervise import write_private

USERNAME = "admin"


def _kept_secrets(path: Path, make: dict[str, Callable[[], str]]) -> dict[str, str]:
    """The secrets at ``path`` (JSON), each one made by ``make`` the first time it is asked for and kept
    across restarts; the file is written owner-only (0600 in a 0700 folder) from the start."""
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: new() for name, new in make.items() if name not in kept}
    if missing or path.stat().st_mode & 0o077:
        kept |= missing
        write_private(path, json.dumps(kept))
    return kept


def _token() -> str:
    return secrets.token_urlsafe(32)


def shared_secrets(home: Path) -> dict[str, str]:
    """Every component must sign and check tokens with the same keys; ``db`` is the metadata DB's password."""
    return _kept_secrets(home / "local-secrets.json", {"jwt": _token, "key": _token, "db": _token})


def admin_password(home: Path) -> str:
    """The local admin's password, in the file the simple auth manager reads."""
    return _kept_secrets(home / "passwords.json", {USERNAME: lambda: secrets.token_urlsafe(12)})[USERNAME]


def settings(home: Path, port: int, db_port: int = 5432, composer: Path = bundle.OUT) -> dict[str, str]:
    """Airflow's configuration for a local server: LocalExecutor on 127.0.0.1:``port``, its metadata DB
    on the private PostgreSQL cluster at ``db_port`` (SQLite, shared by five components and the CLI,
    failed `airflow backfill create` with "database is locked"), and the DAGs and plugins folders of
    the Composer bundle ``composer`` (`make bundle`), so every component imports what Composer 3 would."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(composer / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(composer / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "15",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    }


def airflow_env(stack_env: dict[str, str], home: Path, port: int, db_port: int, composer: Path) -> dict[str, str]:
    """Environment of every component: the stack's emulators and connection, plus a local Airflow.

    ``PYTHONPATH`` is the bundle's ``dags/`` alone, as on Composer 3, which puts its synchronized
    ``dags/`` folder on every component's path: not the repo's ``plugins/``, so an import that only
    works from the checkout fails here as it would in the environment (the triggerer included, which
    imports trigger classes by path and adds no DAG folder of its own)."""
    keys = shared_secrets(home)
    # the DAG as Composer runs it: with its deadline alert, whatever the caller's shell turned off
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW") and k != localstack.settings().DEADLINE_ALERTS_ENV
    }
    env.update(stack_env)
    env.update(settings(home, port, db_port, composer))
    env["PYTHONPATH"] = str(composer / "dags")
    env["AIRFLOW__API__SECRET_KEY"] = keys["key"]
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = keys["jwt"]
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
        f"postgresql+psycopg2://{DB_USER}:{keys['db']}@127.0.0.1:{db_port}/{DB_NAME}"
    )
    return env
