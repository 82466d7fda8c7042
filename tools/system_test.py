"""`make system-test`: the opt-in system test against real Google Cloud (tests/system/, docs/deploy.md).

Without ``NBA_PHASE5_SYSTEM_TEST_PROJECT``, or without Application Default Credentials, it prints one line
saying what it needs and exits 0, so the target is safe anywhere. With both it runs the system-test DAG
(tests/system/dags/example_nba_phase5_bigquery.py) once with ``dag.test()``, in a throwaway Airflow home,
against that project: sandbox datasets ``<dataset>_st_<env id>`` in the configured location
(``NBA_PHASE5_BIGQUERY_LOCATION``, default us-west2), deleted at the end. It exits with the run's status.

It never uses the local emulators (their variables are dropped), so a shell that sourced .local/stack.env
still tests real GCP. ``make test`` runs the same DAG through :func:`run` against the emulators
(tests/system/test_example_nba_phase5_bigquery.py): only the endpoints and credentials differ.

    NBA_PHASE5_SYSTEM_TEST_PROJECT=<project> [SYSTEM_TESTS_ENV_ID=<id>] python tools/system_test.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "system" / "dags" / "example_nba_phase5_bigquery.py"
PROJECT_ENV = "NBA_PHASE5_SYSTEM_TEST_PROJECT"
ENV_ID_ENV = "SYSTEM_TESTS_ENV_ID"  # the Google provider's system tests' name for it
EMULATOR_VARS = ("PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")
NEEDS = "Application Default Credentials (gcloud auth application-default login)"
AIRFLOW = ROOT / ".venv" / "bin" / "airflow"


def credentials_found() -> bool:
    """Whether Application Default Credentials are there (a key file, gcloud's, or the metadata server's)."""
    import logging
    import warnings

    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    # google.auth warns and logs while it looks (the metadata server, a missing quota project): the skip
    # line must stay one line.
    logging.getLogger("google.auth").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            google.auth.default()
        except DefaultCredentialsError:
            return False
    return True


def skip_reason(environ: Mapping[str, str]) -> str | None:
    """The one line to print instead of running, or None when the project and the credentials are there."""
    project = environ.get(PROJECT_ENV, "").strip()
    if not project:
        return f"system test skipped: set {PROJECT_ENV}=<project> and {NEEDS}"
    if not credentials_found():
        return f"system test skipped: {PROJECT_ENV}={project} is set, but it also needs {NEEDS}"
    return None


def system_env(
    project: str,
    airflow_home: Path,
    *,
    base: Mapping[str, str],
    endpoints: Mapping[str, str] | None = None,
    connection_extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The environment the system-test DAG runs in: ``base`` without Airflow's and the emulators' variables,
    then a fresh Airflow home, the project, the connection and ``endpoints`` (the emulators', in CI).

    :param connection_extra: added to ``google_cloud_default``'s extra (``is_anonymous`` for the emulators);
        without it the connection uses Application Default Credentials.
    """
    env = {k: v for k, v in base.items() if not k.startswith("AIRFLOW") and k not in EMULATOR_VARS}
    connection = {"conn_type": "google_cloud_platform", "extra": {"project": project, **(connection_extra or {})}}
    env |= {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(connection),
        "GCP_PROJECT": project,
        "GOOGLE_CLOUD_PROJECT": project,
        PROJECT_ENV: project,
        ENV_ID_ENV: base.get(ENV_ID_ENV) or uuid.uuid4().hex[:8],
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(EXAMPLE.parents[1])]),
    }
    return env | dict(endpoints or {})


def run(env: Mapping[str, str], *, capture: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Migrate the Airflow home's DB, then run the system-test DAG once; its output (stdout and stderr)
    captured in ``stdout``, or shown as it comes (``capture=False``)."""
    migrate = subprocess.run(
        [str(AIRFLOW), "db", "migrate"], env=dict(env), capture_output=True, text=True, timeout=600, check=False
    )
    if migrate.returncode != 0:
        return subprocess.CompletedProcess(migrate.args, migrate.returncode, migrate.stdout + migrate.stderr)
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=dict(env),
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def main() -> int:
    reason = skip_reason(os.environ)
    if reason:
        print(reason)
        return 0
    project = os.environ[PROJECT_ENV].strip()
    with tempfile.TemporaryDirectory(prefix="nba-phase5-system-test-") as home:
        env = system_env(project, Path(home), base=os.environ)
        print(f"System test in project {project} ({ENV_ID_ENV}={env[ENV_ID_ENV]})", flush=True)
        done = run(env, capture=False)
    if done.stdout:  # only when the DB migration failed
        print(done.stdout, end="")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
