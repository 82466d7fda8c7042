"""Test helpers: an Airflow context for calling one task's code, and what a worker would write."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, date, datetime
from typing import Any

from nba_phase5 import config
from nba_phase5.bigquery.bq import insert_rows, run_query
from nba_phase5.core.prediction_requests import request_id


class XComTI:
    """The slice of a task instance our code uses: XCom push/pull, keyed like Airflow's."""

    def __init__(self, task_id: str, xcoms: dict[tuple[str, str], Any] | None = None) -> None:
        self.task_id = task_id
        self.xcoms = xcoms if xcoms is not None else {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str | list[str], key: str = "return_value") -> Any:
        if isinstance(task_ids, list):  # as Airflow: one value per task that pushed one
            return [self.xcoms[(t, key)] for t in task_ids if (t, key) in self.xcoms]
        return self.xcoms.get((task_ids, key))


def task_context(dag: Any, task_id: str, game_date: date | None = None, **params: Any) -> dict[str, Any]:
    """A context for ``task_id`` of the real DAG, with its default params overridden by ``params``."""
    merged = copy.deepcopy(dag.params)
    merged.update(params)
    xcoms: dict[tuple[str, str], Any] = {}
    if game_date is not None:
        xcoms[("resolve_game_day", "game_date")] = game_date.isoformat()
    ti = XComTI(task_id, xcoms)

    class Run:
        dag_id = dag.dag_id
        run_id = "test_run"
        run_type = "manual"
        run_after = datetime.now(UTC)

    return {
        "dag": dag,
        "task": dag.get_task(task_id),
        "ti": ti,
        "params": merged.validate(),
        "run_id": "test_run",
        "dag_run": Run(),
        "logical_date": None,
    }


def request_ids(day: date, players: list[str]) -> set[str]:
    """The request ids the fan-out gives ``players`` on ``day``."""
    return {request_id(day, p) for p in players}


class InjectingPublisher:
    """The real emulator publisher, except that chosen request ids fail their first ``failures`` publishes."""

    def __init__(self, fail_ids: set[str], failures: int) -> None:
        from nba_phase5.bigquery.clients import publisher_client

        self.real = publisher_client()
        self.fail_ids = fail_ids
        self.failures = failures
        self.attempts: Counter[str] = Counter()
        self.injected = 0

    def topic_path(self, project: str, topic: str) -> str:
        return self.real.topic_path(project, topic)

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        from google.api_core.exceptions import ServiceUnavailable

        rid = attributes.get("request_id")
        if rid is None:  # not a prediction request (the Phase 6 hand-off): passed through untouched
            return self.real.publish(topic, data, **attributes)
        self.attempts[rid] += 1
        if rid in self.fail_ids and self.attempts[rid] <= self.failures:
            self.injected += 1
            failed: Future[str] = Future()
            failed.set_exception(ServiceUnavailable("injected publish failure"))
            return failed
        return self.real.publish(topic, data, **attributes)

    def stop(self) -> None:
        """Kept open: tests hand the same publisher to every publishing task of a run."""


def ready_players(bq: Any, day: date) -> list[str]:
    rows = run_query(
        bq,
        f"SELECT player_lookup FROM `{bq.project}.{config.FEATURE_STORE_TABLE}` "
        "WHERE game_date = @d AND is_production_ready ORDER BY player_lookup",
        {"d": day},
    )
    return [row["player_lookup"] for row in rows]


def write_predictions(bq: Any, day: date, players: list[str], system_id: str = "test_system") -> int:
    """Insert active predictions directly, where a worker would (production columns only)."""
    import uuid
    from decimal import Decimal

    now = datetime.now(UTC)
    rows = [
        {
            "prediction_id": str(uuid.uuid4()),
            "system_id": system_id,
            "player_lookup": p,
            "game_date": day,
            "game_id": "0022500000",
            "prediction_version": 1,
            "predicted_points": Decimal("20.5"),
            "confidence_score": Decimal("0.7"),
            "recommendation": "NO_LINE",
            "is_active": True,
            "created_at": now,
        }
        for p in players
    ]
    return insert_rows(bq, config.PREDICTIONS_TABLE, rows)


def prediction_count(bq: Any, day: date, *, active_only: bool = True) -> int:
    """Active predictions for ``day`` (every row with ``active_only=False``)."""
    rows = run_query(
        bq,
        f"SELECT COUNTIF(is_active OR NOT @active_only) AS n FROM `{bq.project}.{config.PREDICTIONS_TABLE}` "
        "WHERE game_date = @d",
        {"d": day, "active_only": active_only},
    )
    return int(rows[0]["n"])


def run_history(bq: Any, day: date) -> list[dict[str, Any]]:
    """This DAG's run-history rows for ``day``, ``summary`` decoded into a dict."""
    rows = run_query(
        bq,
        f"SELECT * EXCEPT (summary, trigger_message_data), TO_JSON_STRING(summary) AS summary, "
        f"TO_JSON_STRING(trigger_message_data) AS trigger_message_data FROM `{bq.project}.{config.RUN_HISTORY_TABLE}` "
        "WHERE data_date = @d AND processor_name = @p ORDER BY started_at",
        {"d": day, "p": config.PHASE5_PROCESSOR},
    )
    from nba_phase5_local.status import decode_summary

    for row in rows:
        row["summary"] = decode_summary(row["summary"])
        row["trigger_message_data"] = decode_summary(row["trigger_message_data"])
    return rows


