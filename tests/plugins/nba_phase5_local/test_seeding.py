"""Seeding: a realistic, reproducible day in the production tables' shapes; re-seeding replaces that date only."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from nba_phase5 import config
from nba_phase5.bigquery.bq import run_query, table_schema
from nba_phase5.core.game_day import season_year
from nba_phase5_local.seeding import FEATURE_NAMES, build_day, game_id, player_lookup, schedule_rows, seed_day

DAY = date(2025, 11, 28)


def _assert_valid_rows(table: str, rows: list[dict[str, Any]]) -> None:
    """Every key is a column of the table, and every REQUIRED column has a value."""
    fields = {f["name"]: f for f in table_schema(table)}
    for row in rows:
        assert set(row) <= set(fields), set(row) - set(fields)
        missing = [n for n, f in fields.items() if f.get("mode") == "REQUIRED" and row.get(n) is None]
        assert not missing, missing


def test_build_day_is_reproducible_and_in_the_production_shapes() -> None:
    schedule, features = build_day(DAY, players=450, ready_pct=93)
    assert (schedule, features) == build_day(DAY, players=450, ready_pct=93)
    _assert_valid_rows(config.SCHEDULE_TABLE, schedule)
    _assert_valid_rows(config.FEATURE_STORE_TABLE, features)
    assert len(schedule) == 15
    teams = [g["home_team_tricode"] for g in schedule] + [g["away_team_tricode"] for g in schedule]
    assert len(set(teams)) == 30
    game = schedule[0]
    assert re.fullmatch(r"00225\d{5}", game["game_id"])
    assert game["game_code"] == f"20251128/{game['away_team_tricode']}{game['home_team_tricode']}"
    assert (game["season"], game["season_nba_format"], game["season_year"]) == ("2025", "2025-26", 2025)
    assert str(game["home_team_id"]).startswith("16106127")
    assert (game["game_status"], game["data_source"], game["is_regular_season"]) == (1, "nba_com", True)

    lookups = [f["player_lookup"] for f in features]
    assert len(set(lookups)) == 450
    assert all(lookup.isalpha() and lookup.islower() for lookup in lookups)
    assert sum(f["is_production_ready"] for f in features) == round(450 * 0.93)
    assert {f["game_id"] for f in features} <= {g["game_id"] for g in schedule}
    row = features[0]
    assert row["feature_names"] == list(FEATURE_NAMES)
    assert len(row["features"]) == row["feature_count"] == 25
    assert (row["feature_version"], row["data_source"]) == ("v1_baseline_25", "phase4")
    named = dict(zip(row["feature_names"], row["features"], strict=True))
    assert named["home_away"] == (1.0 if row["is_home"] else 0.0)
    assert 105.0 <= named["opponent_def_rating"] <= 120.0


def test_feature_names_are_the_productions_first_25() -> None:
    assert FEATURE_NAMES[:3] == ("points_avg_last_5", "points_avg_last_10", "points_avg_season")
    assert FEATURE_NAMES[13] == "opponent_def_rating"
    assert FEATURE_NAMES[-1] == "team_win_pct"
    assert len(set(FEATURE_NAMES)) == 25


def test_season_year_and_game_ids() -> None:
    assert season_year(date(2025, 10, 1)) == 2025
    assert season_year(date(2025, 12, 31)) == 2025
    assert season_year(date(2026, 1, 15)) == 2025
    assert season_year(date(2025, 9, 30)) == 2024
    # The schedule rows carry it as Phase 2 writes them: a September date is the season before.
    [game] = schedule_rows(date(2026, 9, 30), [("BOS", "LAL")])
    assert (game["season"], game["season_nba_format"], game["season_year"]) == ("2025", "2025-26", 2025)
    # Ids never repeat across a season's dates.
    ids = {game_id(date(2025, 11, day), number) for day in range(1, 31) for number in range(1, 16)}
    assert len(ids) == 30 * 15
    assert game_id(date(2026, 3, 2), 4).startswith("00225")


def test_small_slate_and_lookup_rule() -> None:
    schedule, features = build_day(DAY, players=40, ready_pct=50)
    assert len(schedule) == 2
    assert len(features) == 40
    assert player_lookup("LeBron James") == "lebronjames"
    assert player_lookup("De'Aaron Fox") == "deaaronfox"
    with pytest.raises(ValueError, match="players"):
        build_day(DAY, players=0)


def _counts(bq, day: date) -> tuple[int, int, int, int]:
    project = bq.project
    schedule = run_query(
        bq, f"SELECT COUNT(DISTINCT game_id) n FROM `{project}.{config.SCHEDULE_TABLE}` WHERE game_date=@d", {"d": day}
    )
    feats = run_query(
        bq,
        f"SELECT COUNT(*) n, COUNTIF(is_production_ready) r FROM `{project}.{config.FEATURE_STORE_TABLE}` "
        "WHERE game_date=@d",
        {"d": day},
    )
    runs = run_query(
        bq,
        f"SELECT COUNT(*) n FROM `{project}.{config.RUN_HISTORY_TABLE}` WHERE data_date=@d AND processor_name=@p",
        {"d": day, "p": config.PHASE4_PROCESSOR},
    )
    return schedule[0]["n"], feats[0]["n"], feats[0]["r"], runs[0]["n"]


@pytest.mark.integration
def test_reseeding_replaces_that_date_only(bq) -> None:
    other = date(2025, 11, 27)
    seed_day(bq, other, players=60)
    report = seed_day(bq, DAY, players=100, ready_pct=90)
    assert _counts(bq, DAY) == (4, 100, 90, 1)
    report = seed_day(bq, DAY, players=60, ready_pct=50, phase4_run=False)
    assert (report.players_total, report.players_ready) == (60, 30)
    assert _counts(bq, DAY) == (2, 60, 30, 0)
    assert _counts(bq, other) == (2, 60, 56, 1)  # 93 % of 60, rounded
    off = seed_day(bq, DAY, games=False)
    assert off.games == 0
    assert _counts(bq, DAY) == (0, 0, 0, 1)


@pytest.mark.integration
def test_rows_read_back_in_the_production_shapes(bq) -> None:
    day = date(2025, 11, 26)
    report = seed_day(bq, day, players=50, ready_pct=80, phase4_status="partial")
    assert "with a 'partial' Phase 4 run-history row" in report.summary()
    [run] = run_query(
        bq,
        "SELECT run_id, status, phase, season_year, records_processed, triggered_by, trigger_source, "
        "output_table, started_at, processed_at, duration_seconds, summary "
        f"FROM `{bq.project}.{config.RUN_HISTORY_TABLE}` WHERE data_date = @d AND processor_name = @p",
        {"d": day, "p": config.PHASE4_PROCESSOR},
    )
    assert (run["status"], run["phase"], run["season_year"], run["records_processed"]) == (
        "partial",
        "phase_4_precompute",
        2025,
        50,
    )
    # Phase 4's own run-id format (docs/platform.md §3.3), reproducible for a seeded day.
    assert re.fullmatch(r"MLFeatureStoreProcessor_20251126_063000_[0-9a-f]{8}", run["run_id"])
    assert (run["triggered_by"], run["trigger_source"], run["output_table"]) == (
        "scheduler",
        "scheduler",
        "ml_feature_store_v2",
    )
    assert run["processed_at"] > run["started_at"]
    assert run["duration_seconds"] == (run["processed_at"] - run["started_at"]).total_seconds()
    # JSON column written through PARSE_JSON: it reads back as an object.
    assert run["summary"] == {"players_processed": 50, "players_ready": 40, "players_failed": 1}
    [feature] = run_query(
        bq,
        "SELECT features, feature_names, feature_quality_score, universal_player_id "
        f"FROM `{bq.project}.{config.FEATURE_STORE_TABLE}` WHERE game_date = @d AND player_lookup = @p",
        {"d": day, "p": "aaronadams"},
    )
    expected = next(f for f in build_day(day, players=50, ready_pct=80)[1] if f["player_lookup"] == "aaronadams")
    assert feature["feature_names"] == list(FEATURE_NAMES)
    assert feature["features"] == expected["features"]
    assert feature["feature_quality_score"] == expected["feature_quality_score"]
    with pytest.raises(ValueError, match="phase4_status"):
        seed_day(bq, day, phase4_status="failed")
    # Re-seeding gives the same run id (a reproducible day), with Phase 4's usual status.
    seed_day(bq, day, players=50, ready_pct=80)
    [again] = run_query(
        bq,
        f"SELECT run_id, status FROM `{bq.project}.{config.RUN_HISTORY_TABLE}` "
        "WHERE data_date = @d AND processor_name = @p",
        {"d": day, "p": config.PHASE4_PROCESSOR},
    )
    assert (again["run_id"], again["status"]) == (run["run_id"], "success")
