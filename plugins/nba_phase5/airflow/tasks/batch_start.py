"""The run's first two tasks: resolve the game day (a read), then claim its batch and record the run ``running``.

They are two tasks so the graph shows the side effects: ``resolve_game_day`` only reads (one query,
``game_day.sql``, which also brings the date's claims and batches the claim needs), and ``claim_batch``
writes: the run's claim on the date (:mod:`nba_phase5.airflow.batch_claims`) and its ``running`` row in
the run history. An off day skips ``claim_batch`` and so everything after it but the recorder.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from nba_phase5 import config
from nba_phase5.airflow import batch_claims
from nba_phase5.airflow.hooks import bigquery_hook
from nba_phase5.airflow.notifications import warn
from nba_phase5.airflow.tasks import run_history
from nba_phase5.bigquery import query_params, sql
from nba_phase5.core.alert_kinds import AlertKind
from nba_phase5.core.coverage import plain_row
from nba_phase5.core.game_day import game_date_of_run
from nba_phase5.core.staging import mint_batch_id

log = logging.getLogger(__name__)


def resolve_game_day(context: Any) -> dict[str, Any]:
    """The run's game day: its date (the param, or the run's date in Eastern), its games, and the date's batches.

    No game on the date but games in the weeks around it: an off day. No games at all around it: the
    schedule itself is missing (an outage upstream), so the run warns and lets the Phase 4 gates decide
    instead of ending as a silent off day.
    """
    day = game_date_of_run(context)
    started = datetime.now(UTC).isoformat()
    row = bigquery_hook().query_rows(sql.render("game_day.sql"), {"game_date": day})[0]
    games, around = int(row["games"]), int(row["games_around"])
    if around == 0:
        warn(
            {**context, "game_date": day.isoformat()},
            AlertKind.schedule_outage,
            f"{config.SCHEDULE_TABLE} has no games within 14 days of {day}: cannot tell an off day from a "
            "schedule outage, so the Phase 4 gates decide",
        )
    log.info("Game date %s: %d games scheduled", day, games)
    return {
        "game_date": day.isoformat(),
        "started_at": started,
        "games": games,
        "schedule_outage": around == 0,
        # The date's claims and published batches (_date_batches.sql), for claim_batch: timestamps as ISO.
        "batches": [plain_row(dict(batch)) for batch in row["batches"] or []],
    }


def is_off_day(game_day: dict[str, Any]) -> bool:
    """No game on the date, and the schedule around it is there (so it is not an outage)."""
    return not game_day["games"] and not game_day["schedule_outage"]


def claim_batch(game_day: dict[str, Any], context: Any) -> dict[str, Any]:
    """Claim the date's batch for this run and record the run ``running``; skip on an off day.

    Returns when this run's batch began (its first claim, kept across clears: a cleared forced run keeps
    its generation), the coordinator's batch id minted from it, and the batches whose staged rows the run
    counts: its own, then the dead batches of the date it adopts. A first try's batch begins with the
    claim it makes now. A retry or a clear reads the date's claims again (resolve_game_day's were read
    before this run's first claim unless it was cleared too), finds the run's first claim among them, and
    claims again now, behind any live holder; a run whose earlier tries never claimed begins now.
    """
    day = str(game_day["game_date"])
    if is_off_day(game_day):
        raise AirflowSkipException(f"No games on {day}: nothing to predict, the run ends here")
    hook = bigquery_hook()
    now = datetime.now(UTC).isoformat()
    if context["ti"].try_number == 1:
        batches, first = [_with_times(batch) for batch in game_day["batches"]], now
    else:
        batches = list(hook.query_rows(sql.render("game_day.sql"), {"game_date": day})[0]["batches"] or [])
        first = batch_claims.first_claim(batches, context["run_id"]) or now
    batch_claims.claim_for_run(context, hook.get_client(project_id=hook.project_id), day, now)
    own = mint_batch_id(day, datetime.fromisoformat(first))
    window = query_params.in_flight_seconds(context["params"]["in_flight_minutes"])
    adopted = batch_claims.adoptable_batches(context, day, batches, in_flight_seconds=window, now=datetime.now(UTC))
    claim = {"batch_started_at": first, "batch_id": own, "staged_batches": [own, *adopted]}
    run_history.record_running(context, game_day, claim)
    return claim


def _with_times(batch: dict[str, Any]) -> dict[str, Any]:
    """A ``_date_batches.sql`` row back from its XCom: its time as a datetime again (the rules compare them)."""
    happened = batch["happened_at"]
    return {**batch, "happened_at": datetime.fromisoformat(happened) if isinstance(happened, str) else happened}
