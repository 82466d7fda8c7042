"""One live batch per game date: which run, if not this one, holds the date's batch.

Every try of ``claim_batch`` appends a claim ``(game_date, run_id, claimed_at)`` to
``nba_reference.phase5_batch_claims``; of the runs that claimed the date and that Airflow says are still live,
the one whose latest claim is earliest (ties: run id) holds the batch, and the others record themselves
``skipped`` and publish nothing. ``check_batch_status`` asks, and the fan-out asks again before it publishes.
The three rules that keep a day from being skipped in silence, and why: docs/architecture.md, *Why each module
is built as it is*.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nba_phase5 import config
from nba_phase5.airflow.hooks import bigquery_hook
from nba_phase5.core.staging import mint_batch_id

log = logging.getLogger(__name__)

LIVE_STATES = ["queued", "running"]
#: The XCom key under which a run that yielded says to whom.
HELD_BY_KEY = "batch_held_by"
#: The XCom key of a run's latest claim: ``{"claimed_at", "clear_number"}`` (the run's clears at the time).
CLAIM_KEY = "batch_claim"
#: The tasks that may yield the batch (and push ``HELD_BY_KEY``), and those that may claim it.
YIELDING_TASKS = (config.TASKS.batch_status, config.TASKS.fan_out)
CLAIMING_TASKS = (config.TASKS.claim, *YIELDING_TASKS)


@dataclass(frozen=True)
class Holder:
    """The run holding the date's batch."""

    run_id: str
    started_at: str

    def words(self, day: str) -> str:
        return (
            f"run {self.run_id} (started {self.started_at}) is already running the batch for {day}: "
            "this run publishes nothing"
        )


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return (_iso(row["started_at"]), str(row["run_id"]))


def first_claim(rows: list[dict[str, Any]], run_id: str) -> str | None:
    """When ``run_id`` first claimed the date (ISO), or None if it has no claim among ``rows``
    (``_date_batches.sql``'s rows, which ``game_day.sql`` returns as ``batches``)."""
    mine = next((row for row in rows if row["kind"] == "claim" and row["name"] == run_id), None)
    return _iso(mine["happened_at"]) if mine else None


def is_live(ti: Any, dag_id: str, run_id: str) -> bool:
    """Whether ``run_id`` is a queued or running run of ``dag_id`` (asked of Airflow, not BigQuery)."""
    return bool(ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=LIVE_STATES))


def holder(rows: list[dict[str, Any]], run_id: str, live: Any, yielded: Any = lambda run: None) -> Holder | None:
    """The live run ordered before ``run_id`` among ``rows``, or None when this run holds the batch.

    ``rows`` are the date's claims, one per run (``run_id``, ``started_at`` = its latest claim);
    ``live(run_id)`` tells whether a run is live, ``yielded(run_id)`` to whom it yielded (None: it has
    not), and a run that yielded is passed over. A run with no claim of its own yields to any live one.
    """
    for row in sorted(rows, key=_key):
        other = str(row["run_id"])
        if other == run_id:
            return None  # every run ordered before this one is dead or has yielded
        if live(other) and not yielded(other):
            return Holder(run_id=other, started_at=_key(row)[0])
    return None


def yielded_to(ti: Any, dag_id: str, run_id: str) -> str | None:
    """The run to which ``run_id`` yielded its date's batch (its ``HELD_BY_KEY`` XCom), or None."""
    for task_id in YIELDING_TASKS:
        held = ti.xcom_pull(task_ids=task_id, dag_id=dag_id, run_id=run_id, key=HELD_BY_KEY)
        if held:
            return str(held["run_id"])
    return None


def clear_number(context: Any) -> int:
    """How many times this run has been cleared (Airflow counts it on the run)."""
    return int(getattr(context.get("dag_run"), "clear_number", 0) or 0)


def claim_for_run(context: Any, client: Any, day: str, claimed_at: str) -> None:
    """Append this run's claim on ``day`` and remember it with the run's clear count (``CLAIM_KEY``)."""
    claim(client, day, context["run_id"], claimed_at)
    context["ti"].xcom_push(key=CLAIM_KEY, value={"claimed_at": claimed_at, "clear_number": clear_number(context)})


def claim_again_if_cleared(context: Any, day: str) -> None:
    """Claim again when the run was cleared after its latest claim (say only its fan-out was cleared):
    its place was earned in an earlier life, and a live holder may have taken the date since."""
    pulled = context["ti"].xcom_pull(task_ids=list(CLAIMING_TASKS), key=CLAIM_KEY) or []
    claimed = max((int(c.get("clear_number", 0)) for c in pulled if c), default=-1)
    if claimed >= clear_number(context):
        return
    hook = bigquery_hook()
    log.info("Run %s was cleared since its latest claim on %s: claiming again", context["run_id"], day)
    claim_for_run(context, hook.get_client(project_id=hook.project_id), day, datetime.now(UTC).isoformat())


