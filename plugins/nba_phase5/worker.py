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
* a message is acked only after its batch is written (or found to be a duplicate).

The guarantees hold for one worker process (batches are sequential); concurrent workers could both
insert a first version, as two concurrent MERGEs cannot see each other's rows.

Fault knobs for demos and tests: ``drop_rate`` acks without writing (a reproducible set given
``seed``; a request already dropped once is never dropped again), ``delay_ms`` per batch,
``crash_after`` exits hard mid-batch, ``max_messages`` and ``idle_exit`` end the loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bq import query_parameter, run_query, with_transient_retry
from nba_phase5.local_model import MissingFeatureError, named_features, predict
from nba_phase5.worker_io import PREDICTION_COLUMNS, WorkerRequest, merge_sql, parse_request

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)
PREDICTION_NAMESPACE = uuid.UUID("8a4f2a61-3c0e-4b7e-9f55-2d9e1c7b6a10")
FEATURES_SQL = """
SELECT game_date, player_lookup, universal_player_id, features, feature_names, feature_quality_score
FROM `{table}`
WHERE game_date IN UNNEST(@game_dates) AND player_lookup IN UNNEST(@players)
"""
# Rows this batch wrote: its created_at / updated_at is the batch's own timestamp.
OUTCOME_SQL = """
SELECT COUNTIF(created_at = @now) AS written, COUNTIF(updated_at = @now AND NOT is_active) AS superseded
FROM `{table}`
WHERE game_date IN UNNEST(@game_dates) AND system_id = @system_id AND player_lookup IN UNNEST(@players)
"""


@dataclass
class WorkerStats:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    superseded: int = 0
    dropped: int = 0
    invalid: int = 0
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


