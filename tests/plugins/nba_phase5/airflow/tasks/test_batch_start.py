"""The run's first two tasks with fake BigQuery: resolve_game_day is one query and claims nothing;
claim_batch claims (or skips an off day), keeps the batch's first claim across clears, records ``running``."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from helpers import XComTI
from nba_phase5 import config
from nba_phase5.airflow import batch_claims
from nba_phase5.airflow.tasks import batch_start
from nba_phase5.bigquery.sql import render
from nba_phase5.core.staging import mint_batch_id

T0, T1, T2 = "2026-12-01T05:00:00+00:00", "2026-12-01T05:10:00+00:00", "2026-12-01T05:20:00+00:00"


class Hook:
    """The package's hook as the first tasks use it: every query answers ``row``; each is recorded."""

    project_id = "p"

    def __init__(self, row: dict[str, Any] | None = None, events: list[str] | None = None) -> None:
        self.row, self.events = row or {}, events if events is not None else []

    def get_client(self, project_id: str) -> object:
        return object()

    def query_rows(self, sql: str, params: Any) -> list[dict[str, Any]]:
        self.events.append("query " + next(n for n in ("game_day", "batch_status") if sql == render(f"{n}.sql")))
        return [dict(self.row)]


@pytest.fixture
def claimed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    made: list[tuple[str, str, str]] = []
    monkeypatch.setattr(batch_claims, "claim", lambda client, day, run_id, at: made.append((day, run_id, at)))
    monkeypatch.setattr(batch_claims, "adoptable_batches", lambda context, day, rows, **kwargs: ["batch_dead"])
    monkeypatch.setattr(batch_start, "bigquery_hook", lambda: Hook({"batches": READ_AGAIN}))
    return made


#: The date's claims as a retry or a clear reads them again (game_day.sql's ``batches``).
READ_AGAIN: list[dict[str, Any]] = []


@pytest.fixture
def running_rows(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    monkeypatch.setattr(batch_start.run_history, "record_running", lambda ctx, day, claim: rows.append((day, claim)))
    return rows


def _timed(row: dict[str, Any]) -> dict[str, Any]:
    """A row as BigQuery returns it (its time a datetime), not as it comes back from an XCom."""
    return {**row, "happened_at": datetime.fromisoformat(row["happened_at"])}


def claim_row(run_id: str, first: str) -> dict[str, Any]:
    """A run's first claim as resolve_game_day returns it (``_date_batches.sql``'s row, its time as ISO)."""
    return {"kind": "claim", "name": run_id, "happened_at": first}


def game_day(batches: list[dict[str, Any]], *, games: int = 7, outage: bool = False) -> dict[str, Any]:
    return {"game_date": "2026-12-01", "started_at": T2, "games": games, "schedule_outage": outage, "batches": batches}


def context(try_number: int) -> dict[str, Any]:
    ti = XComTI(config.TASKS.claim, {})
    ti.try_number = try_number
    return {"ti": ti, "run_id": "run_a", "params": {"in_flight_minutes": 10, "game_date": "2026-12-01"}}


def test_a_first_try_begins_the_batch_with_its_claim(claimed, running_rows) -> None:
    # An earlier claim of this run id (another life of the id, say) does not move a first try's start.
    day = game_day([claim_row("run_a", T0)])
    claim = batch_start.claim_batch(day, context(try_number=1))
    [(_, run, at)] = claimed
    assert (run, claim["batch_started_at"]) == ("run_a", at)  # the batch begins with the claim's own time
    # The coordinator's batch id, minted from the first claim, then the dead batches it adopts.
    batch_id = mint_batch_id("2026-12-01", datetime.fromisoformat(at))
    assert claim == {"batch_started_at": at, "batch_id": batch_id, "staged_batches": [batch_id, "batch_dead"]}
    assert running_rows == [(day, claim)]  # the running row, once the batch is claimed


def test_a_cleared_run_keeps_the_batch_its_first_claim_began(claimed, running_rows, monkeypatch) -> None:
    # The claims read again: resolve_game_day's (read before this run's first claim) do not have it.
    rows = [claim_row("run_b", T1), claim_row("run_a", T0), {"kind": "batch", "name": "run_a", "happened_at": T1}]
    monkeypatch.setattr(batch_start, "bigquery_hook", lambda: Hook({"batches": [_timed(r) for r in rows]}))
    claim = batch_start.claim_batch(game_day([]), context(try_number=3))
    assert claim["batch_started_at"] == T0  # a forced generation survives
    assert claim["batch_id"] == "batch_2026-12-01_1796101200"  # so does the batch
    # A clear claims again now, so it queues behind a live holder instead of overtaking it with an old time.
    [(_, _, at)] = claimed
    assert at > T2


def test_a_retry_whose_first_try_never_claimed_begins_with_its_own_claim(claimed, running_rows) -> None:
    # The first try failed before its claim landed: the batch begins with this try's claim, so a later clear
    # (which finds that claim first among the date's claims) mints the same batch id.
    claim = batch_start.claim_batch(game_day([claim_row("run_b", T0)]), context(try_number=2))
    [(_, _, at)] = claimed
    assert claim["batch_started_at"] == at > T2


def test_an_off_day_claims_nothing_and_writes_no_row(claimed, running_rows) -> None:
    with pytest.raises(AirflowSkipException, match="No games on 2026-12-01"):
        batch_start.claim_batch(game_day([], games=0), context(try_number=1))
    assert (claimed, running_rows) == ([], [])
    # No games at all around the date is a schedule outage, not an off day: the gates decide.
    batch_start.claim_batch(game_day([], games=0, outage=True), context(try_number=1))
    assert len(claimed) == 1


def test_resolve_game_day_is_one_query_that_claims_nothing(claimed, monkeypatch) -> None:
    events: list[str] = []
    warned: list[str] = []
    rows = [{"kind": "claim", "name": "run_dead", "happened_at": datetime.fromisoformat(T0)}]
    monkeypatch.setattr(batch_start, "warn", lambda context, kind, message: warned.append(kind.name))
    monkeypatch.setattr(
        batch_start, "bigquery_hook", lambda: Hook({"games": 7, "games_around": 90, "batches": rows}, events)
    )
    ctx = {**context(try_number=1), "dag_run": SimpleNamespace(run_after=datetime.fromisoformat(T2))}
    day = batch_start.resolve_game_day(ctx)
    assert events == ["query game_day"]
    assert claimed == []
    assert warned == []
    # The date's batches travel to claim_batch as an XCom: their times as ISO strings.
    assert (day["game_date"], day["games"], day["schedule_outage"], day["batches"]) == (
        "2026-12-01",
        7,
        False,
        [{"kind": "claim", "name": "run_dead", "happened_at": T0}],
    )
    monkeypatch.setattr(batch_start, "bigquery_hook", lambda: Hook({"games": 0, "games_around": 0, "batches": []}))
    assert batch_start.resolve_game_day(ctx)["schedule_outage"] is True
    assert warned == ["schedule_outage"]
