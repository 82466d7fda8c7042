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
from nba_phase5 import config, consolidation
from nba_phase5.bq import run_query

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


def test_staged_rows_are_merged_newest_per_key_and_the_tables_deleted(bq) -> None:  # type: ignore[no-untyped-def]
    day, batch = date(2024, 2, 3), "batch_2024-02-03_1741000000"
    stage_rows(bq, batch, "rev-1_aaaa0001", [_row(day, "p1", 25.5, points="20.0", age_s=5), _row(day, "p2", None)])
    # A redelivered request staged again by another worker: the newer row wins (BSW 558-566).
    stage_rows(bq, batch, "rev-1_aaaa0002", [_row(day, "p1", 25.5, points="22.0")])
    assert consolidation.staged_players(bq, day.isoformat(), [batch]) == ["p1", "p2"]

    result = consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)

    assert (result.staging_tables, result.rows_affected, result.tables_deleted) == (2, 2, 2)
    rows = _predictions(bq, day)
    assert [(r["player_lookup"], r["predicted_points"], r["is_active"]) for r in rows] == [
        ("p1", Decimal("22.0"), True),
        ("p2", Decimal("21.5"), True),
    ]
    assert consolidation.batch_tables(bq, [batch]) == []
    assert consolidation.staged_players(bq, day.isoformat(), [batch]) == []


def test_consolidating_the_same_staged_rows_twice_gives_the_same_rows(bq) -> None:  # type: ignore[no-untyped-def]
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


def test_a_forced_batch_supersedes_the_older_prediction(bq) -> None:  # type: ignore[no-untyped-def]
    day = date(2024, 2, 5)
    old_batch, new_batch = "batch_2024-02-05_1741200000", "batch_2024-02-05_1741203600"
    stage_rows(bq, old_batch, "w_1", [_row(day, "p1", 25.5, age_s=60), _row(day, "p2", 18.5, age_s=60)])
    consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=old_batch)
    [old_p1, old_p2] = _predictions(bq, day)

    # The forced batch: p1's line moved (a new key: a new row), p2's did not (the same key: updated in place).
    stage_rows(bq, new_batch, "w_2", [_row(day, "p1", 27.5, points="26.0"), _row(day, "p2", 18.5, points="19.0")])
    result = consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=new_batch)

    assert result.deactivated == 1
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


def test_a_forced_batch_back_on_an_old_line_keeps_its_own_row_active(bq) -> None:  # type: ignore[no-untyped-def]
    """The line moved 24.5 → 26.5 (24.5 superseded), then a forced batch predicts at 24.5 again: the MERGE
    updates the old inactive 24.5 row in place (same key), and that row, just written, must win."""
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


def test_a_merge_that_changes_nothing_fails_and_keeps_the_tables(bq) -> None:  # type: ignore[no-untyped-def]
    day, batch = date(2024, 2, 6), "batch_2024-02-06_1741300000"
    # Rows of another date in the batch's table: the MERGE, pruned to the batch's date, takes none.
    stage_rows(bq, batch, "w_1", [_row(date(2024, 2, 7), "p1", 25.5)])
    with pytest.raises(consolidation.ConsolidationError, match="changed no prediction"):
        consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)
    assert len(consolidation.batch_tables(bq, [batch])) == 1  # kept for a person (BSW 1059-1071)


def test_active_duplicates_left_by_a_concurrent_writer_fail_and_keep_the_tables(  # type: ignore[no-untyped-def]
    bq, monkeypatch: pytest.MonkeyPatch
) -> None:
    day, batch = date(2024, 2, 8), "batch_2024-02-08_1741400000"
    stage_rows(bq, batch, "w_1", [_row(day, "p1", 25.5)])
    real_dml = consolidation._dml

    def then_a_concurrent_insert(client: Any, query: str, game_date: str, labels: Any) -> int:
        affected = real_dml(client, query, game_date, labels)
        if "superseded_by = S.newest_id" in query:  # after the deactivation, another writer adds a twin
            from nba_phase5.bq import insert_rows

            twin = {**_row(day, "p1", 25.5), "game_date": day, "created_at": datetime.now(UTC)}
            insert_rows(client, config.PREDICTIONS_TABLE, [twin])
        return affected

    monkeypatch.setattr(consolidation, "_dml", then_a_concurrent_insert)
    with pytest.raises(consolidation.ConsolidationError, match="more than one active prediction"):
        consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=batch)
    assert len(consolidation.batch_tables(bq, [batch])) == 1


def test_a_dead_runs_staged_rows_are_adopted_and_nothing_else_is_touched(bq) -> None:  # type: ignore[no-untyped-def]
    """A run that died before consolidating leaves its batch's tables; the date's next batch, told to adopt
    it (batch_lease.adoptable_batches), counts its players as predicted and merges them (the coordinator
    left them to a 24-hour clean-up). A batch it was not told to adopt — the coordinator's, of the same
    form, or another date's — is never read, merged or deleted."""
    day = date(2024, 2, 9)
    dead, mine = "batch_2024-02-09_1741500000", "batch_2024-02-09_1741503600"
    coordinators, other_date = "batch_2024-02-09_1741507200", "batch_2024-02-10_1741500000"
    stage_rows(bq, dead, "w_1", [_row(day, "p1", 25.5)])
    stage_rows(bq, mine, "w_1", [_row(day, "p2", 25.5)])
    stage_rows(bq, coordinators, "w_1", [_row(day, "p4", 25.5)])
    stage_rows(bq, other_date, "w_1", [_row(date(2024, 2, 10), "p3", 25.5)])
    assert consolidation.staged_players(bq, day.isoformat(), [mine, dead]) == ["p1", "p2"]
    # A forced batch is a new generation: only its own staged rows count as predicted ...
    assert consolidation.staged_players(bq, day.isoformat(), [mine, dead], own_batch_only=True) == ["p2"]
    # ... but the adopted batch's rows are merged all the same, and its tables cleared.
    result = consolidation.consolidate(bq, game_date=day.isoformat(), batch_id=mine, adopted=[dead])
    assert (result.staging_tables, result.rows_affected) == (2, 2)
    assert [r["player_lookup"] for r in _predictions(bq, day)] == ["p1", "p2"]
    assert consolidation.batch_tables(bq, [dead, mine]) == []
    assert len(consolidation.batch_tables(bq, [coordinators])) == 1
    assert len(consolidation.batch_tables(bq, [other_date])) == 1
