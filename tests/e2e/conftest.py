"""A real local Airflow (api-server, scheduler, dag-processor, triggerer, LocalExecutor) and the worker.

Started once for the tests in this folder on the session's emulators, in a throwaway home on a free
port, from a Composer bundle built into that home (`make bundle`'s layout: the bundle's dags/ as the
DAGs folder and the only entry on PYTHONPATH, an empty plugins folder), so the scheduler, DAG
processor, task processes and triggerer import exactly what Composer 3 would; stopped when the
folder's tests end, so its worker never competes with later tests for the requests subscription.
The tests talk to it only through its REST API and CLI, as a user would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import local_airflow
import local_postgres
import localstack
from e2e.scheduler import WORKER_DROP_RATE, WORKER_SEED
from helpers import drain_subscription
from nba_phase5 import config

TAP_SUBSCRIPTION = "e2e-prediction-requests-tap"


@pytest.fixture(scope="package")
def airflow(stack: localstack.Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_airflow.LocalAirflow]:
    home = tmp_path_factory.mktemp("airflow-server")
    running = local_airflow.start_airflow(
        stack.env(),
        home=home,
        port=localstack.free_port(),
        composer=home / "composer",
        extra_dags=tuple(sorted((Path(__file__).parent / "dags").glob("*.py"))),
        worker_args=("--drop-rate", str(WORKER_DROP_RATE), "--seed", str(WORKER_SEED)),
    )
    try:
        yield running
    finally:
        left = local_airflow.stop_airflow(running)
        local_postgres.remove_cluster(home)
        assert left == [], f"still running after stop: {left}"


@pytest.fixture(scope="package")
def api(airflow: local_airflow.LocalAirflow) -> local_airflow.AirflowAPI:
    return airflow.api()


@pytest.fixture(scope="package")
def request_tap(stack: localstack.Stack) -> Iterator[Callable[[], Counter[str]]]:
    """A second subscription on the requests topic: every request published, counted by request id."""
    from nba_phase5.bigquery.clients import subscriber_client

    client = subscriber_client()
    path = client.subscription_path(stack.project, TAP_SUBSCRIPTION)
    topic = f"projects/{stack.project}/topics/{config.PREDICTION_REQUESTS_TOPIC}"
    client.create_subscription(request={"name": path, "topic": topic, "ack_deadline_seconds": 60})

    def drain() -> Counter[str]:
        # A run is over before this is called: everything it published is waiting; two empty pulls to be sure.
        return Counter(m.attributes["request_id"] for m in drain_subscription(TAP_SUBSCRIPTION, empty_pulls=2))

    try:
        yield drain
    finally:
        client.delete_subscription(request={"subscription": path})
