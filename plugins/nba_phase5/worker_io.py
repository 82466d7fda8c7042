"""What the local stand-in worker reads and writes: the request message, the feature rows and the
predictions MERGE (its Pub/Sub side is :mod:`nba_phase5.worker_pubsub`).

Kept apart from :mod:`nba_phase5.worker` (the pull loop) so each stays small and testable alone.

A request is validated strictly before any write, so no value of a message can fail the batch's MERGE:
text fields must be short, encodable UTF-8 without control characters (a lone surrogate such as
``"\\ud800"`` parses as JSON but stalls BigQuery's client in retries), line values must be points lines
(0-200; 1e300 or a 400-digit integer is refused here, not by the MERGE's NUMERIC cast).
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bq import parameter_types, query_parameter, run_query, with_transient_retry
from nba_phase5.local_model import MissingFeatureError, named_features, predict
from nba_phase5.prediction_requests import request_id as derive_request_id

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

MAX_LINE_VALUES = 20
MAX_LINE_VALUE = 200.0
MAX_TEXT_CHARS = 100
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# The @rows struct of the MERGE: the prediction columns the worker computes (their types come from
# include/schemas), plus ``force``.
PREDICTION_COLUMNS = (
    "prediction_id",
    "player_lookup",
    "universal_player_id",
    "game_date",
    "game_id",
    "predicted_points",
    "confidence_score",
    "recommendation",
    "current_points_line",
    "line_margin",
    "has_prop_line",
    "line_source",
    "force",
    "created_at",
)
# One statement, so the new row and the old row's deactivation commit together or not at all:
# * a request whose prediction_id is already in the table (a redelivery) inserts nothing;
# * a non-forced request for a player with an active row inserts nothing (a duplicate);
# * a forced one inserts version latest + 1 and, in the same MERGE, deactivates the active row.
# Source rows with merge_key NULL are the inserts; rows with merge_key = an active prediction_id
# supersede it. @rows must hold one row per (game_date, player): the worker's one_per_player sees to it.
MERGE_SQL = """
MERGE `{table}` AS t
USING (
  WITH existing AS (
    SELECT game_date, player_lookup, prediction_id, prediction_version, is_active
    FROM `{table}`
    WHERE game_date IN UNNEST(@game_dates) AND system_id = @system_id AND player_lookup IN UNNEST(@players)
  ),
  latest AS (
    SELECT game_date, player_lookup, MAX(prediction_version) AS version, COUNTIF(is_active) AS active_rows
    FROM existing
    GROUP BY game_date, player_lookup
  ),
  inserts AS (
    SELECT r.prediction_id, r.player_lookup, r.universal_player_id, r.game_date, r.game_id,
      COALESCE(l.version, 0) + 1 AS prediction_version, r.predicted_points, r.confidence_score,
      r.recommendation, r.current_points_line, r.line_margin, r.has_prop_line, r.line_source, r.created_at
    FROM UNNEST(@rows) AS r
    LEFT JOIN latest AS l ON l.game_date = r.game_date AND l.player_lookup = r.player_lookup
    WHERE r.prediction_id NOT IN (SELECT prediction_id FROM existing)
      AND (r.force OR COALESCE(l.active_rows, 0) = 0)
  )
  SELECT i.*, CAST(NULL AS STRING) AS merge_key FROM inserts AS i
  UNION ALL
  SELECT i.*, e.prediction_id AS merge_key
  FROM inserts AS i
  JOIN existing AS e ON e.game_date = i.game_date AND e.player_lookup = i.player_lookup AND e.is_active
) AS s
ON t.game_date IN UNNEST(@game_dates) AND t.game_date = s.game_date AND t.prediction_id = s.merge_key
WHEN MATCHED THEN UPDATE SET is_active = FALSE, superseded_by = s.prediction_id, updated_at = s.created_at
WHEN NOT MATCHED AND s.merge_key IS NULL THEN INSERT (
  prediction_id, system_id, player_lookup, universal_player_id, game_date, game_id, prediction_version,
  predicted_points, confidence_score, recommendation, current_points_line, line_margin, has_prop_line,
  line_source, is_active, created_at
) VALUES (
  s.prediction_id, @system_id, s.player_lookup, s.universal_player_id, s.game_date, s.game_id,
  s.prediction_version, s.predicted_points, s.confidence_score, s.recommendation, s.current_points_line,
  s.line_margin, s.has_prop_line, s.line_source, TRUE, s.created_at
)
"""


@dataclass(frozen=True)
class WorkerRequest:
    """One prediction request: the workers' body plus the tracing attributes."""

    request_id: str
    game_date: str
    player_lookup: str
    game_id: str
    line_values: tuple[float, ...] = ()
    batch_id: str | None = None
    force: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.game_date, self.player_lookup


