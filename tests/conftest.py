"""Shared fixtures: one real emulator stack per test session, on free ports.

Integration tests talk to the official Pub/Sub emulator and bqemulator over their real APIs; nothing
here is mocked. The stack is started lazily, so a unit-only run (`-m "not integration"`) starts nothing.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Airflow reads its home and config at import: point it at a throwaway home before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="nba-phase5-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "plugins")
# The in-process DAG runs go through dag.test(), which in Airflow 3.3.2 fails a successful run of a DAG with
# a deadline alert (nba_phase5/sla.py); the DAG integrity test and the e2e scheduler keep the alert.
os.environ["NBA_PHASE5_DEADLINE_ALERTS"] = "off"
for _var in ("PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"):
    os.environ.pop(_var, None)

import localstack  # noqa: E402  (tools/, on pythonpath)
from strict_bigquery import StrictBigQuery, strict_enabled  # noqa: E402

TEST_PROJECT = "test-nba-props"
_STRICT: list[StrictBigQuery] = []  # the session's proxy, while the stack is up


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.Stack]:
    """Both emulators on free ports, provisioned, with the process env pointing at them; BigQuery behind
    the strict proxy (tests/strict_bigquery.py) unless NBA_PHASE5_STRICT_BIGQUERY=0."""
    running = localstack.start_stack(
        TEST_PROJECT,
        pubsub_port=localstack.free_port(),
        bq_port=localstack.free_port(),
        bq_grpc_port=localstack.free_port(),
        log_dir=tmp_path_factory.mktemp("stack-logs"),
    )
    strict = StrictBigQuery(f"127.0.0.1:{running.bigquery.port}").start() if strict_enabled() else None
    _STRICT[:] = [strict] if strict else []
    # Every client of the session (stack.env() too) reaches BigQuery at the proxy's port.
    shown = (
        dataclasses.replace(running, bigquery=dataclasses.replace(running.bigquery, port=strict.port))
        if strict
        else running
    )
    saved = {k: os.environ.get(k) for k in shown.env()}
    env = shown.env()
    env.pop("AIRFLOW_HOME")  # keep the session's throwaway Airflow home
    env.pop("AIRFLOW__CORE__DAGS_FOLDER")
    os.environ.update(env)
    try:
        from nba_phase5.provisioning import provision

        provision(TEST_PROJECT)
        yield shown
    finally:
        if strict:
            strict.close()
        localstack.stop_stack(running)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def stack_strict(stack: localstack.Stack) -> Iterator[StrictBigQuery]:
    """The session's strict BigQuery proxy, to arm DML conflicts; disarmed after the test."""
    if not _STRICT:  # a test of production's rules cannot pass without them: say so, do not skip
        pytest.fail("this test needs the strict BigQuery proxy: unset NBA_PHASE5_STRICT_BIGQUERY=0")
    yield _STRICT[0]
    _STRICT[0].arm_conflicts(0)


@pytest.fixture
def bq(stack: localstack.Stack):  # type: ignore[no-untyped-def]
    from nba_phase5.clients import bigquery_client

    return bigquery_client(stack.project)


@pytest.fixture
def drain():  # type: ignore[no-untyped-def]
    """Pull (and ack) everything waiting on a subscription; returns the messages."""
    from helpers import drain_subscription

    return drain_subscription


@pytest.fixture(scope="session")
def airflow_db(stack: localstack.Stack) -> Path:
    """A migrated Airflow metadata DB in the session's throwaway home, with the fan-out pool."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "plugins")}
    for argv in (["db", "migrate"], ["pools", "set", "prediction_fanout", "4", "Bounds concurrent fan-outs"]):
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *argv], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def phase5_dag(airflow_db: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
    assert bag.import_errors == {}
    return bag.dags["nba_phase5_predictions"]
