"""`make system-test` (tools/system_test.py): one line and exit 0 without a project or credentials; with
them, the environment it runs the system-test DAG in. The run itself, on the emulators, is
tests/system/test_example_nba_phase5_bigquery.py."""

from __future__ import annotations

import json
from pathlib import Path

import system_test
from helpers import run_make

NEEDS = "Application Default Credentials (gcloud auth application-default login)"


def test_without_a_project_it_says_what_it_needs_in_one_line_and_succeeds() -> None:
    done = run_make("system-test", timeout=120, NBA_PHASE5_SYSTEM_TEST_PROJECT="")
    assert done.returncode == 0, done.stderr
    expected = f"system test skipped: set NBA_PHASE5_SYSTEM_TEST_PROJECT=<project> and {NEEDS}"
    assert done.stdout.splitlines() == [expected]
    assert done.stderr == ""


def test_without_credentials_it_says_so_in_one_line_and_succeeds(tmp_path: Path) -> None:
    done = run_make(
        "system-test",
        timeout=120,
        NBA_PHASE5_SYSTEM_TEST_PROJECT="example-project",
        GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "no-such-key.json"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"system test skipped: NBA_PHASE5_SYSTEM_TEST_PROJECT=example-project is set, but it also needs {NEEDS}"
    ]
    assert done.stderr == ""


def test_it_runs_against_real_gcp_with_adc_even_from_a_shell_set_for_the_emulators(tmp_path: Path) -> None:
    base = {
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085",
        "BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9050",
        "AIRFLOW_HOME": "/somewhere/else",
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": '{"conn_type": "google_cloud_platform", "extra": {"is_anonymous": true}}',
        "SYSTEM_TESTS_ENV_ID": "abc123",
        "PATH": "/usr/bin",
    }
    env = system_test.system_env("example-project", tmp_path, base=base)
    assert "PUBSUB_EMULATOR_HOST" not in env
    assert "BIGQUERY_EMULATOR_HOST" not in env
    assert env["AIRFLOW_HOME"] == str(tmp_path)
    # Application Default Credentials: no key, not anonymous.
    assert json.loads(env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"]) == {
        "conn_type": "google_cloud_platform",
        "extra": {"project": "example-project"},
    }
    assert (env["GCP_PROJECT"], env["NBA_PHASE5_SYSTEM_TEST_PROJECT"]) == ("example-project", "example-project")
    assert env["SYSTEM_TESTS_ENV_ID"] == "abc123"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(system_test.EXAMPLE.parent)
    assert env["PATH"] == "/usr/bin"


def test_the_emulator_run_differs_only_in_endpoints_and_credentials(tmp_path: Path) -> None:
    real = system_test.system_env("p", tmp_path, base={"SYSTEM_TESTS_ENV_ID": "x"})
    emulated = system_test.system_env(
        "p",
        tmp_path,
        base={"SYSTEM_TESTS_ENV_ID": "x"},
        endpoints={"BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:1", "PUBSUB_EMULATOR_HOST": "127.0.0.1:2"},
        connection_extra={"is_anonymous": True},
    )
    differ = {key for key in real.keys() | emulated.keys() if real.get(key) != emulated.get(key)}
    assert differ == {"BIGQUERY_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"}
