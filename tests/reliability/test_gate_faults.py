"""The readiness gate under BigQuery faults, injected where they happen: while the triggerer polls the job.

A small HTTP proxy stands between every BigQuery client of the run and bqemulator's REST port
(``BIGQUERY_EMULATOR_HOST`` points at it). bqemulator finishes a query inside ``jobs.insert``, so the gate
would never defer; the proxy reports the gate's job as ``RUNNING`` on insert, as real BigQuery does for a
job that takes a moment, so the gate defers and ``BigQueryJobTrigger`` looks it up. Those lookups are
where faults go in:

* ``status``: ``GET …/jobs/<id>``, the trigger's status lookup (google-cloud-bigquery, in a thread);
* ``results``: ``GET …/queries/<id>``, the trigger's read of the first row, once the job is done.

A spy on the trigger records its events and marks when it runs, so each faulted request is shown to have
come from the triggerer, and every lookup is shown to name the job's location (in a single-region
location, production answers 404 to one without it). The DAG, operator, hook and trigger run unchanged.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import alerts, prediction_count, ready_players, requested_for, run_dag, run_history, running_worker
from nba_phase5 import config
from nba_phase5.airflow.operators.phase4_gate import UNAVAILABLE_MESSAGE
from nba_phase5_local.seeding import seed_day

pytestmark = pytest.mark.integration

GATE = "phase4_readiness.check_phase4_ready"
GATE_SQL_MARK = "SELECT phase4_ran, can_proceed"  # the first line of phase4_gate.sql's query
JOB_PATH = re.compile(r"/bigquery/v2/projects/[^/]+/(jobs|queries)/([^/?]+)")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailers", "transfer-encoding", "upgrade"}
BACKEND_ERROR = {"reason": "backendError", "message": "injected backendError: the job failed, try again"}


@dataclass
class Fault:
    """Answer the next triggerer request of ``target`` (``status`` or ``results``) with ``kind``.

    ``kind``: ``503`` (BigQuery's JSON error body), ``drop`` (close the connection unanswered) or
    ``job_error`` (a status poll saying the job ended in ``backendError``).
    """

    target: str
    kind: int | str


@dataclass
class Seen:
    job_id: str
    target: str  # insert, status, results
    trigger_running: bool
    location: str | None  # the request's ``location`` query parameter
    fault: Fault | None = None


@dataclass
class FaultProxy:
    """Forwards to ``upstream``; makes gate jobs look running at insert, then faults the triggerer's polls."""

    upstream: tuple[str, int]
    faults: list[Fault] = field(default_factory=list)
    always: Fault | None = None  # a fault on every matching request, after ``faults`` are used up
    trigger_running: threading.Event = field(default_factory=threading.Event)
    seen: list[Seen] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # what the trigger yielded, in order
    forwarded: int = 0
    gate_jobs: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def injected(self) -> list[Seen]:
        return [s for s in self.seen if s.fault is not None]

    def next_fault(self, target: str) -> Fault | None:
        """The fault at the head of the queue when it is for ``target`` (faults go in strictly in order)."""
        with self.lock:
            if self.faults:
                return self.faults.pop(0) if self.faults[0].target == target else None
            return self.always if self.always and self.always.target == target else None

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            with self.lock:
                self.forwarded += 1
            return response.status, response.reason, response.read()
        finally:
            conn.close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP | {"accept-encoding"}}
        path, method = handler.path, handler.command
        match = JOB_PATH.match(urlsplit(path).path)
        job_id = match.group(2) if match else None
        if method == "GET" and job_id in self.gate_jobs:
            target = "status" if match and match.group(1) == "jobs" else "results"
            self.gate_poll(handler, job_id, target, headers)
            return
        status, reason, payload = self.forward(method, path, headers, body)
        if method == "POST" and urlsplit(path).path.endswith("/jobs") and GATE_SQL_MARK.encode() in body:
            payload = self.gate_inserted(handler, payload)
        respond(handler, status, reason, payload)

    def gate_inserted(self, handler: BaseHTTPRequestHandler, payload: bytes) -> bytes:
        """The gate's job was inserted: remember it, and report it running as real BigQuery would."""
        job = in_our_location(json.loads(payload))
        job_id = job["jobReference"]["jobId"]
        with self.lock:
            self.gate_jobs.add(job_id)
        self.record(handler, job_id, "insert")
        return running(job)

    def gate_poll(self, handler: BaseHTTPRequestHandler, job_id: str, target: str, headers: dict[str, str]) -> None:
        fault = self.next_fault(target)
        self.record(handler, job_id, target, fault)
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            return
        if fault is not None and fault.kind == 503:
            error = {"code": 503, "message": "injected: backend unavailable", "status": "UNAVAILABLE"}
            error["errors"] = [{"reason": "backendError", "message": error["message"]}]
            respond(handler, 503, "Service Unavailable", json.dumps({"error": error}).encode())
            return
        status, reason, payload = self.forward("GET", handler.path, headers, b"")
        job = in_our_location(json.loads(payload))
        if fault is not None and fault.kind == "job_error":
            job["status"] = {"state": "DONE", "errorResult": BACKEND_ERROR, "errors": [BACKEND_ERROR]}
        respond(handler, status, reason, json.dumps(job).encode())

    def record(self, handler: BaseHTTPRequestHandler, job_id: str, target: str, fault: Fault | None = None) -> None:
        location = parse_qs(urlsplit(handler.path).query).get("location", [None])[0]
        seen = Seen(job_id, target, self.trigger_running.is_set(), location, fault)
        with self.lock:
            self.seen.append(seen)


