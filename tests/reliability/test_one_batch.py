"""One game day, one batch: a live run holds the date, in-flight requests are not sent again, and
``force`` is a new generation. Whole ``dag.test()`` runs on the emulators, with the real worker.

(Two runs racing under the real scheduler, and a fan-out SIGKILLed mid-batch, are in tests/e2e.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from helpers import prediction_count, ready_players, request_ids, requested_for, run_dag, run_history, running_worker
from nba_phase5 import config
from nba_phase5.bigquery.bq import insert_rows, run_query
from nba_phase5_local.seeding import seed_day

pytestmark = pytest.mark.integration


def _fresh_day(bq: Any, drain: Any, day: date, players: int = 60) -> list[str]:
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=players, ready_pct=100)
    return ready_players(bq, day)


def _airflow_run(dag: Any, run_id: str, day: date, state: str) -> None:
    """A run of the DAG in Airflow's metadata DB, in ``state`` (another trigger of the same date)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    now = datetime.now(UTC)
    with create_session() as session:
        session.add(
            DagRun(
                dag_id=dag.dag_id,
                run_id=run_id,
                run_type=DagRunType.MANUAL,
                logical_date=None,
                run_after=now,
                start_date=now,
                conf={"game_date": str(day)},
                state=state,
            )
        )


def _set_state(run_id: str, state: str) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.run_id == run_id).update({"state": state})


def _deliveries_for(worker: Any, ids: set[str]) -> Counter[str]:
    """The worker's deliveries of these requests (an earlier test's unacked requests come back too)."""
    return Counter({rid: n for rid, n in worker.stats.deliveries.items() if rid in ids})


def _claim(bq: Any, day: date, run_id: str, claimed_at: datetime) -> None:
    """The claim another run's claim_batch made on ``day``."""
    insert_rows(bq, config.BATCH_CLAIMS_TABLE, [{"game_date": day, "run_id": run_id, "claimed_at": claimed_at}])


def test_a_live_run_of_the_date_holds_its_batch_and_a_dead_one_does_not(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 8, 11)
    ready = _fresh_day(bq, drain, day)
    holder = f"manual__holder_{datetime.now(UTC):%H%M%S%f}"
    _airflow_run(phase5_dag, holder, day, "running")
    _claim(bq, day, holder, datetime.now(UTC) - timedelta(minutes=5))

    state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert (state, tasks["skip_concurrent_run"], tasks["fan_out_requests"]) == ("success", "success", "skipped")
    assert requested_for(day) == []  # only this day's requests: earlier tests' unacked ones come back
    mine = [row for row in run_history(bq, day) if row["run_id"] != holder]
    assert [(r["status"], r["skipped"], r["skip_reason"]) for r in mine] == [("skipped", True, "early_exit")]
    assert mine[0]["summary"]["held_by"] == holder
    assert mine[0]["summary"]["outcome"] == "concurrent_run"

    # The holder died (without finishing anything): its claim no longer blocks the date.
    _set_state(holder, "failed")
    with running_worker(stack.project) as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert (state, tasks["fan_out_requests"]) == ("success", "success"), tasks
    assert _deliveries_for(worker, request_ids(day, ready)) == Counter(request_ids(day, ready))
    assert prediction_count(bq, day) == len(ready)


def test_a_run_that_yielded_holds_nothing_so_a_later_claim_is_not_made_to_yield_to_it(
    stack, bq, phase5_dag, drain
) -> None:
    # Run B yields to a live holder H for real (its own check_batch_status). B is still live (recording
    # itself) when the holder's place passes to a later claim: H died, and this run claims now. Before,
    # this run yielded to B, which had itself yielded: both ended skipped (state success), nothing was
    # published and nobody was told. The same ordering arises when a holder's claim_batch is retried
    # or cleared after B yielded to it (its latest claim is then the later one).
    day = date(2025, 8, 15)
    ready = _fresh_day(bq, drain, day, players=30)
    holder = f"manual__holder_{datetime.now(UTC):%H%M%S%f}"
    _airflow_run(phase5_dag, holder, day, "running")
    _claim(bq, day, holder, datetime.now(UTC) - timedelta(minutes=5))
    state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert (state, tasks["skip_concurrent_run"]) == ("success", "success"), tasks
    [yielded] = [row["run_id"] for row in run_history(bq, day) if row["run_id"] != holder]
    _set_state(yielded, "running")
    _set_state(holder, "failed")
    with running_worker(stack.project):
        state, tasks = run_dag(phase5_dag, day, beside=True, skip_event_wait=True)
    _set_state(yielded, "success")
    assert (state, tasks["skip_concurrent_run"], tasks["fan_out_requests"]) == ("success", "skipped", "success"), tasks
    rows = {row["run_id"]: row for row in run_history(bq, day)}
    [mine] = [row for run, row in rows.items() if run not in (holder, yielded)]
    assert (mine["status"], mine["summary"]["held_by"]) == ("success", None)
    assert prediction_count(bq, day) == len(ready)


def _published(bq: Any, day: date) -> Callable[[], bool]:
    """Whether the fan-out has recorded a request for ``day`` in the ledger."""

    def published() -> bool:
        sql = f"SELECT COUNT(*) AS n FROM `{bq.project}.{config.REQUEST_LEDGER_TABLE}` WHERE game_date = @d"
        return int(run_query(bq, sql, {"d": day})[0]["n"]) > 0

    return published


