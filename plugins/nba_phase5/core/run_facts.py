"""The run's facts: what its tasks returned, gathered into one typed record for its run-history row.

``record_batch_run`` receives each task's result as an XComArg (the DAG file wires them) and builds a
:class:`RunFacts`; every rule about what the run amounts to (:mod:`nba_phase5.core.run_summary`) reads
this record and nothing else. A task that did not run (skipped, or never reached) gives ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nba_phase5.core.states import TriggeredBy

Result = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class RunFacts:
    """One run's facts, each the result of the task named (``None``: it did not run or returned nothing).

    :param run_id: the Airflow run id.
    :param triggered_by: what started a run that never reached the event wait (its run type).
    :param force: the ``force`` param, parsed once.
    :param game_day: ``resolve_game_day``: ``game_date``, ``started_at``, ``games``, ``schedule_outage``.
    :param claim: ``claim_batch``: ``batch_id``, ``batch_started_at``, ``staged_batches``.
    :param batch_status: ``check_batch_status``'s figures: the batch's state, its coverage, the holder.
    :param event: ``wait_for_phase4_event``: the event (or the backup path) and its timing.
    :param readiness: the readiness wait's last row.
    :param verdict: ``proceed_with_ready_players``: the row it let through (``None``: the gate stopped it).
    :param fan_out: ``fan_out_requests``' summary, or ``{"held_by": …}`` when it yielded.
    :param rounds: each straggler round's republish summary, in order.
    :param consolidation: ``consolidate_predictions``' result.
    :param verify: ``verify_completion``'s figures (kept when it failed the run).
    :param alert_channels: the alert channels configured where the run ran.
    :param run_date: the game date by the run's own clock and params: the row's date when
        ``resolve_game_day`` did not finish (so the run is still recorded, ``failed``).
    """

    run_id: str
    triggered_by: TriggeredBy
    force: bool
    game_day: Result | None = None
    claim: Result | None = None
    batch_status: Result | None = None
    event: Result | None = None
    readiness: Result | None = None
    verdict: Result | None = None
    fan_out: Result | None = None
    rounds: Sequence[Result | None] = ()
    consolidation: Result | None = None
    verify: Result | None = None
    alert_channels: Sequence[str] = field(default_factory=tuple)
    run_date: str | None = None

    def get(self, name: str) -> Result:
        """A task's result, ``{}`` when it has none (the summary reads missing figures as absent)."""
        value = getattr(self, name)
        return value if isinstance(value, Mapping) else {}

    @property
    def game_date(self) -> str | None:
        """The resolved game date, else the run's own (``run_date``)."""
        value = self.get("game_day").get("game_date") or self.run_date
        return str(value) if value else None

    @property
    def batch_id(self) -> str | None:
        value = self.get("claim").get("batch_id") or self.get("fan_out").get("batch_id")
        return str(value) if value else None
