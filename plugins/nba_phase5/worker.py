"""A local prediction worker: the stand-in for the production Phase 5 workers.

It pulls requests from ``nba-phase5-prediction-requests-sub``, predicts each prop with a simple,
transparent model from the player's feature row, and writes ``player_prop_predictions``. It acks a
message only after its row is written, and a request id is written at most once (MERGE on
``request_id``), so redelivery and republishing never duplicate a prediction.

The model (a stand-in, not the production model): a weighted recent average,
``0.5·last5 + 0.3·last10 + 0.2·season`` points, scaled by the opponent's defence relative to a
league-average rating of 112; rebounds and assists use their 10-game averages, threes 12 % of points,
steals and blocks a per-minute rate, turnovers scale with usage; the combined props
(``pra``, ``pts_reb``, ``stocks``, ``fantasy_score`` …) are sums of those. Confidence falls with
the spread between recent and season form and with low feature quality.

Fault knobs for demos and tests: ``drop_rate`` acks without writing (a reproducible set given
``seed``; a request already dropped once is never dropped again), ``delay_ms`` per batch,
``crash_after`` exits hard mid-batch, ``max_messages`` and ``idle_exit`` end the loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bq import query_parameter, run_query

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)
MODEL_VERSION = "local-weighted-avg-v1"
LEAGUE_DEF_RATING = 112.0
FEATURES_SQL = """
SELECT game_date, player_lookup, points_avg_last_5, points_avg_last_10, points_avg_season,
  rebounds_avg_last_10, assists_avg_last_10, minutes_avg_last_10, usage_rate, opponent_def_rating,
  feature_quality_score
