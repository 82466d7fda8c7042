"""The game date of a run: dags test, the scheduled run and a backfill over D all mean D."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from nba_phase5.core.game_day import event_deadline, game_date_for_run, game_date_of_run, season_year

ET = ZoneInfo("America/New_York")


@pytest.mark.parametrize("day", [date(2025, 11, 28), date(2026, 3, 8), date(2026, 3, 9), date(2025, 7, 4)])
def test_dags_test_scheduled_and_backfill_agree(day: date) -> None:
    from airflow.timetables.base import DataInterval, TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    # `airflow dags test nba_phase5_predictions D`: logical date D at midnight UTC (evening before, Eastern).
    assert game_date_for_run(datetime(day.year, day.month, day.day, tzinfo=UTC)) == day
    # The scheduled run and each backfill run for D sit on the DAG's cron tick for D.
    timetable = CronTriggerTimetable("0 0 * * *", timezone="America/New_York")
    previous_tick = datetime(day.year, day.month, day.day, 0, tzinfo=ET) - timedelta(days=1)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(previous_tick, previous_tick),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info is not None
    assert info.logical_date.astimezone(ET).date() == day
    assert game_date_for_run(info.logical_date) == day


def test_rollover_is_six_pm_eastern() -> None:
    assert game_date_for_run(datetime(2025, 11, 28, 17, 59, tzinfo=ET)) == date(2025, 11, 28)
    assert game_date_for_run(datetime(2025, 11, 28, 18, 0, tzinfo=ET)) == date(2025, 11, 29)


def test_explicit_game_date_wins_and_is_validated() -> None:
    now = datetime(2025, 11, 28, 12, tzinfo=UTC)
    assert game_date_for_run(now, "2025-11-01") == date(2025, 11, 1)
    with pytest.raises(ValueError, match=r"params\.game_date"):
        game_date_for_run(now, "2025-02-30")
    with pytest.raises(ValueError, match="timezone-aware"):
        game_date_for_run(datetime(2025, 11, 28))


def test_event_deadline_is_six_pacific_unless_overridden() -> None:
    day = date(2025, 11, 28)
    now = datetime(2025, 11, 28, 5, tzinfo=UTC)  # 00:00 Eastern: the run opens
    assert event_deadline(day, now=now) == datetime(2025, 11, 28, 14, tzinfo=UTC)  # 06:00 PST, 09:00 EST
    summer = date(2026, 4, 10)
    assert event_deadline(summer, now=datetime(2026, 4, 10, 4, tzinfo=UTC)) == datetime(2026, 4, 10, 13, tzinfo=UTC)
    assert event_deadline(day, now=now, wait_seconds=30) == now + timedelta(seconds=30)
    # A manual run for a past date can still wait.
    later = datetime(2025, 12, 5, tzinfo=UTC)
    assert event_deadline(day, now=later, wait_seconds=120) == later + timedelta(seconds=120)
    assert event_deadline(day, "05:15", now=now) == datetime(2025, 11, 28, 13, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="HH:MM"):
        event_deadline(day, "6am", now=now)


def test_no_event_wait_outlasts_the_window() -> None:
    # A manual run started a week before its date, or asked to wait a day, still ends within the window.
    now = datetime(2025, 11, 21, 12, tzinfo=UTC)
    assert event_deadline(date(2025, 11, 28), now=now) == now + timedelta(hours=10)
    assert event_deadline(date(2025, 11, 28), now=now, wait_seconds=86_400) == now + timedelta(hours=10)


def test_the_night_daylight_saving_ends_still_waits_until_six_pacific() -> None:
    # 00:00 EDT to 06:00 PST is 10 hours on 2025-11-02: the cap must not cut the wait to 05:00 PST.
    opened = datetime(2025, 11, 2, 4, tzinfo=UTC)  # 00:00 EDT
    assert event_deadline(date(2025, 11, 2), now=opened) == datetime(2025, 11, 2, 14, tzinfo=UTC)  # 06:00 PST


@pytest.mark.parametrize(
    ("day", "season"),
    [
        (date(2026, 6, 30), 2025),  # the Finals: the season that opened in October 2025
        (date(2026, 7, 31), 2025),
        (date(2026, 8, 1), 2025),  # August and September: still the season before, as the platform counts
        (date(2026, 9, 30), 2025),
        (date(2026, 10, 1), 2026),  # October opens the 2026-27 season
        (date(2026, 12, 31), 2026),
        (date(2027, 1, 1), 2026),
    ],
)
def test_season_year_is_the_platforms_october_rule(day: date, season: int) -> None:
    assert season_year(day) == season


def test_a_runs_game_date_comes_from_its_param_else_its_logical_date_else_run_after() -> None:
    run = SimpleNamespace(run_after=datetime(2025, 11, 29, 5, tzinfo=UTC))  # 00:00 Eastern on 11-29
    assert game_date_of_run({"params": {}, "dag_run": run, "logical_date": None}) == date(2025, 11, 29)
    scheduled = {"params": {}, "dag_run": run, "logical_date": datetime(2025, 11, 28, 5, tzinfo=UTC)}
    assert game_date_of_run(scheduled) == date(2025, 11, 28)
    assert game_date_of_run({**scheduled, "params": {"game_date": "2025-11-20"}}) == date(2025, 11, 20)
    with pytest.raises(ValueError, match=r"params\.game_date"):
        game_date_of_run({**scheduled, "params": {"game_date": "not a date"}})
