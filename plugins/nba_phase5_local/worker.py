"""A local prediction worker: the stand-in for the platform's Phase 5 workers.

It pulls the requests from the local pull subscription, answers each as
:func:`nba_phase5_local.worker_answers.answer` says (docs/platform.md §7.4-§7.7), stages the rows of a 204 in
``_staging_{batch_id}_{worker_id}`` tables with one load job per (pull, batch), publishes the prediction-ready
message, then acks; a 500 is nacked. Fault knobs: :mod:`nba_phase5_local.worker_faults`. How it differs from
the real worker, and why: docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, cast

from nba_phase5 import config
from nba_phase5.bigquery import clients
from nba_phase5.core.staging import new_worker_id
from nba_phase5_local.worker_answers import decide
from nba_phase5_local.worker_faults import WorkerFaults
from nba_phase5_local.worker_io import FEATURES_SQL as FEATURES_SQL  # re-exported: bench reads it here
from nba_phase5_local.worker_io import StagingSchemaError, StagingWriter, describe, feature_key, fetch_features
from nba_phase5_local.worker_pubsub import RequestSubscription
from nba_phase5_local.worker_requests import RETRY, Answer, WorkerRequest, error_answer, parse_request, queryable

log = logging.getLogger(__name__)
#: A received message and the worker's answer to it.
Answered = tuple[Any, Answer]


def utc_today() -> date:
    """The worker's "today": the container's date, UTC on Cloud Run (docs/platform.md §7.4)."""
    return datetime.now(UTC).date()


@dataclass
class WorkerStats:
    received: int = 0
    #: Answered 204 (acked), and answered 500 (nacked: redelivered, dead-lettered after 5 deliveries).
    acked: int = 0
    nacked: int = 0
    #: Requests whose rows were staged, and those rows.
    staged_requests: int = 0
    staged_rows: int = 0
    #: Requests whose staging load failed (each one also counts as nacked).
    staging_failed: int = 0
    dropped: int = 0
    ready_published: int = 0
    ready_failed: int = 0
    dropped_ids: list[str] = field(default_factory=list)
    #: Answers by reason (``staged``, ``no predictions (no_features)``, ``missing field game_id`` ...).
    reasons: Counter[str] = field(default_factory=Counter)
    #: Every staging table written, ``project.dataset.table``.
    staging_tables: set[str] = field(default_factory=set)
    # Deliveries per request id: how the tests see whether anything was requested twice.
    deliveries: Counter[str] = field(default_factory=Counter, repr=False)

    @property
    def written(self) -> int:
        """Rows staged (the CLI's "predictions written")."""
        return self.staged_rows

    @property
    def invalid(self) -> int:
        """Messages answered 500 (the CLI's "invalid")."""
        return self.nacked

    @property
    def duplicates(self) -> int:
        """Always 0: the worker stages every delivery; consolidation de-duplicates."""
        return 0


@dataclass
class WorkerOptions:
    project: str
    subscription: str = config.PREDICTION_REQUESTS_SUBSCRIPTION
    drop_rate: float = 0.0
    seed: int = 0
    delay_ms: int = 0
    crash_after: int | None = None
    max_messages: int | None = None
    idle_exit: float | None = None
    batch_size: int = 500
    ready_topic: str = config.PREDICTION_READY_TOPIC
    #: ``K_REVISION``: the ready messages' ``worker_instance`` and the worker ids' prefix (else ``unknown``
    #: and ``worker_{12 hex}``).
    revision: str | None = field(default_factory=lambda: os.environ.get("K_REVISION") or None)
    #: The worker's date (UTC by default); tests inject one.
    today: Callable[[], date] = utc_today
    #: Pause after nacking, so a request that keeps failing does not become a hot loop.
    retry_pause_s: float = 2.0


def may_be_poison(exc: BaseException) -> bool:
    """Could a failed load come from one request's values (worth isolating), rather than from the system?

    A refused value (400) may; a missing column, a denied permission, a timeout or an outage may not.
    """
    # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
    from google.api_core.exceptions import BadRequest, GoogleAPIError

    if isinstance(exc, StagingSchemaError):
        return False
    return isinstance(exc, BadRequest) or not isinstance(exc, (GoogleAPIError, OSError))


class PredictionWorker:
    """Pull → answer → stage (one load per pull and batch) → publish ready → ack / nack."""

    def __init__(self, options: WorkerOptions, *, stop: threading.Event | None = None) -> None:
        self.options = options
        self.faults = WorkerFaults(options.drop_rate, options.seed, options.delay_ms, options.crash_after)
        self.stop = stop or threading.Event()
        self.stats = WorkerStats()

    @property
    def worker_instance(self) -> str:
        return self.options.revision or "unknown"

    def should_drop(self, request_id: str) -> bool:
        """Whether the injected drop rate drops this request (:meth:`WorkerFaults.should_drop`)."""
        return self.faults.should_drop(request_id)

    def run(self) -> WorkerStats:
        """Pull and answer until stopped (``max_messages``, ``idle_exit`` or :attr:`stop`); returns the stats."""
        options = self.options
        client = clients.bigquery_client(options.project)
        writer = StagingWriter(client)
        last_message = time.monotonic()
        with RequestSubscription(options.project, options.subscription, options.ready_topic) as pubsub:
            while not self.stop.is_set():
                if options.max_messages is not None and self.stats.received >= options.max_messages:
                    break
                limit = options.batch_size
                if options.max_messages is not None:
                    limit = min(limit, options.max_messages - self.stats.received)
                received = pubsub.pull(limit)
                if not received:
                    if options.idle_exit is not None and time.monotonic() - last_message >= options.idle_exit:
                        break
                    continue
                last_message = time.monotonic()
                self.handle(client, writer, pubsub, received)
        log.info("Worker done: %s", self.stats)
        return self.stats

    def handle(self, client: Any, writer: StagingWriter, pubsub: RequestSubscription, received: list[Any]) -> None:
        """Answer one pull: stage, publish the ready messages, then ack the 204s and nack the 500s.

        :param client: a BigQuery client (feature reads).
        :param writer: the staging writer.
        :param pubsub: the subscription the messages came from.
        :param received: the pull's received messages.
        """
        self.faults.delay()
        now, today = datetime.now(UTC), self.options.today()
        pending: list[tuple[Any, WorkerRequest | Answer]] = []
        dropped: list[Any] = []
        for message in received:
            self.stats.received += 1
            # Mid-pull: nothing below is staged or acked, as in a real crash.
            self.faults.crash_if_due(self.stats.received)
            parsed = parse_request(message.message.data, attributes=dict(message.message.attributes))
            if isinstance(parsed, WorkerRequest) and self._dropped(parsed):
                dropped.append(message)
            else:
                pending.append((message, parsed))
        answered = self.stage(writer, self.answer_all(client, pending, today, now))
        ready = [a.ready for _, a in answered if a.acked and a.ready is not None]
        if ready:
            published, failed = pubsub.publish_ready(ready)
            self.stats.ready_published += published
            self.stats.ready_failed += failed
        # Acked only now: a crash above leaves the whole pull to be redelivered.
        pubsub.ack(dropped + [m for m, a in answered if a.acked])
        retry = [m for m, a in answered if not a.acked]
        pubsub.nack(retry)
        for _, a in answered:
            self.stats.reasons[a.reason] += 1
        self.stats.acked += len(answered) - len(retry) + len(dropped)
        self.stats.nacked += len(retry)
        if retry:
            self.stop.wait(self.options.retry_pause_s)

    def _dropped(self, request: WorkerRequest) -> bool:
        self.stats.deliveries[request.request_id] += 1
        if not self.should_drop(request.request_id):
            return False
        # run_day.py counts these lines: keep "Dropped request <id> for <player> on <date> ".
        log.info(
            "Dropped request %s for %s on %s (drop rate %s)",
            request.request_id,
            request.player_lookup,
            request.game_date,
            self.options.drop_rate,
        )
        self.stats.dropped += 1
        self.stats.dropped_ids.append(request.request_id)
        return True

    def answer_all(
        self, client: Any, pending: list[tuple[Any, WorkerRequest | Answer]], today: date, now: datetime
    ) -> list[Answered]:
        """Each message's answer; the pull's feature rows are read with one query per dataset prefix.

        :param client: a BigQuery client.
        :param pending: each message with its parsed request (or its answer already).
        :param today: the worker's date.
        :param now: the rows' ``created_at``.
        """
        requests = [p for _, p in pending if isinstance(p, WorkerRequest) and queryable(p) is None]
        try:
            features = fetch_features(client, requests) if requests else {}
        except Exception as exc:  # the real worker's feature read fails inside its catch-all
            log.error("Feature read failed for %d requests: %s", len(requests), describe(exc))
            return [(m, p if isinstance(p, Answer) else error_answer(p, exc, today=today)) for m, p in pending]
        answered = []
        for message, parsed in pending:
            if isinstance(parsed, WorkerRequest):
                row = features.get(feature_key(parsed))
                parsed = decide(parsed, feature_row=row, today=today, now=now, worker_instance=self.worker_instance)
            if not parsed.acked or not parsed.rows:
                log.log(logging.WARNING if not parsed.acked else logging.INFO, "%s: %s", _who(parsed), parsed.reason)
            answered.append((message, parsed))
        return answered

    def stage(self, writer: StagingWriter, answered: list[Answered]) -> list[Answered]:
        """Load the rows of the pull's 204s, one load per (dataset, batch); a request whose rows could not
        be loaded is answered 500 instead.

        :param writer: the staging writer.
        :param answered: every message of the pull with its answer.
        """
        worker_id = new_worker_id(self.options.revision)
        groups: dict[tuple[str, str], list[Answered]] = {}
        for message, answer in answered:
            if answer.acked and answer.rows and answer.request is not None and answer.staging_batch:
                key = (answer.request.dataset_prefix or "", answer.staging_batch)
                groups.setdefault(key, []).append((message, answer))
        failed: dict[int, Answer] = {}
        for group in groups.values():
            for message, answer, exc in self._load_isolating(writer, group, worker_id):
                log.error("%s: staging write failed, answered 500: %s", _who(answer), describe(exc))
                failed[id(message)] = Answer(RETRY, f"staging write failed: {describe(exc)}", answer.request)
        self.stats.staging_failed += len(failed)
        return [(m, failed.get(id(m), a)) for m, a in answered]

    def _load_isolating(
        self, writer: StagingWriter, group: list[Answered], worker_id: str
    ) -> list[tuple[Any, Answer, BaseException]]:
        """Load ``group`` (one batch) in one job; a job refused for a value is split in halves until the
        failing requests stand alone. Returns those, with their errors."""
        first = group[0][1]
        rows = [row for _, answer in group for row in answer.rows]
        # stage() groups only answers with a request and a staging batch.
        request, batch = cast(WorkerRequest, first.request), cast(str, first.staging_batch)
        try:
            table = writer.load(request, batch=batch, worker_id=worker_id, rows=rows)
        except Exception as exc:
            if len(group) == 1 or not may_be_poison(exc):
                return [(message, answer, exc) for message, answer in group]
            log.warning("A load of %d requests failed (%s): isolating", len(group), describe(exc))
            half = len(group) // 2
            return self._load_isolating(writer, group[:half], worker_id) + self._load_isolating(
                writer, group[half:], worker_id
            )
        self.stats.staging_tables.add(table)
        self.stats.staged_requests += len(group)
        self.stats.staged_rows += len(rows)
        return []


def _who(answer: Answer) -> str:
    request = answer.request
    if request is None:
        return "Message"
    return f"Request {request.request_id} for {request.player_lookup} on {request.game_date}"