@pytest.mark.parametrize(
    ("waits", "start_after", "guard"),
    [
        # The worker starts 20 s after the fan-out, past the settle polls (3 × 1 s) of every wait: quiet
        # polls while requests are in flight must not end the rounds (or verify finds nothing: critical).
        ({"straggler_wait_minutes": 0.5}, 20, "settle"),
        # Each wait times out (12 s) before the worker starts (15 s after the fan-out): the round must
        # not republish requests still inside the in-flight window (1 min).
        ({"straggler_wait_minutes": 0.2}, 15, "republish"),
    ],
)
def test_a_worker_slow_to_start_inside_the_in_flight_window_gets_each_request_once(
    stack, bq, phase5_dag, drain, waits, start_after, guard
) -> None:
    day = date(2025, 8, 12) if guard == "settle" else date(2025, 8, 13)
    ready = _fresh_day(bq, drain, day)
    slow = running_worker(stack.project, start_when=_published(bq, day), start_after=start_after)
    with slow as worker:
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, in_flight_minutes=1, **waits)
    assert state == "success", tasks
    assert _deliveries_for(worker, request_ids(day, ready)) == Counter(request_ids(day, ready))  # nobody twice
    [row] = run_history(bq, day)
    assert row["summary"]["straggler_requests"] == [0, 0]
    assert (row["status"], row["summary"]["completion_pct"]) == ("success", 100.0)


def test_force_is_a_new_generation_that_supersedes_every_prediction(stack, bq, phase5_dag, drain) -> None:
    day = date(2025, 8, 14)
    ready = _fresh_day(bq, drain, day, players=40)
    with running_worker(stack.project) as worker:
        assert run_dag(phase5_dag, day, skip_event_wait=True)[0] == "success"
        first = set(worker.stats.deliveries)
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True, force=True)
    assert state == "success", tasks
    # The forced run's requests, from the ledger (the worker may also see an earlier test's leftovers).
    forced = {
        r["request_id"]
        for r in run_query(
            bq,
            f"SELECT request_id FROM `{bq.project}.{config.REQUEST_LEDGER_TABLE}` WHERE game_date = @d AND `force`",
            {"d": day},
        )
    }
    assert len(forced) == len(ready)  # every ready player, under new request ids
    assert forced <= set(worker.stats.deliveries) - first
    rows_by_force = {r["force_reprocess"]: r for r in run_history(bq, day)}
    assert set(rows_by_force) == {False, True}
    # The workers never supersede; the consolidation does, by the platform's key (docs/platform.md §8.2):
    # the same player, system and line (none here) is the same prediction, updated in place by the forced
    # batch; one active row per player, every one written or updated since the forced run began.
    rows = run_query(
        bq,
        f"SELECT player_lookup, is_active, COALESCE(updated_at, created_at) AS written "
        f"FROM `{bq.project}.{config.PREDICTIONS_TABLE}` WHERE game_date = @d",
        {"d": day},
    )
    assert Counter((r["player_lookup"], r["is_active"]) for r in rows) == Counter((p, True) for p in ready)
    assert min(r["written"] for r in rows) >= rows_by_force[True]["started_at"]
    assert (rows_by_force[True]["status"], rows_by_force[True]["records_processed"]) == ("success", len(ready))


def test_the_game_day_job_brings_the_dates_batches_a_dead_run_published(stack, bq) -> None:
    """resolve_game_day's one query (game_day.sql) returns, beside the games, each run's first claim and
    each batch's last accepted request: enough to adopt a dead run's published batch, never a live run's
    or one still in flight, and for a retry to find the run's first claim."""
    from nba_phase5.airflow.batch_claims import adoptable, first_claim
    from nba_phase5.airflow.tasks.batch_start import _with_times
    from nba_phase5.bigquery import sql
    from nba_phase5.core.coverage import plain_row
    from nba_phase5.core.staging import mint_batch_id

    day = date(2025, 8, 19)
    now = datetime.now(UTC).replace(microsecond=0)
    first = now - timedelta(minutes=30)
    claims = {"dead": first, "live": first + timedelta(minutes=1), "recent": first + timedelta(minutes=2)}
    for run, at in claims.items():
        _claim(bq, day, run, at)
    _claim(bq, day, "dead", first + timedelta(minutes=10))  # a retry's claim: the batch is the first one's
    published = {"dead": first + timedelta(minutes=3), "live": first + timedelta(minutes=3), "recent": now}
    entries = [
        {
            "game_date": day,
            "player_lookup": "p1",
            "batch_id": mint_batch_id(day.isoformat(), claims[run]),
            "task_id": "fan_out_requests",
            "request_id": f"r_{run}",
            "message_id": f"m_{run}",
            "force": False,
            "published_at": at,
        }
        for run, at in published.items()
    ]
    insert_rows(bq, config.REQUEST_LEDGER_TABLE, entries)

    [row] = run_query(bq, sql.render("game_day.sql"), {"game_date": day})
    assert set(row) == {"games", "games_around", "batches"}
    # As claim_batch gets them: through resolve_game_day's XCom (times as ISO strings) and back.
    batches = [_with_times(plain_row(dict(batch))) for batch in row["batches"]]
    assert first_claim(batches, "dead") == first.isoformat()
    assert first_claim(batches, "mine") is None
    cutoff = now - timedelta(minutes=5)
    adopted = adoptable(batches, day=day.isoformat(), own_run="mine", cutoff=cutoff, live={"live"}.__contains__)
    assert adopted == [mint_batch_id(day.isoformat(), first)]
