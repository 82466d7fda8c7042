"""The local stand-in worker's model: transparent, deterministic, points only (the platform predicts points).

Not the production model: it reads a feature-store row by feature *name* (docs/platform.md §5), never by
position, and predicts points from recent and season form scaled by the opponent's defence, with a confidence
and an ``OVER``/``UNDER``/``PASS``/``NO_LINE`` recommendation (:data:`RECOMMENDATION_MARGIN`). The formulas:
docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

LEAGUE_DEF_RATING = 112.0
# Closer to the line than this, the call is noise: PASS (the production baseline uses a 2-point edge).
RECOMMENDATION_MARGIN = Decimal("1.0")
REQUIRED_FEATURES = ("points_avg_last_5", "points_avg_last_10", "points_avg_season")


class MissingFeatureError(ValueError):
    """The feature row lacks a feature the model needs."""


@dataclass(frozen=True)
class Prediction:
    predicted_points: Decimal
    confidence_score: Decimal
    recommendation: str
    current_points_line: Decimal | None
    line_margin: Decimal | None


def named_features(row: Mapping[str, Any]) -> dict[str, float]:
    """``{name: value}`` from a row's parallel ``feature_names`` and ``features`` arrays.

    A NULL, NaN or infinite value counts as missing: the model cannot use it, and NUMERIC cannot hold it.
    """
    names = list(row.get("feature_names") or [])
    values = list(row.get("features") or [])
    if len(names) != len(values):
        raise MissingFeatureError(f"{len(names)} feature names for {len(values)} features")
    return {
        str(name): float(value)
        for name, value in zip(names, values, strict=True)
        if value is not None and math.isfinite(float(value))
    }


def _decimal(value: float, places: int) -> Decimal:
    # NUMERIC columns: a Decimal with a fixed scale travels as an exact string, never a binary float.
    return Decimal(f"{value:.{places}f}")


def predict(features: Mapping[str, float], *, quality_score: float | None, line_values: Sequence[float]) -> Prediction:
    """The prediction for one player from his named features and his lines (``[]``: no line)."""
    missing = [name for name in REQUIRED_FEATURES if name not in features]
    if missing:
        raise MissingFeatureError("missing features " + ", ".join(missing))
    last5, last10, season = (features[name] for name in REQUIRED_FEATURES)
    defence = features.get("opponent_def_rating") or LEAGUE_DEF_RATING
    points = max(0.0, (0.5 * last5 + 0.3 * last10 + 0.2 * season) * (defence / LEAGUE_DEF_RATING))
    spread = abs(last5 - season) / max(season, 1.0)
    quality = float(quality_score) / 100.0 if quality_score is not None and math.isfinite(quality_score) else 0.0
    confidence = max(0.05, min(0.95, quality * (1.0 - min(spread, 0.8))))
    predicted = _decimal(points, 1)
    if not line_values:
        return Prediction(predicted, _decimal(confidence, 3), "NO_LINE", None, None)
    line = _decimal(float(line_values[0]), 1)
    margin = predicted - line
    recommendation = "OVER" if margin > 0 else "UNDER"
    if abs(margin) < RECOMMENDATION_MARGIN:
        recommendation = "PASS"
    return Prediction(predicted, _decimal(confidence, 3), recommendation, line, margin)
