"""A strict BigQuery for the tests: an HTTP proxy in front of bqemulator's REST port with production's rules.

bqemulator runs every job in ``US``, finds jobs without a location, ignores ``require_partition_filter`` and
never has two DML statements collide. The proxy answers as production does (what it refused: ``.refusals``,
``GET /_strict/state``, and one JSON line each in ``$NBA_PHASE5_STRICT_BIGQUERY_LOG`` when set):

* **Job location**: ``nba_phase5.config.bigquery_location()``, where the platform's single-region datasets
  are (docs/platform.md §0). Lookups (jobs.get, getQueryResults, jobs.cancel, jobs.delete) must name it:
  "You must specify the location to run the job for the following scenarios: … If the job's location is in
  a single region" (https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/get); else 404 ``Not
  found: Job P:ID`` (googleapis/nodejs-bigquery#1016, fluent-plugins-nursery/fluent-plugin-bigquery#172). A
  job inserted without a location runs where its datasets are, and its jobReference says where, which the
  clients follow. One naming another location fails the InsertJob with NOT_FOUND "Not found: Dataset
  myproject:mydataset was not found in location US" (https://cloud.google.com/bigquery/docs/introduction-audit-workloads).
* **require_partition_filter** (the rule: tests/strict_bigquery_rules.py): "Cannot query over table '…'
  without a filter over column(s) '…' that can be used for partition elimination", ``invalidQuery``, HTTP 400
  (apache/incubator-superset#7167: jobs.insert took the job, getQueryResults answered 400). jobs.query and
  dry runs answer the 400 at once.
* **DML conflicts, on demand** (:meth:`StrictBigQuery.arm_conflicts`, ``POST /_strict/conflicts``): "Mutating
  DML statements that run concurrently on a table cause DML statement conflicts … BigQuery tries to rerun
  failed statements up to three times" (https://cloud.google.com/bigquery/docs/data-manipulation-language#dml_statement_conflicts),
  then fails one: "Could not serialize access to table P:D.T due to concurrent update", ``invalidQuery``,
  HTTP 400 (confluentinc/kafka-connect-bigquery#279), which google-cloud-bigquery raises as ``BadRequest``.
  The conflicted job never reaches the emulator, so it changes nothing.

Everything else (tables, uploads, streaming inserts) is forwarded unchanged.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import strict_bigquery_rules as rules

ENABLED_ENV = "NBA_PHASE5_STRICT_BIGQUERY"  # "0" leaves the proxy out of the test stack
LOG_ENV = "NBA_PHASE5_STRICT_BIGQUERY_LOG"  # a file: one JSON line per refused request
CONTROL = "/_strict/"  # BigQuery's paths all start with /bigquery/ or /upload/
PROJECT = r"/bigquery/v2/projects/(?P<project>[^/]+)/(?P<kind>jobs|queries)"
LOOKUP = re.compile(PROJECT + r"/(?P<job>[^/]+?)(?P<verb>/cancel|/delete)?")  # jobs.get, getQueryResults, …
INSERT = re.compile(r"(?P<upload>/upload)?" + PROJECT)  # jobs.insert, jobs.query (POST), jobs.list (GET)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailers", "transfer-encoding", "upgrade"}
NOT_FORWARDED = HOP_BY_HOP | {"accept-encoding", "content-length"}  # identity bodies, so JSON can be rewritten
NOT_RETURNED = HOP_BY_HOP | {"content-length", "date", "server"}


def error_reply(code: int, reason: str, message: str) -> Reply:
    return Reply(code, rules.error_body(code, reason, message))


def strict_enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "1").strip() != "0"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "application/json")])


@dataclass
class Job:
    location: str
    failed: dict[str, Any] | None = None  # the job resource of a job the proxy failed itself
    error: Reply | None = None  # what getQueryResults answers for it


@dataclass
class Refusal:
    rule: str  # location, partition_filter, conflict
    status: int
    message: str
    sql: str = ""


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sized or chunked (the proxy forwards it sized)."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    handler.send_response(reply.status)
    for name, value in reply.headers:
        if name.lower() not in NOT_RETURNED:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(reply.body)))
    handler.end_headers()
    handler.wfile.write(reply.body)


class StrictBigQuery:
    """The proxy; ``with StrictBigQuery(upstream) as proxy:`` serves ``proxy.url`` on a free port."""

    def __init__(self, upstream: str, location: str | None = None) -> None:
        from nba_phase5 import config

        parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.location = location or config.bigquery_location()
        self.required = rules.required_partition_filters()
        self.jobs: dict[tuple[str, str], Job] = {}
        self.refusals: list[Refusal] = []
        self.conflicted: list[str] = []  # the SQL of each statement failed as a conflict
        self.conflicts_left, self.conflict_match = 0, re.compile("")
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port, self.url = 0, ""

    def arm_conflicts(self, count: int = 1, match: str | None = None) -> None:
        """Fail the next ``count`` mutating DML statements (only those whose SQL matches ``match``)."""
        with self.lock:
            self.conflicts_left, self.conflict_match = count, re.compile(match or "", re.DOTALL)

    def start(self) -> StrictBigQuery:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
            # client's delayed ACK (~40 ms a response here), slowing every BigQuery call of the tests.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="strict-bigquery", daemon=True).start()
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> StrictBigQuery:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body, url, method = read_body(handler), urlsplit(handler.path), handler.command
        located: str | None = self.location
        reply: Reply | None = None
        if url.path.startswith(CONTROL):
            reply = self.control(method, url.path, body)
        elif (lookup := LOOKUP.fullmatch(url.path)) and method in ("GET", "POST", "DELETE"):
            reply = self.lookup(lookup, parse_qs(url.query).get("location", [""])[0])
        elif (insert := INSERT.fullmatch(url.path)) and method == "POST":
            metadata = rules.job_metadata(bool(insert["upload"]), handler.headers.get("Content-Type", ""), body)
            reply, located = self.insert(insert["project"], insert["kind"], metadata)
        if reply is None:
            reply = self.forward(handler, body)
            if LOOKUP.fullmatch(url.path) or INSERT.fullmatch(url.path):
                reply.body = self.relocated(reply.body, located or self.location)
        send(handler, reply)

    def lookup(self, match: re.Match[str], asked: str) -> Reply | None:
        """A job lookup: 404 unless it names the job's location; the proxy's own failed jobs answered here."""
        project, job_id = match["project"], match["job"]
        with self.lock:
            job = self.jobs.get((project, job_id))
        if asked.lower() != (job.location if job else self.location).lower():
            name = f"{project}:{asked}.{job_id}" if asked else f"{project}:{job_id}"
            return self.refuse("location", error_reply(404, "notFound", f"Not found: Job {name}"))
        if job is None or job.failed is None:
            return None
        if match["verb"] == "/delete":
            return Reply(204, b"", [])
        if match["verb"] == "/cancel":
            return Reply(200, json.dumps({"kind": "bigquery#jobCancelResponse", "job": job.failed}).encode())
        return job.error if match["kind"] == "queries" else Reply(200, json.dumps(job.failed).encode())

    def insert(self, project: str, kind: str, metadata: dict[str, Any]) -> tuple[Reply | None, str | None]:
        """jobs.insert / jobs.query: refused as production would, or forwarded (with the job's location)."""
        config = metadata.get("configuration") or {}
        query = metadata if kind == "queries" else config.get("query") or {}
        named = metadata.get("location") if kind == "queries" else (metadata.get("jobReference") or {}).get("location")
        sql = query.get("query") or ""
        legacy = not sql or query.get("useLegacySql") is True
        statement = rules.Statement(None, (), ()) if legacy else rules.analyse(sql, self.required)
        dataset = statement.dataset
        for target in ((config.get(k) or {}).get("destinationTable") or {} for k in ("load", "copy")):
            dataset = dataset or ((target.get("projectId", ""), target["datasetId"]) if "datasetId" in target else None)
        if named and named.lower() != self.location.lower():
            if dataset is None:
                return None, named  # reads no dataset: it may run anywhere
            message = f"Not found: Dataset {dataset[0] or project}:{dataset[1]} was not found in location {named}"
            return self.refuse("location", error_reply(404, "notFound", message), sql), named
        dry_run = bool(metadata.get("dryRun") or config.get("dryRun"))
        if statement.unfiltered:
            table, column = statement.unfiltered[0]
            message = rules.UNFILTERED_MESSAGE.format(table=table, column=column)
        elif statement.mutated and not dry_run and self.take_conflict(sql):
            catalog, dataset_id, table_id = statement.mutated[0]
            message = f"Could not serialize access to table {catalog or project}:{dataset_id}.{table_id}"
            message += " due to concurrent update"
        else:
            return None, named
        rule = "partition_filter" if statement.unfiltered else "conflict"
        error = self.refuse(rule, error_reply(400, "invalidQuery", message), sql)
        # jobs.query and dry runs answer the error; jobs.insert accepts the job and it fails.
        return (error if kind == "queries" or dry_run else self.failed_job(project, metadata, error, message)), None

    def failed_job(self, project: str, metadata: dict[str, Any], error: Reply, message: str) -> Reply:
        """A DONE query job that failed with ``message``, kept for the lookups that follow."""
        resource = rules.failed_job(project, self.location, metadata, message)
        with self.lock:
            self.jobs[(project, resource["jobReference"]["jobId"])] = Job(self.location, resource, error)
        return Reply(200, json.dumps(resource).encode())

    def take_conflict(self, sql: str) -> bool:
        with self.lock:
            if self.conflicts_left <= 0 or not self.conflict_match.search(sql):
                return False
            self.conflicts_left -= 1
            self.conflicted.append(sql)
            return True

    def refuse(self, rule: str, reply: Reply, sql: str = "") -> Reply:
        refusal = Refusal(rule, reply.status, json.loads(reply.body)["error"]["message"], sql)
        with self.lock:
            self.refusals.append(refusal)
        if log := os.environ.get(LOG_ENV):
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps(refusal.__dict__) + "\n")
        return reply

    def relocated(self, body: bytes, location: str) -> bytes:
        """The response with each jobReference reporting the job's location (recorded on first sight): a
        job's or a query's own, jobs.list's jobs and jobs.cancel's job (rows are left unread)."""
        try:
            payload = json.loads(body)
        except ValueError:
            return body
        if not isinstance(payload, dict):
            return body
        for node in [payload, *(payload.get("jobs") or []), payload.get("job")]:
            reference = node.get("jobReference") if isinstance(node, dict) else None
            if isinstance(node, dict) and isinstance(reference, dict) and "jobId" in reference:
                key = (reference.get("projectId", ""), reference["jobId"])
                with self.lock:
                    job = self.jobs.setdefault(key, Job(location))
                reference["location"] = job.location
                if "id" in node:
                    node["id"] = f"{key[0]}:{job.location}.{key[1]}"
        return json.dumps(payload).encode()

    def forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> Reply:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in NOT_FORWARDED}
        conn = http.client.HTTPConnection(*self.upstream, timeout=300)
        try:
            sized = body if body or handler.command in ("POST", "PUT", "PATCH") else None
            conn.request(handler.command, handler.path, body=sized, headers=headers)
            response = conn.getresponse()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in NOT_RETURNED]
            return Reply(response.status, response.read(), kept)
        finally:
            conn.close()

    def control(self, method: str, path: str, body: bytes) -> Reply:
        """``POST /_strict/conflicts`` ``{"count": N, "match": regex}`` arms conflicts from another process;
        ``GET /_strict/state`` reports them and every refusal."""
        if method == "POST" and path == f"{CONTROL}conflicts":
            request = json.loads(body or b"{}")
            self.arm_conflicts(int(request.get("count", 1)), request.get("match"))
        elif not (method == "GET" and path == f"{CONTROL}state"):
            return error_reply(404, "notFound", f"Not found: {path}")
        with self.lock:
            state = {"conflicts_left": self.conflicts_left, "conflicted": self.conflicted}
            state["refusals"] = [r.__dict__ for r in self.refusals]
        return Reply(200, json.dumps(state).encode())
