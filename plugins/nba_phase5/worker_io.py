"""What the local stand-in worker reads and writes: the request message and the predictions MERGE.

Kept apart from :mod:`nba_phase5.worker` (the pull loop) so each stays small and testable alone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from nba_phase5.prediction_requests import request_id as derive_request_id

MAX_LINE_VALUES = 20
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# The @rows struct of the MERGE: the prediction columns the worker computes, plus ``force``.
PREDICTION_COLUMNS = (
    ("prediction_id", "STRING"),
    ("player_lookup", "STRING"),
    ("universal_player_id", "STRING"),
    ("game_date", "DATE"),
    ("game_id", "STRING"),
    ("predicted_points", "NUMERIC"),
    ("confidence_score", "NUMERIC"),
    ("recommendation", "STRING"),
    ("current_points_line", "NUMERIC"),
    ("line_margin", "NUMERIC"),
    ("has_prop_line", "BOOL"),
    ("line_source", "STRING"),
    ("force", "BOOL"),
    ("created_at", "TIMESTAMP"),
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
ON t.game_date = s.game_date AND t.prediction_id = s.merge_key
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
    if not isinstance(value, str) or not value or len(value) > 100:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _line_values(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) > MAX_LINE_VALUES:
        raise ValueError(f"line_values must be a list of at most {MAX_LINE_VALUES} numbers")
    # bool is an int in Python; true is not a line.
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ValueError("line_values must hold finite numbers")
    return tuple(float(v) for v in value)


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
