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
from typing import Any

import pytest

# Airflow reads its home and config at import: point it at a throwaway home before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="nba-phase5-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "plugins")
# The in-process DAG runs go through dag.test(), which in Airflow 3.3.2 fails a successful run of a DAG with
# a deadline alert (nba_phase5/airflow/sla.py); the DAG integrity test and the e2e scheduler keep the alert.
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
        from nba_phase5_local.provisioning import provision

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
def bq(stack: localstack.Stack):
    from nba_phase5.bigquery.clients import bigquery_client

    return bigquery_client(stack.project)


@pytest.fixture
def drain():
    """Pull (and ack) everything waiting on a subscription; returns the messages."""
    from helpers import drain_subscription

    return drain_subscription


@pytest.fixture(scope="session")
def airflow_db(stack: localstack.Stack) -> Path:
    """A migrated Airflow metadata DB in the session's throwaway home, with the fan-out pool."""
    import subprocess
    import sys

    from airflow.configuration import conf

    # The DB this process's Airflow uses, whatever a test did to the environment since it was configured:
    # under pytest-xdist this fixture may first be asked for in any test of the worker's share.
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "plugins"),
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conf.get("database", "sql_alchemy_conn"),
    }
    for argv in (["db", "migrate"], ["pools", "set", "prediction_fanout", "4", "Bounds concurrent fan-outs"]):
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *argv], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def phase5_dag(airflow_db: Path):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
    assert bag.import_errors == {}
    return bag.dags["nba_phase5_predictions"]


#: `make test`'s e2e groups: pytest-xdist runs each group on one worker, which starts one real Airflow for
#: it (tests/e2e/conftest.py), so two Airflows of about equal work run side by side. A module not listed
#: joins the first group rather than start an Airflow of its own on some worker.
E2E_AIRFLOWS = {
    "e2e-airflow-a": ("test_one_batch.py", "test_deadline.py", "test_ui.py"),
    "e2e-airflow-b": (
        "test_scheduler_runs.py",
        "test_backfill.py",
        "test_triggerer_crash.py",
        "test_bundle_runs.py",
        "test_self_check.py",
    ),
}


#: Tests that each take minutes, outside the e2e groups: one unit of work too, handed out with the groups
#: at the start (xdist hands out the largest units first), not drawn last by a worker after the rest.
SLOW_ALONE = ("tests/tools/test_run_day.py", "tests/tools/test_local_airflow.py")


def e2e_group(nodeid: str) -> str | None:
    """The e2e group of a test id (``tests/e2e/<module>::<test>``), None outside tests/e2e."""
    path = nodeid.split("::", 1)[0]
    if not path.startswith("tests/e2e/"):
        return None
    module = path.rsplit("/", 1)[-1]
    return next((group for group, modules in E2E_AIRFLOWS.items() if module in modules), next(iter(E2E_AIRFLOWS)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's load scheduling, with each e2e group one unit of work: its tests run in turn on one
    worker (the largest units are handed out first, the slow tools tests with them). xdist's own
    `--dist loadgroup` cannot be used: it renames test ids through a private attribute that pytest 9 no
    longer reads."""
    from xdist.scheduler import LoadScopeScheduling

    class ByAirflow(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.split("::", 1)[0] in SLOW_ALONE:
                return "slow-alone"
            return e2e_group(nodeid) or nodeid

    return ByAirflow(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A test's captured output may hold what the worker logged of a hostile request (a lone surrogate):
    pytest-xdist cannot send such a report to the controller, so the text goes escaped."""
    report: pytest.TestReport = yield
    report.sections = [(title, _utf8_safe(text)) for title, text in report.sections]
    # A failure's traceback carries the captured output again, in its own sections.
    if hasattr(report.longrepr, "sections"):
        report.longrepr.sections = [tuple(map(_utf8_safe, section)) for section in report.longrepr.sections]
    return report


def _utf8_safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
