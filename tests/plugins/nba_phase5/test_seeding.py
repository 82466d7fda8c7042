"""Seeding: a realistic, reproducible day; re-seeding replaces that date only."""

from __future__ import annotations

from datetime import date

import pytest

from nba_phase5 import config
from nba_phase5.bq import run_query
from nba_phase5.seeding import build_day, player_lookup, seed_day

DAY = date(2025, 11, 28)


def test_build_day_is_reproducible_and_realistic() -> None:
    schedule, features = build_day(DAY, players=450, ready_pct=93)
    assert (schedule, features) == build_day(DAY, players=450, ready_pct=93)
    assert len(schedule) == 15
    teams = [g["home_team_abbr"] for g in schedule] + [g["away_team_abbr"] for g in schedule]
    assert len(set(teams)) == 30
    lookups = [f["player_lookup"] for f in features]
    assert len(set(lookups)) == 450
    assert all(lookup.isalpha() and lookup.islower() for lookup in lookups)
    assert sum(f["is_production_ready"] for f in features) == round(450 * 0.93)
    game_ids = {g["game_id"] for g in schedule}
    assert {f["game_id"] for f in features} <= game_ids


def test_small_slate_and_lookup_rule() -> None:
    schedule, features = build_day(DAY, players=40, ready_pct=50)
    assert len(schedule) == 2
    assert len(features) == 40
    assert player_lookup("LeBron James") == "lebronjames"
    assert player_lookup("De'Aaron Fox") == "deaaronfox"
    with pytest.raises(ValueError, match="players"):
        build_day(DAY, players=0)


def _counts(bq, day: date) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    project = bq.project
    schedule = run_query(
        bq, f"SELECT COUNT(*) n FROM `{project}.{config.SCHEDULE_TABLE}` WHERE game_date=@d", {"d": day}
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
def test_reseeding_replaces_that_date_only(bq) -> None:  # type: ignore[no-untyped-def]
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