def claim(client: Any, day: str, run_id: str, claimed_at: str) -> None:
    """Append this try's claim on ``day``'s batch (a streaming insert: visible to queries at once)."""
    table = f"{client.project}.{config.BATCH_CLAIMS_TABLE}"
    errors = client.insert_rows_json(table, [{"game_date": day, "run_id": run_id, "claimed_at": claimed_at}])
    if errors:
        raise RuntimeError(f"could not record run {run_id}'s claim on {day} in {table}: {errors[:3]}")


def holder_among(context: Any, day: str, rows: list[dict[str, Any]]) -> Holder | None:
    """The other live run holding ``day``'s batch among ``rows`` (``batch_claims.sql``'s, read after this
    run's latest claim landed), if any; a run that yields says to whom (``HELD_BY_KEY``)."""
    ti = context["ti"]
    dag_id = context["dag"].dag_id
    found = holder(
        rows,
        context["run_id"],
        live=lambda other: is_live(ti, dag_id, other),
        yielded=lambda other: yielded_to(ti, dag_id, other),
    )
    if found:
        log.warning("%s", found.words(day))
        ti.xcom_push(key=HELD_BY_KEY, value={"run_id": found.run_id, "started_at": found.started_at})
    return found


def orphaned_by(context: Any, held_by: str, *, max_hops: int = 5) -> str | None:
    """Why nobody is left running the date's batch that this run yielded to ``held_by``, or None.

    The chain of yields is followed from ``held_by``: it ends well at a run that is live or succeeded,
    and badly at a run that ended otherwise (failed, or skipped by yielding in turn) or in a cycle.
    """
    ti, dag_id = context["ti"], context["dag"].dag_id
    chain = [context["run_id"], held_by]
    for _ in range(max_hops):
        current = chain[-1]
        nxt = yielded_to(ti, dag_id, current)
        # A run that did not yield holds the date while live, and finished the batch if it succeeded.
        if nxt is None and ti.get_dr_count(dag_id=dag_id, run_ids=[current], states=[*LIVE_STATES, "success"]):
            return None
        if nxt is None:
            return f"run {current}, to which this run yielded, ended without finishing the batch"
        if nxt in chain:
            return "the runs yielded to each other: " + " → ".join([*chain[1:], nxt])
        chain.append(nxt)
    return None


def adoptable(rows: list[dict[str, Any]], *, day: str, own_run: str, cutoff: datetime, live: Any) -> list[str]:
    """The batches among ``rows`` (``_date_batches.sql``) that ``own_run`` adopts: another run's batch of
    ``day`` that it published (the ledger), whose last request was accepted before ``cutoff`` and whose
    run ``live(run_id)`` says is over. The run's batch id is minted from its first claim, as it minted it.
    """
    published = {row["name"]: row["happened_at"] for row in rows if row["kind"] == "batch"}
    adopted = []
    for row in sorted((r for r in rows if r["kind"] == "claim"), key=lambda r: r["happened_at"]):
        run_id = str(row["name"])
        batch = mint_batch_id(day, row["happened_at"])
        last = published.get(batch)
        if run_id == own_run or last is None or last >= cutoff or live(run_id):
            continue
        adopted.append(batch)
    return adopted


def adoptable_batches(
    context: Any, day: str, rows: list[dict[str, Any]], *, in_flight_seconds: float, now: datetime
) -> list[str]:
    """The date's earlier batches whose run is over and whose requests are no longer in flight.

    Their staged rows were never consolidated (the run died first): the running batch adopts them
    (:mod:`nba_phase5.bigquery.consolidation`). A batch is this package's when a run of this DAG claimed the date
    (its id is minted from the run's first claim) and published it (the ledger); it is over when Airflow
    says its run is not live and its last accepted request is older than the in-flight window, after
    which its players would be requested again anyway. ``rows`` are ``_date_batches.sql``'s (read by
    ``game_day.sql``, no query of its own); Airflow is asked only about the batches that qualify otherwise.

    :param context: the Airflow context of ``claim_batch``.
    :param day: the game date (ISO).
    :param rows: the date's claims and published batches (``_date_batches.sql``).
    :param in_flight_seconds: the in-flight window: a batch whose last request is younger is not adopted.
    :param now: the time the window ends at.
    """
    ti, dag_id = context["ti"], context["dag"].dag_id
    adopted = adoptable(
        rows,
        day=day,
        own_run=context["run_id"],
        cutoff=now - timedelta(seconds=in_flight_seconds),
        live=lambda run_id: is_live(ti, dag_id, run_id),
    )
    if adopted:
        log.info("Adopting the staged rows of %d earlier batch(es) of %s: %s", len(adopted), day, adopted)
    return adopted