FROM `{table}`
WHERE game_date IN UNNEST(@game_dates) AND player_lookup IN UNNEST(@players)
"""
MERGE_SQL = """
MERGE `{table}` AS target
USING (
  SELECT r.game_date, r.player_lookup, r.prop_type, r.predicted_value, r.confidence, r.model_version,
    r.request_id, r.batch_id, r.created_at
  FROM UNNEST(@rows) AS r
) AS source
ON target.game_date = source.game_date AND target.request_id = source.request_id
WHEN NOT MATCHED THEN INSERT (
  game_date, player_lookup, prop_type, predicted_value, confidence, model_version, request_id, batch_id, created_at
) VALUES (
  source.game_date, source.player_lookup, source.prop_type, source.predicted_value, source.confidence,
  source.model_version, source.request_id, source.batch_id, source.created_at
)
"""
PREDICTION_COLUMNS = (
    ("game_date", "DATE"),
    ("player_lookup", "STRING"),
    ("prop_type", "STRING"),
    ("predicted_value", "FLOAT64"),
    ("confidence", "FLOAT64"),
    ("model_version", "STRING"),
    ("request_id", "STRING"),
    ("batch_id", "STRING"),
    ("created_at", "TIMESTAMP"),
)


def predict(prop_type: str, features: dict[str, Any]) -> tuple[float, float]:
    """(predicted value, confidence 0–1) for one prop from one feature row."""
    last5 = float(features["points_avg_last_5"] or 0)
    last10 = float(features["points_avg_last_10"] or 0)
    season = float(features["points_avg_season"] or 0)
    defence = float(features["opponent_def_rating"] or LEAGUE_DEF_RATING)
    points = (0.5 * last5 + 0.3 * last10 + 0.2 * season) * (defence / LEAGUE_DEF_RATING)
    rebounds = float(features["rebounds_avg_last_10"] or 0)
    assists = float(features["assists_avg_last_10"] or 0)
    minutes = float(features.get("minutes_avg_last_10") or 0)
    usage = float(features.get("usage_rate") or 20.0)
    steals, blocks = 0.035 * minutes, 0.025 * minutes
    turnovers = 0.1 * minutes * usage / 30.0
    values = {
        "points": points,
        "rebounds": rebounds,
        "assists": assists,
        "threes": 0.12 * points,
        "steals": steals,
        "blocks": blocks,
        "turnovers": turnovers,
        "minutes": minutes,
        "pra": points + rebounds + assists,
        "pts_reb": points + rebounds,
        "pts_ast": points + assists,
        "reb_ast": rebounds + assists,
        "stocks": steals + blocks,
        "fantasy_score": points + 1.2 * rebounds + 1.5 * assists + 3 * (steals + blocks) - turnovers,
    }
    if prop_type not in values:
        raise ValueError(f"unknown prop type {prop_type!r}")
    spread = abs(last5 - season) / max(season, 1.0)
    quality = float(features["feature_quality_score"] or 0) / 100.0
    confidence = max(0.05, min(0.95, quality * (1.0 - min(spread, 0.8))))
    return round(values[prop_type], 2), round(confidence, 3)


@dataclass
class WorkerStats:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    dropped: int = 0
    invalid: int = 0
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


class PredictionWorker:
    """Pull → predict → write (MERGE on request_id) → ack, in batches."""

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

    def _features(self, client: bigquery.Client, requests: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        rows = run_query(
            client,
            FEATURES_SQL.format(table=f"{client.project}.{config.FEATURE_STORE_TABLE}"),
            {
                "game_dates": {"type": "ARRAY<DATE>", "value": sorted({r["game_date"] for r in requests})},
                "players": sorted({r["player_lookup"] for r in requests}),
            },
        )
        return {(row["game_date"].isoformat(), row["player_lookup"]): row for row in rows}

    def write(self, client: bigquery.Client, requests: list[dict[str, Any]]) -> int:
        """Write predictions for ``requests``; returns how many rows were new."""
        from google.cloud import bigquery

        features = self._features(client, requests)
        now = datetime.now(UTC)
        rows = []
        for request in requests:
            feature_row = features.get((request["game_date"], request["player_lookup"]))
            if feature_row is None:
                log.warning(
                    "No features for %s on %s: request %s skipped",
                    request["player_lookup"],
                    request["game_date"],
                    request["request_id"],
                )
                continue
            value, confidence = predict(request["prop_type"], feature_row)
            rows.append(
                {
                    **request,
                    "predicted_value": value,
                    "confidence": confidence,
                    "model_version": MODEL_VERSION,
                    "created_at": now,
                }
            )
        if not rows:
            return 0
        structs = [
            bigquery.StructQueryParameter(None, *(query_parameter(n, row.get(n), t) for n, t in PREDICTION_COLUMNS))
            for row in rows
        ]
        job = client.query(
            MERGE_SQL.format(table=f"{client.project}.{config.PREDICTIONS_TABLE}"),
            job_config=bigquery.QueryJobConfig(
                query_parameters=[bigquery.ArrayQueryParameter("rows", "STRUCT", structs)]
            ),
        )
        job.result()
        return int(job.num_dml_affected_rows or 0)

    @staticmethod
    def parse(data: bytes) -> list[dict[str, Any]]:
        body = json.loads(data)
        date.fromisoformat(body["game_date"])
        return [
            {
                "game_date": body["game_date"],
                "player_lookup": str(body["player_lookup"]),
                "prop_type": str(prop),
                "request_id": str(body["request_id"]),
                "batch_id": body.get("batch_id"),
            }
            for prop in body["prop_types"]
        ]

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

    def _handle(self, client: Any, subscriber: Any, path: str, received: list[Any]) -> None:
        options = self.options
        if options.delay_ms:
            time.sleep(options.delay_ms / 1000.0)
        to_write: dict[str, dict[str, Any]] = {}
        ack_ids = []
        for message in received:
            self.stats.received += 1
            if options.crash_after is not None and self.stats.received > options.crash_after:
                # Exit hard mid-batch: nothing below is written or acked, as in a real crash.
                log.error("crash_after=%d reached: exiting hard", options.crash_after)
                os._exit(3)
            ack_ids.append(message.ack_id)
            try:
                requests = self.parse(message.message.data)
            except (ValueError, KeyError, TypeError) as exc:
                self.stats.invalid += 1
                log.warning("Invalid request %s acked and dropped: %s", message.message.message_id, exc)
                continue
            for request in requests:
                self.stats.deliveries[request["request_id"]] += 1
                if self.should_drop(request["request_id"]):
                    log.info(
                        "Dropped request %s for %s on %s (drop rate %s)",
                        request["request_id"],
                        request["player_lookup"],
                        request["game_date"],
                        options.drop_rate,
                    )
                    self.stats.dropped += 1
                    self.stats.dropped_ids.append(request["request_id"])
                    continue
                if request["request_id"] in to_write:
                    self.stats.duplicates += 1
                to_write[request["request_id"]] = request
        if to_write:
            written = self.write(client, list(to_write.values()))
            self.stats.written += written
            self.stats.duplicates += len(to_write) - written
        subscriber.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
