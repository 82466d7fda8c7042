"""Consolidation as the platform's coordinator did it (predictions/shared/batch_staging_writer.py 899-1157,
docs/platform.md §8.2), against the BigQuery emulator: staged rows in ``_staging_{batch}_{worker}`` tables,
merged into ``player_prop_predictions``, the tables deleted."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from helpers import stage_rows
from nba_phase5 import config
from nba_phase5.bigquery import consolidation
from nba_phase5.bigquery.bq import run_query

pytestmark = pytest.mark.integration


def _row(day: date, player: str, line: float | None, *, points: str = "21.5", age_s: float = 0.0) -> dict[str, Any]:
    """A staged row as a worker writes it (WK 2087-2372): fresh id and created_at, active, no supersession."""
    return {
        "prediction_id": str(uuid.uuid4()),
        "system_id": "catboost_v8",
        "player_lookup": player,
        "universal_player_id": f"{player}_001",
        "game_date": day.isoformat(),
        "game_id": f"{day:%Y%m%d}_LAL_BOS",
        "prediction_version": 1,
        "predicted_points": points,
        "confidence_score": "0.71",
        "recommendation": "OVER" if line is not None else "NO_LINE",
        "current_points_line": line,
        "line_margin": None,
        "has_prop_line": line is not None,
        "line_source": "ACTUAL_PROP" if line is not None else "NO_PROP_LINE",
        "is_active": True,
        "created_at": (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat(),
        "prediction_run_mode": "OVERNIGHT",
    }


def _predictions(bq: Any, day: date) -> list[dict[str, Any]]:
    return run_query(
        bq,
        f"SELECT prediction_id, player_lookup, current_points_line, predicted_points, is_active, superseded_by, "
        f"created_at, updated_at FROM `{bq.project}.{config.PREDICTIONS_TABLE}` WHERE game_date = @d "
        "ORDER BY player_lookup, created_at",
        {"d": day},
    )


def test_staged_rows_are_merged_newest_per_key_and_the_tables_deleted(bq) -> None:
    day, batch = date(2024, 2, 3), "batch_2024-02-03_1741000000"
    stage_rows(bq, batch, "rev-1_aaaa0001", [_row(day, "p1", 25.5, points="20.0", age_s=5), _row(day, "p2", None)])
    # A redelivered request staged again by another worker: the newer row wins (BSW 558-566).
    stage_rows(bq, batch, "rev-1_aaaa0002", [_row(day, "p1", 25.5, points="22.0")])
    assert len(consolidation.counted_tables(bq, [batch])) == 2

    result = consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)

    assert (result.staging_tables, result.rows_affected, result.tables_deleted) == (2, 2, 2)
    rows = _predictions(bq, day)
    assert [(r["player_lookup"], r["predicted_points"], r["is_active"]) for r in rows] == [
        ("p1", Decimal("22.0"), True),
        ("p2", Decimal("21.5"), True),
    ]
    assert consolidation.batch_tables(bq, [batch]) == []
    assert consolidation.counted_tables(bq, [batch]) == []


def test_consolidating_the_same_staged_rows_twice_gives_the_same_rows(bq) -> None:
    day, batch = date(2024, 2, 4), "batch_2024-02-04_1741100000"
    staged = [_row(day, f"p{i}", 20.5 + i) for i in range(3)]
    stage_rows(bq, batch, "w_1", staged)
    consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)
    first = _predictions(bq, day)
    # The same rows staged again (a cleared round, a redelivery), then a second consolidation.
    stage_rows(bq, batch, "w_2", staged)
    again = consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)
    assert again.rows_affected == 3  # matched: updated in place
    second = _predictions(bq, day)
    keys = ("prediction_id", "player_lookup", "current_points_line", "predicted_points", "is_active", "created_at")
    assert [{k: r[k] for k in keys} for r in second] == [{k: r[k] for k in keys} for r in first]
    # And a consolidation with nothing staged is a no-op, not a failure (BSW 1000-1008).
    assert consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch).rows_affected == 0
    assert len(_predictions(bq, day)) == 3


def test_a_forced_batch_supersedes_the_older_prediction(bq) -> None:
    day = date(2024, 2, 5)
    old_batch, new_batch = "batch_2024-02-05_1741200000", "batch_2024-02-05_1741203600"
    stage_rows(bq, old_batch, "w_1", [_row(day, "p1", 25.5, age_s=60), _row(day, "p2", 18.5, age_s=60)])
    consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=old_batch)
    [old_p1, old_p2] = _predictions(bq, day)

    # The forced batch: p1's line moved (a new key: a new row), p2's did not (the same key: updated in place).
    stage_rows(bq, new_batch, "w_2", [_row(day, "p1", 27.5, points="26.0"), _row(day, "p2", 18.5, points="19.0")])
    result = consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=new_batch)

    # One statement: p1's new line inserted, p2 updated in place and p1's old row deactivated.
    assert result.rows_affected == 3
    rows = {(r["player_lookup"], r["current_points_line"]): r for r in _predictions(bq, day)}
    replaced, newest = rows[("p1", Decimal("25.5"))], rows[("p1", Decimal("27.5"))]
    assert (replaced["is_active"], replaced["superseded_by"]) == (False, newest["prediction_id"])
    assert (newest["is_active"], newest["superseded_by"]) == (True, None)
    assert replaced["prediction_id"] == old_p1["prediction_id"]
    updated = rows[("p2", Decimal("18.5"))]
    assert (updated["prediction_id"], updated["predicted_points"], updated["is_active"]) == (
        old_p2["prediction_id"],
        Decimal("19.0"),
        True,
    )
    assert updated["updated_at"] is not None


def test_a_forced_batch_back_on_an_old_line_keeps_its_own_row_active(bq) -> None:
    """The line moved 24.5 → 26.5 (24.5 superseded), then a forced batch predicts at 24.5 again: the MERGE
    updates the old inactive 24.5 row in place (same key), and that row, holding the newest prediction, must
    win."""
    day = date(2024, 2, 10)
    first, moved, forced = (f"batch_2024-02-10_17416{n}0000" for n in (0, 1, 2))
    stage_rows(bq, first, "w_1", [_row(day, "p1", 24.5, age_s=120)])
    consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=first)
    stage_rows(bq, moved, "w_1", [_row(day, "p1", 26.5, age_s=60)])
    consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=moved)
    stage_rows(bq, forced, "w_1", [_row(day, "p1", 24.5, points="23.0")])
    consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=forced)
    rows = {r["current_points_line"]: r for r in _predictions(bq, day)}
    assert (rows[Decimal("24.5")]["is_active"], rows[Decimal("24.5")]["predicted_points"]) == (True, Decimal("23.0"))
    assert rows[Decimal("26.5")]["is_active"] is False
    assert rows[Decimal("26.5")]["superseded_by"] == rows[Decimal("24.5")]["prediction_id"]


def test_the_newest_prediction_stays_active_even_when_an_older_one_updates_a_stored_row(bq) -> None:
    """A dead forced batch staged p1 again on the stored row's line (an older prediction: it updates that
    row in place); the batch that adopted it staged p1 on the line since moved (the newest: a new row).
    The newest prediction stays active, whichever row the MERGE touched, and a second consolidation of the
    same rows keeps it so."""
    day = date(2024, 2, 11)
    first, dead, mine = (f"batch_2024-02-11_17417{n}0000" for n in (0, 1, 2))
    stage_rows(bq, first, "w_1", [_row(day, "p1", 24.5, age_s=300)])
    consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=first)
    older, newest = _row(day, "p1", 24.5, points="22.0", age_s=120), _row(day, "p1", 26.5, points="27.0")
    for _ in range(2):  # the second time: a rerun over the same staged rows
        stage_rows(bq, dead, "w_1", [older])
        stage_rows(bq, mine, "w_1", [newest])
        consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=mine, adopted=[dead])
        rows = {r["current_points_line"]: r for r in _predictions(bq, day)}
        assert (rows[Decimal("26.5")]["is_active"], rows[Decimal("26.5")]["superseded_by"]) == (True, None)
        replaced = rows[Decimal("24.5")]
        assert (replaced["is_active"], replaced["superseded_by"]) == (False, newest["prediction_id"])


def test_a_merge_that_changes_nothing_fails_and_keeps_the_tables(bq) -> None:
    day, batch = date(2024, 2, 6), "batch_2024-02-06_1741300000"
    # Rows of another date in the batch's table: the MERGE, pruned to the batch's date, takes none.
    stage_rows(bq, batch, "w_1", [_row(date(2024, 2, 7), "p1", 25.5)])
    with pytest.raises(consolidation.ConsolidationError, match="changed no prediction"):
        consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)
    assert len(consolidation.batch_tables(bq, [batch])) == 1  # kept for a person (BSW 1059-1071)


def test_a_consolidation_that_would_leave_active_duplicates_fails_writes_nothing_and_keeps_the_tables(
    bq,
) -> None:
    """The platform's duplicates check (BSW 1073-1111), made inside the one MERGE: a prediction already
    stored twice (a duplicated write: the same id, both active) would stay active twice, so the statement
    raises, writes nothing, and the staging tables are kept for a person."""
    from nba_phase5.bigquery.bq import insert_rows

    day, batch = date(2024, 2, 8), "batch_2024-02-08_1741400000"
    twin = {**_row(day, "p2", 19.5), "game_date": day, "created_at": datetime.now(UTC)}
    insert_rows(bq, config.PREDICTIONS_TABLE, [twin, twin])
    stage_rows(bq, batch, "w_1", [_row(day, "p1", 25.5)])
    with pytest.raises(consolidation.ConsolidationError, match="more than one active prediction"):
        consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)
    assert [r["player_lookup"] for r in _predictions(bq, day)] == ["p2", "p2"]  # p1 not merged
    assert len(consolidation.batch_tables(bq, [batch])) == 1


def test_nothing_staged_for_the_date_changes_no_row_even_where_rows_would_be_superseded(bq) -> None:
    """With no staged row for the date the MERGE writes nothing at all (not even the deactivation of an
    older active row), so "changed no prediction" stays the platform's check (BSW 1059-1071)."""
    from nba_phase5.bigquery.bq import insert_rows

    day, batch = date(2024, 2, 13), "batch_2024-02-13_1741600000"
    old = {**_row(day, "p1", 24.5), "game_date": day, "created_at": datetime.now(UTC) - timedelta(minutes=5)}
    new = {**_row(day, "p1", 26.5), "game_date": day, "created_at": datetime.now(UTC)}
    insert_rows(bq, config.PREDICTIONS_TABLE, [old, new])
    stage_rows(bq, batch, "w_1", [_row(date(2024, 2, 14), "p1", 25.5)])
    with pytest.raises(consolidation.ConsolidationError, match="changed no prediction"):
        consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)
    assert [r["is_active"] for r in _predictions(bq, day)] == [True, True]
    assert len(consolidation.batch_tables(bq, [batch])) == 1


