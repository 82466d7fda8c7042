"""One live batch per game date: which run, if not this one, holds the date's batch.

A manual trigger beside the scheduled run, a backfill given the date, or a cleared run all resolve to
the same game date, and ``max_active_runs`` lets them run together. Every run writes its run-history
row (``started_at`` set once, when the row is first written) before it asks; then the candidates are
this DAG's rows for the date, and Airflow says which of their runs are still live (queued or running).
The live run with the earliest ``(started_at, run_id)`` holds the batch; the others record themselves
``skipped`` and publish nothing.

Liveness comes from Airflow, not from a heartbeat: a row left ``running`` by a run that died (failed,
timed out, deleted) no longer blocks the date. Rows whose run id is not a run of this DAG in this
Airflow (another environment) are not candidates.

Because every run orders the same rows the same way, two runs that both read after both rows exist
agree on the holder. ``check_batch_status`` asks first; the fan-out asks again just before it
publishes, which settles the one interleaving the first question can miss (a run that read before
the other's row landed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nba_phase5 import config

log = logging.getLogger(__name__)

LIVE_STATES = ["queued", "running"]
#: The XCom key under which a run that yielded says to whom.
HELD_BY_KEY = "batch_held_by"


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


def _key(row: dict[str, Any]) -> tuple[str, str]:
    started = row["started_at"]
    return (started.isoformat() if isinstance(started, datetime) else str(started), str(row["run_id"]))


def is_live(ti: Any, dag_id: str, run_id: str) -> bool:
    """Whether ``run_id`` is a queued or running run of ``dag_id`` (asked of Airflow, not BigQuery)."""
    return bool(ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=LIVE_STATES))


def holder(rows: list[dict[str, Any]], run_id: str, live: Any) -> Holder | None:
    """The live run ordered before ``run_id`` among ``rows``, or None when this run holds the batch.

    ``rows`` are the date's run-history rows; ``live(run_id)`` tells whether a run is live. A run
    with no row of its own yet yields to any live one.
    """
    for row in sorted(rows, key=_key):
        if row["run_id"] == run_id:
            return None  # every run ordered before this one is dead
        if live(str(row["run_id"])):
            started, other = _key(row)
            return Holder(run_id=other, started_at=started)
    return None


def find_holder(context: Any, day: str) -> Holder | None:
    """The other live run holding ``day``'s batch, if any (see the module docstring)."""
    from nba_phase5.batch import bq_hook

    rows = bq_hook().query_rows(
        (config.include_dir() / "sql" / "batch_runs.sql").read_text(),
        {"game_date": {"type": "DATE", "value": day}, "processor_name": config.PHASE5_PROCESSOR},
    )
    ti = context["ti"]
    dag_id = context["dag"].dag_id
    found = holder(rows, context["run_id"], lambda other: is_live(ti, dag_id, other))
    if found:
        log.warning("%s", found.words(day))
        ti.xcom_push(key=HELD_BY_KEY, value={"run_id": found.run_id, "started_at": found.started_at})
    return found
