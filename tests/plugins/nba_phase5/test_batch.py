"""batch.claim_batch with fake BigQuery: when this run's batch began, read only when it may differ."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import XComTI
from nba_phase5 import batch, batch_lease

T0, T1, T2 = "2026-12-01T05:00:00+00:00", "2026-12-01T05:10:00+00:00", "2026-12-01T05:20:00+00:00"


class Hook:
    project_id = "p"

    def get_client(self, project_id: str) -> object:
        return object()


@pytest.fixture
def claimed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    made: list[tuple[str, str, str]] = []
    monkeypatch.setattr(batch_lease, "claim", lambda client, day, run_id, at: made.append((day, run_id, at)))
    monkeypatch.setattr(batch_lease, "adoptable_batches", lambda context, day, **kwargs: ["batch_dead"])
    return made


def context(try_number: int) -> dict[str, Any]:
    ti = XComTI("resolve_game_day", {})
    ti.try_number = try_number  # type: ignore[attr-defined]
    return {"ti": ti, "run_id": "run_a", "params": {"in_flight_minutes": 10}}


def test_a_first_try_begins_the_batch_now_without_reading_the_claims(claimed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def no_read(day: str) -> list[dict[str, Any]]:
        raise AssertionError("a first try has no earlier claim to read")

    monkeypatch.setattr(batch_lease, "claims", no_read)
    ctx = context(try_number=1)
    batch.claim_batch(ctx, Hook(), "2026-12-01", T2)
    assert claimed == [("2026-12-01", "run_a", T2)]
    assert ctx["ti"].xcom_pull("resolve_game_day", "batch_started_at") == T2
    # The coordinator's batch id, minted from the first claim, then the dead batches it adopts.
    assert ctx["ti"].xcom_pull("resolve_game_day", "batch_id") == "batch_2026-12-01_1796102400"
    assert ctx["ti"].xcom_pull("resolve_game_day", "staged_batches") == ["batch_2026-12-01_1796102400", "batch_dead"]


def test_a_cleared_run_keeps_the_batch_its_first_claim_began(claimed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"run_id": "run_b", "started_at": T1, "first_claimed_at": T1},
        {"run_id": "run_a", "started_at": T2, "first_claimed_at": T0},
    ]
    monkeypatch.setattr(batch_lease, "claims", lambda day: rows)
    ctx = context(try_number=3)
    batch.claim_batch(ctx, Hook(), "2026-12-01", T2)
    assert ctx["ti"].xcom_pull("resolve_game_day", "batch_started_at") == T0  # a forced generation survives
    assert ctx["ti"].xcom_pull("resolve_game_day", "batch_id") == "batch_2026-12-01_1796101200"  # so does the batch


def test_a_retry_whose_claim_never_landed_begins_now(claimed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(batch_lease, "claims", lambda day: [])
    ctx = context(try_number=2)
    batch.claim_batch(ctx, Hook(), "2026-12-01", T2)
    assert ctx["ti"].xcom_pull("resolve_game_day", "batch_started_at") == T2


def test_a_degraded_verdict_warns_with_its_own_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[tuple[str, str]] = []
    monkeypatch.setattr("nba_phase5.notifications.warn", lambda context, kind, msg: warned.append((kind.name, msg)))
    ti = XComTI(batch.READINESS_VERDICT, {(batch.GAME_DAY, "game_date"): "2025-11-28"})
    context = {"ti": ti, "params": {"phase4_wait_minutes": 30}}
    readiness = {"done": False, "players_ready": 70, "players_total": 200}
    assert batch.proceed_with_ready_players(readiness, context)["degraded"] is True
    words = "Phase 4 not fully ready for 2025-11-28 after 30 min: proceeding with 70/200 ready (35.0 %)"
    assert warned == [("phase4_degraded", words)]
    assert batch.proceed_with_ready_players({**readiness, "done": True}, context)["degraded"] is False
    assert len(warned) == 1
