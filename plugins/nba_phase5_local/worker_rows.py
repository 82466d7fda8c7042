"""The rows the stand-in worker stages for a request, built and checked as the platform's worker does.

One row per line value × active prediction system (the stand-in has one, ``config.LOCAL_SYSTEM_ID``),
each line per docs/platform.md §7.5 (last paragraph); the six line checks of §7.5 run over every row
before staging, and one failing row fails the whole request. Rows fill every column of
``include/schemas/nba_predictions.player_prop_predictions.json``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from nba_phase5 import config
from nba_phase5_local.local_model import named_features, predict
from nba_phase5_local.worker_requests import WorkerRequest

#: The systems that write rows (the platform runs several; each line gets one row per system).
ACTIVE_SYSTEMS = (config.LOCAL_SYSTEM_ID,)
#: NUMERIC holds 29 integer digits: a load with a bigger value (or NaN, infinity) fails.
NUMERIC_LIMIT = Decimal(10) ** 29
#: The staged row's STRING columns; the load refuses any other JSON type in them (as in a BOOL column).
#: bqemulator is laxer than BigQuery here (it takes "yes" for a BOOL), so the stand-in checks them itself.
_STRING_COLUMNS = ("player_lookup", "universal_player_id", "game_id", "line_source", "prediction_run_mode")


def build_rows(request: WorkerRequest, *, feature_row: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """One row per line value × active system (WK 1566-1833); raises as the worker's code would.

    :param request: the parsed request.
    :param feature_row: the player's feature row (usable: :func:`skip_reason` said so).
    :param now: the rows' ``created_at``.
    """
    named = named_features(feature_row)
    quality = float(feature_row["feature_quality_score"])
    lines = request.line_values
    # `for line_value in line_values`: a number (or true) is not iterable: TypeError, as in the worker.
    if not isinstance(lines, (list, str, dict)):
        raise TypeError(f"'{type(lines).__name__}' object is not iterable")
    rows = []
    for line_value in lines:
        if line_value is not None and not isinstance(line_value, (int, float)):
            # Every system compares its prediction with the line: a line that is no number (a str's
            # characters, a dict's keys, a list) fails each system, each failure is caught (WK 1566-1833),
            # and the line makes no row.
            continue
        for system_id in ACTIVE_SYSTEMS:
            rows.append(_row(request, feature_row, named, quality, line_value, system_id, now))
    return rows


def _row(
    request: WorkerRequest,
    feature_row: Mapping[str, Any],
    named: Mapping[str, float],
    quality: float,
    line_value: Any,
    system_id: str,
    now: datetime,
) -> dict[str, Any]:
    """One prediction row; its line per WK 1945-1971 (docs/platform.md §7.5, last paragraph)."""
    model_line = line_value if line_value is not None else request.actual_prop_line
    usable = isinstance(model_line, (int, float)) and math.isfinite(model_line)
    made = predict(named, quality_score=quality, line_values=[float(model_line)] if usable else [])
    predicted = float(made.predicted_points)
    if request.has_prop_line:
        # round(None, 1) raises TypeError: `[null]` without actual_prop_line fails the request (500).
        line = round(request.actual_prop_line if request.actual_prop_line else line_value, 1)
        recommendation = made.recommendation
        margin = round(predicted - line, 2)
    elif line_value is not None:
        line = round(line_value, 1)
        margin = round(predicted - line, 2)
        recommendation = "OVER" if predicted > line else "UNDER" if predicted < line else "PASS"
    else:
        line, margin, recommendation = None, None, "NO_LINE"
    return {
        "prediction_id": str(uuid.uuid4()),  # fresh per delivery: consolidation keeps the newest created_at
        "system_id": system_id,
        "player_lookup": request.player_lookup,
        "universal_player_id": feature_row.get("universal_player_id"),
        "game_date": request.game_day.isoformat(),
        "game_id": request.game_id,
        "prediction_version": 1,
        "predicted_points": made.predicted_points,
        "confidence_score": made.confidence_score,
        "recommendation": recommendation,
        "current_points_line": line,
        "line_margin": margin,
        "has_prop_line": request.has_prop_line,
        "line_source": request.line_source,
        "is_active": True,
        "superseded_by": None,
        "created_at": now,
        "updated_at": None,
        "prediction_run_mode": request.prediction_run_mode,
    }


def line_problems(rows: list[dict[str, Any]], *, line_source_api: Any) -> list[str]:
    """The worker's six line checks over every row (WK 647-714); empty when all pass.

    :param rows: the request's rows.
    :param line_source_api: the request's ``line_source_api`` (the worker copies it into each row).
    """
    problems = []
    for row in rows:
        line, source, has_line = row["current_points_line"], row["line_source"], row["has_prop_line"]
        if line == 20.0:
            problems.append("line 20.0 is a placeholder")
        if source in (None, "NEEDS_BOOTSTRAP"):
            problems.append(f"invalid line_source {source}")
        if line is None and has_line == True:  # noqa: E712 - the worker's comparison (1 counts too)
            problems.append("NULL line but has_prop_line TRUE")
        if source == "ACTUAL_PROP" and line_source_api == "ESTIMATED":
            problems.append("ACTUAL_PROP with ESTIMATED api")
        if source == "ACTUAL_PROP" and has_line is False:
            problems.append("ACTUAL_PROP with has_prop_line FALSE")
        if source == "ESTIMATED_AVG" and line_source_api in ("ODDS_API", "BETTINGPROS"):
            problems.append(f"ESTIMATED_AVG with {line_source_api} api")
    return problems


def _numeric(value: Any, places: int, column: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"{column} {str(value)[:40]!r} is not a number")
    number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
    if not number.is_finite() or abs(number) >= NUMERIC_LIMIT:
        raise ValueError(f"{column} {str(value)[:40]} does not fit NUMERIC")
    # 29 integer digits and the scale exceed the default 28-digit context.
    return number.quantize(Decimal(1).scaleb(-places), context=Context(prec=60))


def staged_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its NUMERIC values as Decimals; ValueError for a value the load job would refuse.

    :param row: a row from :func:`build_rows`.
    """
    staged = dict(row)
    numeric = (("predicted_points", 1), ("confidence_score", 3), ("current_points_line", 1), ("line_margin", 2))
    for column, places in numeric:
        staged[column] = _numeric(row[column], places, column)
    for column in _STRING_COLUMNS:
        if row[column] is not None and not isinstance(row[column], str):
            raise ValueError(f"{column} is {type(row[column]).__name__}, the STRING column refuses it")
    if row["has_prop_line"] is not None and not isinstance(row["has_prop_line"], bool):
        raise ValueError(f"has_prop_line {str(row['has_prop_line'])[:20]!r} is not a BOOL")
    return staged
