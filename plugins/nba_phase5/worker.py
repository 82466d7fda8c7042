"""A local prediction worker: the stand-in for the production Phase 5 workers.

It pulls the coordinator's requests (PLATFORM.md §7: body ``{player_lookup, game_date, game_id,
line_values}``; attributes ``request_id``, ``batch_id``, ``force``) from the local pull subscription,
predicts points with :mod:`nba_phase5.local_model` from the player's feature row, and writes
``player_prop_predictions`` rows in the production shape (§6) under ``config.LOCAL_SYSTEM_ID``.

Guarantees, per (game_date, player_lookup, system_id):

* never two active rows. A request for a player who already has an active row writes nothing (a
  duplicate), unless it is forced (attribute ``force=true``): then one MERGE inserts the new row
  (``prediction_version`` = latest + 1) and deactivates the old one (``is_active = FALSE``,
  ``superseded_by`` = the new id), atomically;
* a redelivered request never writes twice: ``prediction_id`` is a UUID5 of the request id, and an id
  already in the table is never inserted again;
* a message is acked only after its request is written (or found to be a duplicate), or after the
  message has been published to the dead-letter topic ``prediction-request-dlq``.

Bad requests never stop the worker nor hold back the good ones of their pull:

* a message it cannot use (any exception while parsing it, or a value out of bounds) is published to the
  dead-letter topic with its data, its attributes and a ``dlq_reason`` attribute, then acked;
* if a batch's MERGE still fails for a non-transient reason, the batch is split in halves until the
  failing requests are isolated: the rest is written, and only those are dead-lettered. When nothing of
  the batch can be written (a systemic fault, not a poison request) or the error is transient, the
  batch is nacked: Pub/Sub redelivers it, and its subscription's dead-letter policy (5 attempts, as the
  platform's) moves a message that keeps failing to the dead-letter topic.

The guarantees hold for one worker process (batches are sequential); concurrent workers could both
insert a first version, as two concurrent MERGEs cannot see each other's rows.

Fault knobs for demos and tests (:mod:`nba_phase5.worker_faults`): ``drop_rate``, ``seed``,
``delay_ms``, ``crash_after``; ``max_messages`` and ``idle_exit`` end the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nba_phase5 import config
from nba_phase5.bq import is_transient
from nba_phase5.worker_faults import WorkerFaults
from nba_phase5.worker_io import FEATURES_SQL as FEATURES_SQL  # re-exported: bench/run.py reads it here
from nba_phase5.worker_io import describe, write_predictions
from nba_phase5.worker_io import prediction_id as prediction_id
from nba_phase5.worker_pubsub import RequestSubscription
from nba_phase5.worker_requests import WorkerRequest, parse_request

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    superseded: int = 0
    dropped: int = 0
    #: Requests the worker could not use: unparseable, out of bounds, or isolated as failing the MERGE.
    invalid: int = 0
    dead_lettered: int = 0
    #: Messages nacked for redelivery (a batch that failed as a whole, a dead-letter publish that failed).
    nacked: int = 0
    no_features: int = 0
    dropped_ids: list[str] = field(default_factory=list)
    # Deliveries per request id: how the tests see whether anything was requested twice.
    deliveries: Counter[str] = field(default_factory=Counter, repr=False)


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
    dead_letter_topic: str = config.PREDICTION_REQUESTS_DLQ_TOPIC
    #: Pause after nacking a batch that failed as a whole, so a fault does not become a hot loop.
    retry_pause_s: float = 2.0


class BatchFailedError(RuntimeError):
    """No request of a batch could be written: the fault is not a request's own, so nothing is dead-lettered."""


def may_be_poison(exc: BaseException) -> bool:
    """Could ``exc`` come from one request's values (worth isolating), rather than from the system?

    A refused value (400) or a local error building the rows may; a missing table, a denied permission,
    a timeout or an outage may not: those fail every request alike.
    """
    from google.api_core.exceptions import BadRequest, GoogleAPIError

    return isinstance(exc, BadRequest) or not isinstance(exc, (GoogleAPIError, OSError))


def one_per_player(requests: list[WorkerRequest]) -> tuple[list[WorkerRequest], int]:
    """One request per (game_date, player) of a batch, a forced one first; and how many were left out."""
    chosen: dict[tuple[str, str], WorkerRequest] = {}
    for request in requests:
        key = (request.game_date, request.player_lookup)
        if key not in chosen or (request.force and not chosen[key].force):
            chosen[key] = request
    return list(chosen.values()), len(requests) - len(chosen)


