"""The stand-in worker's model: the documented weighted average, read by feature name."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nba_phase5_local.local_model import MissingFeatureError, named_features, predict
from nba_phase5_local.seeding import FEATURE_NAMES

FEATURES = {
    "points_avg_last_5": 30.0,
    "points_avg_last_10": 20.0,
    "points_avg_season": 10.0,
    "opponent_def_rating": 112.0,
}


def test_model_reads_features_by_name_and_is_the_documented_weighted_average() -> None:
    # Reversed arrays: a model reading by position would get team_win_pct for points_avg_last_5.
    values = [FEATURES.get(name, 1.0) for name in FEATURE_NAMES]
    row = {"feature_names": list(reversed(FEATURE_NAMES)), "features": list(reversed(values))}
    made = predict(named_features(row), quality_score=100.0, line_values=[])
    assert made.predicted_points == Decimal("23.0")  # 0.5·30 + 0.3·20 + 0.2·10
    assert (made.recommendation, made.current_points_line, made.line_margin) == ("NO_LINE", None, None)
    tougher = predict({**FEATURES, "opponent_def_rating": 120.0}, quality_score=100.0, line_values=[])
    assert tougher.predicted_points > made.predicted_points
    assert Decimal("0.05") <= made.confidence_score <= Decimal("0.95")
    low_quality = predict(FEATURES, quality_score=50.0, line_values=[])
    assert (
        low_quality.confidence_score
        < predict({**FEATURES, "points_avg_last_5": 10.0}, quality_score=90.0, line_values=[]).confidence_score
    )
    with pytest.raises(MissingFeatureError, match="points_avg_season"):
        predict({"points_avg_last_5": 1.0, "points_avg_last_10": 1.0}, quality_score=90.0, line_values=[])
    with pytest.raises(MissingFeatureError):
        named_features({"feature_names": ["a", "b"], "features": [1.0]})
    # NaN and infinity are missing values, not numbers: a NUMERIC column could not hold what they make.
    assert named_features({"feature_names": ["a", "b", "c"], "features": [float("nan"), float("inf"), 2.0]}) == {
        "c": 2.0
    }
    assert predict(FEATURES, quality_score=float("nan"), line_values=[]).confidence_score == Decimal("0.050")


@pytest.mark.parametrize(
    ("lines", "recommendation", "margin"),
    [([20.5], "OVER", "2.5"), ([25.5, 30.5], "UNDER", "-2.5"), ([22.5], "PASS", "0.5"), ([23.0], "PASS", "0.0")],
)
def test_recommendation_against_the_first_line(lines: list[float], recommendation: str, margin: str) -> None:
    made = predict(FEATURES, quality_score=90.0, line_values=lines)
    assert (made.recommendation, made.line_margin) == (recommendation, Decimal(margin))
    assert made.current_points_line == Decimal(str(lines[0]))
