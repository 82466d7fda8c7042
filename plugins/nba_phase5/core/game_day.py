"""Which NBA game date a DAG run is for, and when its Phase 4 event is due.

NBA dates are Eastern and the game day rolls over at 18:00 Eastern, so a scheduled run (00:00 Eastern on D),
``airflow dags test … D`` and a backfill over D all mean game date D; an asset-triggered run uses its
``run_after``. The event wait ends at the platform's backup time, 06:00 Pacific on D. Why:
docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nba_phase5.config import BACKUP_START, BACKUP_TIMEZONE, DAG_TIMEZONE, WAIT_LIMITS
from nba_phase5.core.contract import InvalidEventError, parse_game_date

ROLLOVER_HOUR = 18
#: The month an NBA season opens: October to December belong to the season that starts that year.
SEASON_START_MONTH = 10


def game_date_for_run(
    run_time: datetime,
    requested: str | None = None,
    *,
    tz: str = DAG_TIMEZONE,
    today: date | None = None,
) -> date:
    """The game date for a run at ``run_time`` (aware), unless the user asked for one explicitly."""
    if requested:
        try:
            return parse_game_date(requested, today=today)
        except InvalidEventError as exc:
            raise ValueError(f"params.game_date: {exc.reason}") from None
    if run_time.tzinfo is None:
        raise ValueError("run_time must be timezone-aware")
    local = run_time.astimezone(ZoneInfo(tz))
    return (local + timedelta(hours=24 - ROLLOVER_HOUR)).date()


def game_date_of_run(context: Mapping[str, Any]) -> date:
    """The game date of the run a task's context describes: its ``game_date`` param, else its logical
    date (``run_after`` for a run without one) by :func:`game_date_for_run`.

    Raises ``ValueError`` for a ``game_date`` param that is not a date, and ``AttributeError`` /
    ``TypeError`` / ``KeyError`` for a context without a run.
    """
    run_time = context.get("logical_date") or context["dag_run"].run_after
    return game_date_for_run(run_time, context["params"].get("game_date"))


def parse_clock(value: str) -> time:
    """``HH:MM`` → time, with a clear error."""
    try:
        hours, minutes = (int(part) for part in value.split(":"))
        return time(hours, minutes)
    except (ValueError, TypeError):
        raise ValueError(f"expected a time of day HH:MM, got {value!r}") from None


def event_deadline(
    game_date: date,
    clock: str = BACKUP_START,
    *,
    now: datetime,
    wait_seconds: float | None = None,
    tz: str = BACKUP_TIMEZONE,
) -> datetime:
    """When the event wait gives up: ``clock`` on the game date in ``tz``.

    ``wait_seconds`` replaces that with ``now + wait_seconds``: manual runs and tests shorten the wait
    with it, and a manual run for a past date (whose clock deadline has gone) can still wait.
    """
    longest = now + timedelta(seconds=WAIT_LIMITS.event_wait_seconds)
    if wait_seconds is not None:
        return min(now + timedelta(seconds=float(wait_seconds)), longest)
    # A run started long before its date (a manual run for next week) still ends within the run's timeout.
    return min(datetime.combine(game_date, parse_clock(clock), ZoneInfo(tz)), longest)


def season_year(day: date) -> int:
    """The NBA season ``day`` belongs to, as the year it opened (2025-26 → 2025): October to December open
    a season, January to September close the one before.

    The platform's rule wherever its code computes ``season_year`` (najicham/nba-stats-scraper): Phase 2's
    schedule processor, which fills ``nba_raw.nbac_schedule`` (``NbacScheduleProcessor.calculate_season_year``,
    data_processors/raw/nbacom/nbac_schedule_processor.py 186-195 at 3d64ed12: ``month >= 10``), and the
    registry processors, the writers of ``season_year`` in ``processor_run_history``
    (``RegistryProcessorBase.date_to_nba_season_years``, data_processors/reference/base/
    registry_processor_base.py at 077f8928: ``month >= 10``). So August and September are the season before.

    :param day: a game date (or any date).
    """
    return day.year if day.month >= SEASON_START_MONTH else day.year - 1