class PredictionWorker:
    """Pull → predict → write (one MERGE per batch) → ack, in batches."""

    def __init__(self, options: WorkerOptions, *, stop: threading.Event | None = None) -> None:
        self.options = options
        self.faults = WorkerFaults(options.drop_rate, options.seed, options.delay_ms, options.crash_after)
        self.stop = stop or threading.Event()
        self.stats = WorkerStats()

    def should_drop(self, request_id: str) -> bool:
        """Whether the injected drop rate drops this request (:meth:`WorkerFaults.should_drop`)."""
        return self.faults.should_drop(request_id)

    def write(self, client: Any, requests: list[WorkerRequest]) -> int:
        """Write predictions for ``requests`` (one per player); returns how many rows were new."""
        outcome = write_predictions(client, requests)
        # Counted only once the write went through: an isolating retry must not count a skip twice.
        self.stats.superseded += outcome.superseded
        self.stats.no_features += outcome.no_features
        return outcome.written

    def write_isolating(
        self, client: Any, requests: list[WorkerRequest]
    ) -> tuple[list[tuple[WorkerRequest, str]], bool]:
        """Write ``requests`` (one per player); a batch that fails is split in halves until the failing
        requests stand alone. Returns those with their reasons, and whether any part was written.

        A transient error, or one no request could cause (:func:`may_be_poison`), propagates.
        """
        try:
            self.stats.written += self.write(client, requests)
            return [], True
        except Exception as exc:
            if is_transient(exc) or not may_be_poison(exc):
                raise
            if len(requests) == 1:
                log.warning(
                    "Request %s for %s on %s fails its write: %s",
                    requests[0].request_id,
                    requests[0].player_lookup,
                    requests[0].game_date,
                    describe(exc),
                )
                return [(requests[0], f"write failed: {describe(exc)}")], False
            log.warning("A batch of %d requests fails its write (%s): isolating", len(requests), describe(exc))
        half = len(requests) // 2
        first, wrote_first = self.write_isolating(client, requests[:half])
        second, wrote_second = self.write_isolating(client, requests[half:])
        return first + second, wrote_first or wrote_second

    def write_batch(self, client: Any, accepted: list[WorkerRequest]) -> list[tuple[WorkerRequest, str]]:
        """Write a pull's requests; returns the ones isolated as failing the write, with their reasons.

        A player's other requests in the pull are written when his chosen one fails. Raises
        :class:`BatchFailedError` when no part of the batch could be written.
        """
        pending, failed, wrote = accepted, [], False
        while pending:
            chosen, _ = one_per_player(pending)
            isolated, wrote_any = self.write_isolating(client, chosen)
            failed += isolated
            wrote = wrote or wrote_any
            tried, retry_keys = {id(r) for r in chosen}, {r.key for r, _ in isolated}
            pending = [r for r in pending if r.key in retry_keys and id(r) not in tried]
        if failed and not wrote:
            raise BatchFailedError(f"no request of the batch could be written: {failed[0][1]}")
        return failed

    def run(self) -> WorkerStats:
        from nba_phase5.clients import bigquery_client

        options = self.options
        client = bigquery_client(options.project)
        last_message = time.monotonic()
        with RequestSubscription(options.project, options.subscription, options.dead_letter_topic) as pubsub:
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
                self._handle(client, pubsub, received)
        log.info("Worker done: %s", self.stats)
        return self.stats

    def _accept(self, message: Any) -> WorkerRequest | str | None:
        """The message's request; why it is unusable (a str); or None when it is dropped (acked unwritten)."""
        try:
            request = parse_request(message.message.data, dict(message.message.attributes))
        except Exception as exc:  # whatever a body does to the parser, it is that message's fault alone
            self.stats.invalid += 1
            reason = str(exc) if isinstance(exc, ValueError) and str(exc) else describe(exc)
            log.warning("Invalid request %s: %s", message.message.message_id, reason)
            return reason
        self.stats.deliveries[request.request_id] += 1
        if self.should_drop(request.request_id):
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
            return None
        return request

    def _handle(self, client: Any, pubsub: RequestSubscription, received: list[Any]) -> None:
        options = self.options
        self.faults.delay()
        accepted: dict[int, tuple[WorkerRequest, Any]] = {}
        unusable: list[tuple[Any, str]] = []
        done: list[Any] = []  # dropped: acked unwritten
        for message in received:
            self.stats.received += 1
            # Mid-batch: nothing below is written or acked, as in a real crash.
            self.faults.crash_if_due(self.stats.received)
            outcome = self._accept(message)
            if isinstance(outcome, WorkerRequest):
                accepted[id(outcome)] = (outcome, message)
            elif outcome is None:
                done.append(message)
            else:
                unusable.append((message, outcome))
        retry = self._write_accepted(client, accepted, unusable, done)
        published, unpublished = pubsub.dead_letter(unusable)
        self.stats.dead_lettered += len(published)
        # Acked only now: a crash above leaves the whole pull to be redelivered.
        pubsub.ack(done + published)
        pubsub.nack(retry + unpublished)
        self.stats.nacked += len(retry) + len(unpublished)
        if retry or unpublished:
            self.stop.wait(options.retry_pause_s)

    def _write_accepted(
        self,
        client: Any,
        accepted: dict[int, tuple[WorkerRequest, Any]],
        unusable: list[tuple[Any, str]],
        done: list[Any],
    ) -> list[Any]:
        """Write the accepted requests: written ones go to ``done``, isolated ones to ``unusable``.

        Returns the messages to redeliver: the whole batch when it failed as a whole.
        """
        requests = [request for request, _ in accepted.values()]
        if not requests:
            return []
        no_features, written = self.stats.no_features, self.stats.written
        try:
            failed = self.write_batch(client, requests)
        except Exception as exc:
            log.error("Batch of %d requests not written, nacked for redelivery: %s", len(requests), describe(exc))
            return [message for _, message in accepted.values()]
        self.stats.invalid += len(failed)
        poisoned = {id(request) for request, _ in failed}
        unusable += [(accepted[id(request)][1], reason) for request, reason in failed]
        done += [message for key, (_, message) in accepted.items() if key not in poisoned]
        new_rows = self.stats.written - written
        self.stats.duplicates += len(requests) - len(failed) - new_rows - (self.stats.no_features - no_features)
        return []