def test_a_dead_runs_staged_rows_are_adopted_and_nothing_else_is_touched(bq) -> None:
    """A run that died before consolidating leaves its batch's tables; the date's next batch, told to adopt
    it (batch_claims.adoptable_batches), counts its players as predicted and merges them (the coordinator
    left them to a 24-hour clean-up). A batch it was not told to adopt — the coordinator's, of the same
    form, or another date's — is never read, merged or deleted."""
    day = date(2024, 2, 9)
    dead, mine = "batch_2024-02-09_1741500000", "batch_2024-02-09_1741503600"
    coordinators, other_date = "batch_2024-02-09_1741507200", "batch_2024-02-10_1741500000"
    stage_rows(bq, dead, "w_1", [_row(day, "p1", 25.5)])
    stage_rows(bq, mine, "w_1", [_row(day, "p2", 25.5)])
    stage_rows(bq, coordinators, "w_1", [_row(day, "p4", 25.5)])
    stage_rows(bq, other_date, "w_1", [_row(date(2024, 2, 10), "p3", 25.5)])
    assert len(consolidation.counted_tables(bq, [mine, dead])) == 2
    # A forced batch is a new generation: only its own staged rows count as predicted ...
    assert consolidation.counted_tables(bq, [mine, dead], own_batch_only=True) == consolidation.batch_tables(bq, [mine])
    # ... but the adopted batch's rows are merged all the same, and its tables cleared.
    result = consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=mine, adopted=[dead])
    assert (result.staging_tables, result.rows_affected) == (2, 2)
    assert [r["player_lookup"] for r in _predictions(bq, day)] == ["p1", "p2"]
    assert consolidation.batch_tables(bq, [dead, mine]) == []
    assert len(consolidation.batch_tables(bq, [coordinators])) == 1
    assert len(consolidation.batch_tables(bq, [other_date])) == 1