def in_our_location(job: dict[str, Any]) -> dict[str, Any]:
    """The job as production reports it: in the location it was created in (bqemulator always says US)."""
    if "jobReference" in job:
        job["jobReference"]["location"] = config.bigquery_location()
    return job


def running(job: dict[str, Any]) -> bytes:
    job["status"] = {"state": "RUNNING"}
    return json.dumps(job).encode()


def respond(handler: BaseHTTPRequestHandler, status: int, reason: str, payload: bytes) -> None:
    handler.send_response(status, reason)
    handler.send_header("Content-Type", "application/json; charset=UTF-8")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@contextlib.contextmanager
def fault_proxy(upstream_url: str, **options: Any) -> Iterator[tuple[FaultProxy, str]]:
    """A :class:`FaultProxy` on a free 127.0.0.1 port in threads; yields it and its ``http://`` address."""
    parts = urlsplit(upstream_url)
    proxy = FaultProxy(upstream=(parts.hostname or "127.0.0.1", parts.port or 80), **options)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            proxy.handle(self)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bq-fault-proxy", daemon=True)
    thread.start()
    try:
        yield proxy, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def gate_proxy(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``start(**options) -> FaultProxy``: a proxy in front of bqemulator, every BigQuery client pointed at it.

    ``start`` also spies on ``BigQueryJobTrigger.run``: its events go to ``proxy.events``, and
    ``proxy.trigger_running`` is set while it runs.
    """
    with contextlib.ExitStack() as cleanup:

        def start(**options: Any) -> FaultProxy:
            proxy, url = cleanup.enter_context(fault_proxy(f"http://127.0.0.1:{stack.bigquery.port}", **options))
            monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", url)
            spy_on_trigger(monkeypatch, proxy)
            return proxy

        yield start


def spy_on_trigger(monkeypatch: pytest.MonkeyPatch, proxy: FaultProxy) -> None:
    """Record the trigger's events and flag, for the proxy, when a trigger is running; it runs unchanged."""
    from nba_phase5.airflow.triggers.bigquery_job import BigQueryJobTrigger

    real_run = BigQueryJobTrigger.run

    async def run(self):
        proxy.trigger_running.set()
        try:
            async for event in real_run(self):
                proxy.events.append(event.payload)
                yield event
        finally:
            proxy.trigger_running.clear()

    monkeypatch.setattr(BigQueryJobTrigger, "run", run)


def short_gate_retries(monkeypatch: pytest.MonkeyPatch, dag: Any) -> Any:
    """The DAG's gate with its retries and backoff as configured, but seconds instead of minutes, and its
    query on the first try too: these tests are of the gate's job, which in the DAG only a retry runs (the
    first try judges the readiness wait's row, tests/plugins/nba_phase5/airflow/operators/test_phase4_gate.py)."""
    gate = dag.get_task(GATE)
    assert (gate.retries, gate.retry_exponential_backoff) == (4, 2.0)
    monkeypatch.setattr(gate, "readiness", None)
    monkeypatch.setattr(gate, "retry_delay", timedelta(seconds=1))
    monkeypatch.setattr(gate, "max_retry_delay", timedelta(seconds=2))
    return gate


def gate_tries(dag: Any, day: date) -> int:
    """How many times the gate ran in the latest run for ``day``."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with create_session() as session:
        run = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == logical)
            .order_by(DagRun.id.desc())
            .limit(1)
        ).one()
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id, TaskInstance.task_id == GATE
            )
        ).one()
        return int(ti.try_number)


def _fresh_day(bq: Any, drain: Any, day: date, players: int, ready_pct: float) -> None:
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=players, ready_pct=ready_pct)


def test_faults_in_the_triggers_polls_are_retried_and_alert_nobody(
    stack: Any, bq: Any, phase5_dag: Any, drain: Any, gate_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = date(2025, 7, 28)
    _fresh_day(bq, drain, day, players=80, ready_pct=90)
    planned = [
        Fault("status", 503),  # absorbed by google-cloud-bigquery's own retry, inside one lookup
        Fault("status", "drop"),  # a dropped connection: retried the same way
        Fault("status", "job_error"),  # the job ended in backendError: the trigger's error event ends try 1
        Fault("results", 503),  # try 2's read of the row: retried inside the lookup
    ]
    proxy = gate_proxy(faults=list(planned))
    short_gate_retries(monkeypatch, phase5_dag)
    with running_worker(stack.project):
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, phase4_wait_minutes=0)
    assert (state, tasks[GATE]) == ("success", "success"), tasks

    # Every planned fault went in, each on a request for the gate's job made while the trigger ran.
    assert [s.fault for s in proxy.injected] == planned, proxy.seen
    assert all(s.trigger_running for s in proxy.injected)
    # Every lookup named the job's location (production answers 404 to one without it).
    lookups = [s for s in proxy.seen if s.target != "insert"]
    assert lookups
    assert {s.location for s in lookups} == {config.bigquery_location()}, lookups
    inserts = [s.job_id for s in proxy.seen if s.target == "insert"]
    assert len(inserts) == gate_tries(phase5_dag, day) == 2
    assert [e["status"] for e in proxy.events] == ["error", "success"], proxy.events
    assert "injected backendError" in proxy.events[0]["message"]
    assert proxy.events[1]["row"] == {"phase4_ran": True, "can_proceed": True}

    assert alerts(bq, day) == []  # no false "not ready", and nothing to report at all
    [row] = run_history(bq, day)
    assert (row["status"], row["records_processed"]) == ("success", 72)
    assert prediction_count(bq, day) == len(ready_players(bq, day)) == 72


def test_bigquery_unreachable_on_every_try_raises_one_error_alert_never_the_critical_one(
    stack: Any, bq: Any, phase5_dag: Any, drain: Any, gate_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = date(2025, 7, 29)
    _fresh_day(bq, drain, day, players=80, ready_pct=90)
    proxy = gate_proxy(always=Fault("status", 503))
    monkeypatch.setattr("nba_phase5.bigquery.bq.LOOKUP_RETRY_DEADLINE_S", 1.0)  # each lookup gives up after ~1 s
    gate = short_gate_retries(monkeypatch, phase5_dag)
    state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, phase4_wait_minutes=0)
    assert (state, tasks[GATE], tasks["fan_out_requests"]) == ("failed", "failed", "upstream_failed"), tasks

    assert gate_tries(phase5_dag, day) == gate.retries + 1 == 5
    assert len(proxy.injected) >= 5  # at least one refused lookup per try
    assert all(s.trigger_running and s.target == "status" for s in proxy.injected)
    assert [e["status"] for e in proxy.events] == ["error"] * 5
    [alert] = alerts(bq, day)
    assert alert["severity"] == "error"
    assert alert["task_id"] == GATE
    assert alert["message"].startswith(f"{UNAVAILABLE_MESSAGE}: ")
    assert "503" in alert["message"]
    assert "not ready" not in alert["message"]
    [row] = run_history(bq, day)
    assert (row["status"], row["records_processed"], row["alert_type"]) == ("failed", 0, "error")
    assert requested_for(day) == []


def test_a_real_not_ready_day_fails_at_once_with_one_critical_alert_in_words(
    stack: Any, bq: Any, phase5_dag: Any, drain: Any, gate_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = date(2025, 7, 30)
    _fresh_day(bq, drain, day, players=100, ready_pct=40)
    proxy = gate_proxy()  # no faults: the gate defers, the trigger answers, the answer is no
    short_gate_retries(monkeypatch, phase5_dag)
    state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, phase4_wait_minutes=0)
    assert (state, tasks[GATE], tasks["fan_out_requests"]) == ("failed", "failed", "upstream_failed"), tasks

    assert gate_tries(phase5_dag, day) == 1  # AirflowFailException: none of the 4 retries used
    assert proxy.injected == []
    [event] = proxy.events
    assert (event["status"], event["row"]) == ("success", {"phase4_ran": True, "can_proceed": False})
    [alert] = alerts(bq, day)
    assert alert["severity"] == "critical"
    assert "40/100 players ready (40.0 %)" in alert["message"]
    assert "[" not in alert["message"]  # words, not the check's list of booleans
    assert UNAVAILABLE_MESSAGE not in alert["message"]
    [row] = run_history(bq, day)
    assert (row["status"], row["records_processed"], row["alert_type"]) == ("failed", 0, "critical")
    assert requested_for(day) == []
