"""One live batch per date: which run holds it, decided the same way by every run that asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nba_phase5.batch_lease import Holder, holder

T0 = datetime(2025, 3, 4, 5, 0, tzinfo=UTC)


def rows(*runs: tuple[str, int, str]) -> list[dict[str, object]]:
    """(run_id, seconds after T0, status) as batch_runs.sql returns them (in any order)."""
    return [{"run_id": r, "started_at": T0 + timedelta(seconds=s), "status": st} for r, s, st in runs]


def test_the_earliest_live_run_holds_the_batch_and_later_ones_yield() -> None:
    day = rows(("manual_b", 2, "running"), ("scheduled_a", 0, "running"))
    live = {"scheduled_a", "manual_b"}.__contains__
    assert holder(day, "scheduled_a", live) is None
    assert holder(day, "manual_b", live) == Holder("scheduled_a", (T0).isoformat())


def test_both_runs_agree_whatever_order_the_rows_come_in() -> None:
    day = rows(("b", 0, "running"), ("a", 0, "running"))  # same start: the run id breaks the tie
    live = {"a", "b"}.__contains__
    verdicts = {run: holder(list(reversed(day)) if run == "a" else day, run, live) for run in ("a", "b")}
    assert verdicts["a"] is None
    assert verdicts["b"] == Holder("a", T0.isoformat())


def test_a_row_left_running_by_a_dead_run_does_not_block_the_date() -> None:
    day = rows(("crashed", 0, "running"), ("now", 60, "running"))
    assert holder(day, "now", live={"now"}.__contains__) is None


def test_a_run_cleared_while_another_holds_the_date_queues_behind_it() -> None:
    # "earlier" ran first (claim at 0), then "manual" took the date (60); clearing "earlier" claims again
    # (600): its latest claim orders it, so it yields instead of overtaking the holder.
    day = rows(("manual", 60, "running"), ("earlier", 600, "running"))
    live = {"earlier", "manual"}.__contains__
    assert holder(day, "manual", live) is None
    assert holder(day, "earlier", live) == Holder("manual", (T0 + timedelta(seconds=60)).isoformat())


def test_a_run_without_a_row_yields_to_any_live_run() -> None:
    day = rows(("other", 600, "running"))
    assert holder(day, "mine", live={"other", "mine"}.__contains__) == Holder(
        "other", (T0 + timedelta(seconds=600)).isoformat()
    )
    assert holder([], "mine", live=lambda run: True) is None