def prediction_id(request_id: str) -> str:
    """The row id of a request's prediction: the same request (redelivered) gives the same id."""
    return str(uuid.uuid5(PREDICTION_NAMESPACE, request_id))


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
        if not 0.0 <= options.drop_rate <= 1.0:
            raise ValueError("drop_rate must be between 0 and 1")
        self.options = options
        self.stop = stop or threading.Event()
        self.stats = WorkerStats()
        self._dropped_once: set[str] = set()

    def should_drop(self, request_id: str) -> bool:
        """Reproducible for a seed; never the same request twice, so a republished one gets through."""
        if self.options.drop_rate <= 0 or request_id in self._dropped_once:
            return False
        digest = hashlib.sha256(f"{self.options.seed}:{request_id}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 < self.options.drop_rate:
            self._dropped_once.add(request_id)
            return True
        return False

    def _features(self, client: bigquery.Client, requests: list[WorkerRequest]) -> dict[tuple[str, str], Any]:
        rows = run_query(
            client,
            FEATURES_SQL.format(table=f"{client.project}.{config.FEATURE_STORE_TABLE}"),
            {
                "game_dates": {"type": "ARRAY<DATE>", "value": sorted({r.game_date for r in requests})},
                "players": sorted({r.player_lookup for r in requests}),
            },
        )
        return {(row["game_date"].isoformat(), row["player_lookup"]): row for row in rows}

    def rows(self, client: bigquery.Client, requests: list[WorkerRequest], now: datetime) -> list[dict[str, Any]]:
        """The prediction rows for ``requests`` (players without a usable feature row are skipped)."""
        features = self._features(client, requests)
        rows = []
        for request in requests:
            feature_row = features.get((request.game_date, request.player_lookup))
            try:
                if feature_row is None:
                    raise MissingFeatureError("no feature row")
                quality = feature_row["feature_quality_score"]
                made = predict(
                    named_features(feature_row),
                    quality_score=None if quality is None else float(quality),
                    line_values=request.line_values,
                )
            except MissingFeatureError as exc:
                self.stats.no_features += 1
                log.warning("No prediction for %s on %s (%s): %s", *request.key, request.request_id, exc)
                continue
            rows.append(
                {
                    "prediction_id": prediction_id(request.request_id),
                    "player_lookup": request.player_lookup,
                    "universal_player_id": feature_row["universal_player_id"],
                    "game_date": request.game_date,
                    "game_id": request.game_id,
                    "predicted_points": made.predicted_points,
                    "confidence_score": made.confidence_score,
                    "recommendation": made.recommendation,
                    "current_points_line": made.current_points_line,
                    "line_margin": made.line_margin,
                    "has_prop_line": made.current_points_line is not None,
                    "line_source": "ACTUAL_PROP" if made.current_points_line is not None else None,
                    "force": request.force,
                    "created_at": now,
                }
            )
        return rows

    def write(self, client: bigquery.Client, requests: list[WorkerRequest]) -> int:
        """Write predictions for ``requests``; returns how many rows were new."""
        from google.cloud import bigquery

        now = datetime.now(UTC)
        rows = self.rows(client, requests, now)
        if not rows:
            return 0
        structs = [
            bigquery.StructQueryParameter(None, *(query_parameter(n, row.get(n), t) for n, t in PREDICTION_COLUMNS))
            for row in rows
        ]
        table = f"{client.project}.{config.PREDICTIONS_TABLE}"
        scope = {
            "game_dates": {"type": "ARRAY<DATE>", "value": sorted({r["game_date"] for r in rows})},
            "players": sorted({r["player_lookup"] for r in rows}),
            "system_id": config.LOCAL_SYSTEM_ID,
        }
        job_config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ArrayQueryParameter("rows", "STRUCT", structs),
                *(query_parameter(name, value) for name, value in scope.items()),
            ]
        )
        # Retried on transient errors: rerunning the MERGE after a lost reply inserts nothing twice, as
        # the prediction ids are already in the table. A lasting error leaves the batch unacked.
        with_transient_retry(lambda: client.query(merge_sql(table), job_config=job_config).result(), "MERGE")
        outcome = run_query(client, OUTCOME_SQL.format(table=table), {**scope, "now": now})[0]
        self.stats.superseded += int(outcome["superseded"] or 0)
        return int(outcome["written"] or 0)

    def run(self) -> WorkerStats:
        from google.api_core.exceptions import DeadlineExceeded

        from nba_phase5.clients import bigquery_client, subscriber_client

        options = self.options
        client = bigquery_client(options.project)
        subscriber = subscriber_client()
        path = subscriber.subscription_path(options.project, options.subscription)
        last_message = time.monotonic()
        with subscriber:
            while not self.stop.is_set():
                if options.max_messages is not None and self.stats.received >= options.max_messages:
                    break
                limit = options.batch_size
                if options.max_messages is not None:
                    limit = min(limit, options.max_messages - self.stats.received)
                try:
                    response = subscriber.pull(
                        request={"subscription": path, "max_messages": limit, "return_immediately": False},
                        timeout=2.0,
                    )
                    received = list(response.received_messages)
                except DeadlineExceeded:
                    received = []
                if not received:
                    if options.idle_exit is not None and time.monotonic() - last_message >= options.idle_exit:
                        break
                    continue
                last_message = time.monotonic()
                self._handle(client, subscriber, path, received)
        log.info("Worker done: %s", self.stats)
        return self.stats

    def _accept(self, message: Any) -> WorkerRequest | None:
        """The message's request, or None when it is invalid or dropped (both are acked unwritten)."""
        try:
            request = parse_request(message.message.data, dict(message.message.attributes))
        except ValueError as exc:
            self.stats.invalid += 1
            log.warning("Invalid request %s acked and dropped: %s", message.message.message_id, exc)
            return None
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

    def _handle(self, client: Any, subscriber: Any, path: str, received: list[Any]) -> None:
        options = self.options
        if options.delay_ms:
            time.sleep(options.delay_ms / 1000.0)
        accepted: list[WorkerRequest] = []
        for message in received:
            self.stats.received += 1
            if options.crash_after is not None and self.stats.received > options.crash_after:
                # Exit hard mid-batch: nothing below is written or acked, as in a real crash.
                log.error("crash_after=%d reached: exiting hard", options.crash_after)
                os._exit(3)
            request = self._accept(message)
            if request is not None:
                accepted.append(request)
        to_write, repeats = one_per_player(accepted)
        self.stats.duplicates += repeats
        if to_write:
            unusable = self.stats.no_features
            written = self.write(client, to_write)
            unusable = self.stats.no_features - unusable
            self.stats.written += written
            self.stats.duplicates += len(to_write) - unusable - written
        # Acked only now: a crash or a failed write above leaves the whole batch to be redelivered.
        subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in received]})