def _text(body: Mapping[str, object], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"{key} must be a non-empty string of at most {MAX_TEXT_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{key} is not valid Unicode text (a lone surrogate)") from None
    if _CONTROL_RE.search(value):
        raise ValueError(f"{key} holds control characters")
    return value


def _line_values(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) > MAX_LINE_VALUES:
        raise ValueError(f"line_values must be a list of at most {MAX_LINE_VALUES} numbers")
    lines = []
    for item in value:
        # bool is an int in Python; true is not a line.
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            raise ValueError("line_values must hold numbers")
        try:
            line = float(item)
        except OverflowError:  # an integer too big for a float
            line = math.inf
        if not 0.0 <= line <= MAX_LINE_VALUE:  # NaN fails too
            raise ValueError(f"line value {line:.6g} is out of range (0 to {MAX_LINE_VALUE:g})")
        lines.append(line)
    return tuple(lines)


def parse_request(data: bytes, attributes: Mapping[str, str]) -> WorkerRequest:
    """The request in a message; :class:`ValueError` says why a message is unusable.

    A body published without attributes (by hand, as the workers accept) still works: its request id
    is derived as the coordinator derives it, and it is not forced.
    """
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ValueError(f"body is not JSON: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    game_date = _text(body, "game_date")
    try:
        # fullmatch first: fromisoformat alone also takes 20251128 and other ISO spellings.
        if not _DATE_RE.fullmatch(game_date):
            raise ValueError
        date.fromisoformat(game_date)
    except ValueError:
        raise ValueError(f"game_date {game_date[:20]!r} is not YYYY-MM-DD") from None
    player_lookup = _text(body, "player_lookup")
    return WorkerRequest(
        request_id=attributes.get("request_id") or derive_request_id(game_date, player_lookup),
        game_date=game_date,
        player_lookup=player_lookup,
        game_id=_text(body, "game_id"),
        line_values=_line_values(body.get("line_values", [])),
        batch_id=attributes.get("batch_id"),
        force=attributes.get("force", "").lower() == "true",
    )


def merge_sql(table: str) -> str:
    """The MERGE for ``project.dataset.table``; every value arrives as a query parameter."""
    return MERGE_SQL.format(table=table)


def describe(exc: BaseException) -> str:
    """``Type: message``, its first line only, for logs and the ``dlq_reason`` attribute."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:500]}" if text else type(exc).__name__


def prediction_id(request_id: str) -> str:
    """The row id of a request's prediction: the same request (redelivered) gives the same id."""
    return str(uuid.uuid5(PREDICTION_NAMESPACE, request_id))


@dataclass(frozen=True)
class WriteOutcome:
    """What one write did: new rows, rows it superseded, requests skipped for want of usable features."""

    written: int = 0
    superseded: int = 0
    no_features: int = 0


def _features(client: bigquery.Client, requests: list[WorkerRequest]) -> dict[tuple[str, str], Any]:
    rows = run_query(
        client,
        FEATURES_SQL.format(table=f"{client.project}.{config.FEATURE_STORE_TABLE}"),
        {
            "game_dates": {"type": "ARRAY<DATE>", "value": sorted({r.game_date for r in requests})},
            "players": sorted({r.player_lookup for r in requests}),
        },
    )
    return {(row["game_date"].isoformat(), row["player_lookup"]): row for row in rows}


def prediction_rows(
    client: bigquery.Client, requests: list[WorkerRequest], now: datetime
) -> tuple[list[dict[str, Any]], int]:
    """The prediction rows for ``requests``, and how many players were skipped (no usable feature row)."""
    features = _features(client, requests)
    rows, skipped = [], 0
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
            skipped += 1
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
    return rows, skipped


def write_predictions(client: bigquery.Client, requests: list[WorkerRequest]) -> WriteOutcome:
    """Write predictions for ``requests`` (one per player) in one MERGE; raises if it fails."""
    from google.cloud import bigquery

    now = datetime.now(UTC)
    rows, skipped = prediction_rows(client, requests, now)
    if not rows:
        return WriteOutcome(no_features=skipped)
    types = {**parameter_types(config.PREDICTIONS_TABLE), "force": "BOOL"}
    structs = [
        bigquery.StructQueryParameter(None, *(query_parameter(n, row.get(n), types[n]) for n in PREDICTION_COLUMNS))
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
    # the prediction ids are already in the table. A lasting error propagates to the worker.
    with_transient_retry(lambda: client.query(merge_sql(table), job_config=job_config).result(), "MERGE")
    outcome = run_query(client, OUTCOME_SQL.format(table=table), {**scope, "now": now})[0]
    return WriteOutcome(int(outcome["written"] or 0), int(outcome["superseded"] or 0), skipped)
