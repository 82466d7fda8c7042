"""What the local stand-in worker reads and writes in BigQuery: the feature rows and the predictions
MERGE. The request message is :mod:`nba_phase5.worker_requests`, its Pub/Sub side
:mod:`nba_phase5.worker_pubsub`, the pull loop :mod:`nba_phase5.worker`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bq import parameter_types, query_parameter, run_query, with_transient_retry
from nba_phase5.local_model import MissingFeatureError, named_features, predict
from nba_phase5.worker_requests import WorkerRequest

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
