"""One live batch per date: which run holds it, decided the same way by every run that asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nba_phase5.airflow.batch_claims import Holder, holder

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


def _batches(*entries: tuple[str, str, datetime]) -> list[dict[str, object]]:
    return [{"kind": kind, "name": name, "happened_at": at} for kind, name, at in entries]


def test_a_dead_runs_published_batch_is_adopted_once_its_requests_are_no_longer_in_flight() -> None:
    """_date_batches.sql's rows (game_day.sql's ``batches``): each run's first claim, each batch's last
    accepted request (the ledger)."""
    from nba_phase5.airflow.batch_claims import adoptable

    claim_dead, claim_live, claim_recent, claim_mine = (T0 + timedelta(minutes=m) for m in (0, 1, 2, 3))
    rows = _batches(
        ("claim", "dead", claim_dead),
        ("claim", "live", claim_live),
        ("claim", "recent", claim_recent),
        ("claim", "mine", claim_mine),
        ("claim", "never_published", T0 + timedelta(minutes=4)),
        ("batch", f"batch_2025-11-28_{int(claim_dead.timestamp())}", T0 + timedelta(minutes=5)),
        ("batch", f"batch_2025-11-28_{int(claim_live.timestamp())}", T0 + timedelta(minutes=5)),
        ("batch", f"batch_2025-11-28_{int(claim_recent.timestamp())}", T0 + timedelta(minutes=30)),
        ("batch", f"batch_2025-11-28_{int(claim_mine.timestamp())}", T0 + timedelta(minutes=5)),
        ("batch", "batch_2025-11-28_1764300000", T0),  # the coordinator's: no claim of this package's
        ("batch", "2025-11-28:scheduled__old", T0),  # an earlier version's id
    )
    adopted = adoptable(
        rows, day="2025-11-28", own_run="mine", cutoff=T0 + timedelta(minutes=20), live={"live", "mine"}.__contains__
    )
    assert adopted == [f"batch_2025-11-28_{int(claim_dead.timestamp())}"]


def test_a_holder_that_claims_again_keeps_its_place_over_runs_that_yielded_to_it() -> None:
    # "holder" took the date (claim at 0) and "second" yielded to it (claim at 60); then the holder's
    # claim_batch was retried (its latest claim: 600). "second" is still live (recording itself).
    day = rows(("second", 60, "running"), ("holder", 600, "running"))
    live = {"holder", "second"}.__contains__
    yielded = {"second": "holder"}.get
    assert holder(day, "holder", live, yielded) is None  # the holder goes on
    assert holder(day, "holder", live) == Holder("second", (T0 + timedelta(seconds=60)).isoformat())  # the old rule


class FakeTI:
    """What batch_claims asks of Airflow: XComs (this run's and other runs') and run counts by state."""

    def __init__(self, *, states: dict[str, str], yields: dict[str, str], claims: list[dict[str, int]]) -> None:
        self.states, self.yields, self.claims = states, yields, claims
        self.pushed: dict[str, object] = {}

    def xcom_pull(self, task_ids: object = None, dag_id: str | None = None, key: str = "", run_id: str | None = None):
        from nba_phase5.airflow.batch_claims import CLAIM_KEY, HELD_BY_KEY

        if key == CLAIM_KEY:
            return self.claims
        if key == HELD_BY_KEY and task_ids == "check_batch_status" and run_id in self.yields:
            return {"run_id": self.yields[run_id], "started_at": "t"}
        return None

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value

    def get_dr_count(self, dag_id: str, run_ids: list[str], states: list[str]) -> int:
        return sum(1 for run in run_ids if self.states.get(run) in states)


def _context(ti: FakeTI, run_id: str = "mine", clears: int = 0) -> dict[str, object]:
    from types import SimpleNamespace

    return {
        "ti": ti,
        "run_id": run_id,
        "dag": SimpleNamespace(dag_id="d"),
        "dag_run": SimpleNamespace(clear_number=clears),
    }


def test_a_run_cleared_after_its_latest_claim_claims_again_before_it_asks(monkeypatch) -> None:
    from nba_phase5.airflow import batch_claims

    appended: list[tuple[str, str]] = []
    monkeypatch.setattr(batch_claims, "claim", lambda client, day, run_id, at: appended.append((day, run_id)))
    monkeypatch.setattr(
        "nba_phase5.airflow.batch_claims.bigquery_hook",
        lambda: type("H", (), {"project_id": "p", "get_client": lambda self, **k: None})(),
    )
    # Claimed in its first life (clear 0) and cleared once since (only the fan-out, say): claims again.
    ti = FakeTI(states={}, yields={}, claims=[{"claimed_at": "t0", "clear_number": 0}])
    batch_claims.claim_again_if_cleared(_context(ti, clears=1), "2025-03-04")
    assert appended == [("2025-03-04", "mine")]
    assert ti.pushed[batch_claims.CLAIM_KEY]["clear_number"] == 1
    # Claimed in this life already (claim_batch ran again after the clear): nothing more.
    appended.clear()
    ti = FakeTI(
        states={}, yields={}, claims=[{"claimed_at": "t0", "clear_number": 0}, {"claimed_at": "t1", "clear_number": 1}]
    )
    batch_claims.claim_again_if_cleared(_context(ti, clears=1), "2025-03-04")
    assert appended == []


def test_a_run_that_yielded_to_a_run_that_did_not_finish_the_batch_is_told_why() -> None:
    from nba_phase5.airflow.batch_claims import orphaned_by

    # The holder is live and has not yielded: fine. It finished: fine.
    assert orphaned_by(_context(FakeTI(states={"a": "running"}, yields={}, claims=[])), "a") is None
    assert orphaned_by(_context(FakeTI(states={"a": "success"}, yields={}, claims=[])), "a") is None
    # It failed; or it yielded back to this run (both end skipped, state success): nobody runs the batch.
    failed = orphaned_by(_context(FakeTI(states={"a": "failed"}, yields={}, claims=[])), "a")
    assert failed is not None
    assert "ended without finishing" in failed
    cycle = orphaned_by(_context(FakeTI(states={"a": "success"}, yields={"a": "mine"}, claims=[])), "a")
    assert cycle == "the runs yielded to each other: a → mine"
    # It yielded to a third run that holds the date: fine.
    assert (
        orphaned_by(_context(FakeTI(states={"a": "success", "c": "running"}, yields={"a": "c"}, claims=[])), "a")
        is None
    )