def alerts(bq: Any, day: date) -> list[dict[str, Any]]:
    return run_query(
        bq, f"SELECT * FROM `{bq.project}.{config.ALERTS_TABLE}` WHERE game_date = @d ORDER BY created_at", {"d": day}
    )


def drain_subscription(subscription: str, *, max_rounds: int = 20, empty_pulls: int = 1) -> list[Any]:
    """Pull (and ack) everything waiting on ``subscription`` of ``GCP_PROJECT``; returns the messages.

    It stops after ``empty_pulls`` empty answers in a row (or ``max_rounds`` pulls of up to 1,000).
    """
    import os

    from nba_phase5.bigquery.clients import subscriber_client

    client = subscriber_client()
    path = client.subscription_path(os.environ["GCP_PROJECT"], subscription)
    received: list[Any] = []
    empty = 0
    with client:
        for _ in range(max_rounds):
            response = client.pull(
                request={"subscription": path, "max_messages": 1000, "return_immediately": True}, timeout=10
            )
            if not response.received_messages:
                empty += 1
                if empty >= empty_pulls:
                    break
                continue
            empty = 0
            received += [m.message for m in response.received_messages]
            client.acknowledge(
                request={"subscription": path, "ack_ids": [m.ack_id for m in response.received_messages]}
            )
    return received


def run_make(*args: str, timeout: float, **env: str) -> Any:
    """`make ARGS` in the checkout, as a shell with no stack, Airflow or outer make would run it."""
    import os
    import subprocess
    from pathlib import Path

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MAKE"))}
    for variable in ("PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"):
        clean.pop(variable, None)
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=Path(__file__).resolve().parents[1],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def requested_for(day: date) -> list[Any]:
    """The requests waiting for ``day`` on the workers' subscription (drained). Earlier tests' unacked
    requests, held by a worker they killed, come back once their ack deadline passes: only this day's
    requests say anything about this day."""
    leftovers = drain_subscription(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    return [m for m in leftovers if json.loads(m.data).get("game_date") == day.isoformat()]


def request_bodies(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]


@contextlib.contextmanager
def running_worker(
    project: str, *, start_after: float = 0.0, start_when: Callable[[], bool] | None = None, **options: Any
) -> Iterator[Any]:
    """The package's real prediction worker, in a thread, for the length of the block.

    A worker slow to start: it pulls nothing until ``start_when()`` is true (polled every 0.2 s) and
    then ``start_after`` seconds more.
    """
    from nba_phase5_local.worker import PredictionWorker, WorkerOptions

    stop = threading.Event()
    worker = PredictionWorker(WorkerOptions(project=project, **options), stop=stop)

    def run() -> None:
        while start_when is not None and not start_when():
            if stop.wait(0.2):
                return
        if not stop.wait(start_after):
            worker.run()

    thread = threading.Thread(target=run, name="prediction-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=30)


# Every run passes every param it cares about: `dag.test()` leaves a run's conf in the DAG's params.
FAST = {
    "game_date": None,
    "force": False,
    "skip_event_wait": False,
    "event_wait_seconds": 20,
    "poll_interval_seconds": 1,
    "phase4_wait_minutes": 0,
    "straggler_wait_minutes": 0.25,
    "straggler_settle_polls": 3,
    # Shorter than a straggler wait, so a dropped request is presumed lost (and sent again) within the run.
    "in_flight_minutes": 0.1,
    "fan_out_chunk_size": 2500,
}


def coverage_params(day: date, *, force: bool = False, in_flight_minutes: float = 10.0) -> dict[str, Any]:
    """The query parameters of prediction_coverage.sql / missing_requests.sql for a batch started now."""
    from nba_phase5.bigquery import query_params

    return query_params.prediction_state(
        day.isoformat(),
        force=force,
        batch_started_at=datetime.now(UTC).isoformat(),
        in_flight_seconds=query_params.in_flight_seconds(in_flight_minutes),
    )


def run_dag(dag: Any, day: date, *, beside: bool = False, **conf: Any) -> tuple[str, dict[str, str]]:
    """One `dag.test()` run for ``day``; returns the run state and each task's state.

    ``dag.test()`` replaces an earlier run of the same logical date; ``beside`` keeps it (this run gets
    the date's noon as its logical date and the game date as a param, as a manual trigger would).
    """
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    logical = datetime(day.year, day.month, day.day, 12 if beside else 0, tzinfo=UTC)
    if beside:
        conf = {"game_date": day.isoformat(), **conf}
    dag_run = dag.test(logical_date=logical, run_conf={**FAST, **conf})
    with create_session() as session:
        run = session.get(DagRun, dag_run.id)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
        return str(run.state), states


def stage_rows(bq: Any, batch_id: str, worker_id: str, rows: list[dict[str, Any]]) -> str:
    """Load ``rows`` into the batch's staging table for ``worker_id``, as the platform's workers do (a load
    job, WRITE_APPEND, CREATE_IF_NEEDED, the predictions table's schema); returns the table's name."""
    from google.cloud import bigquery

    from nba_phase5.core import staging

    schema = bq.get_table(f"{bq.project}.{config.PREDICTIONS_TABLE}").schema
    table = staging.staging_table_id(batch_id, worker_id)
    job = bigquery.LoadJobConfig(schema=schema, write_disposition="WRITE_APPEND", create_disposition="CREATE_IF_NEEDED")
    bq.load_table_from_json(rows, f"{bq.project}.{staging.STAGING_DATASET}.{table}", job_config=job).result()
    return table
