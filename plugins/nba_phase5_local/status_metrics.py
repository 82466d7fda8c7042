"""The plan's Month-1 success metrics over a range of game days (``status --from D1 --to D2``).

From the seed's *Success Metrics*: average Phase 4→5 latency under 3 minutes, completion over 98 %,
the scheduler backup never needed, the retry rounds catching under 5 % stragglers, and no duplicate
processing. Each comes with the evidence it was read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nba_phase5_local.status import DayStatus

LATENCY_GOAL_S = 180.0
COMPLETION_GOAL_PCT = 98.0
STRAGGLER_GOAL_PCT = 5.0


@dataclass
class Metric:
    name: str
    goal: str
    value: str
    met: bool
    evidence: str


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def month_one(days: list[DayStatus]) -> list[Metric]:
    """The five Month-1 metrics over the days that had a batch (off days and empty dates excluded)."""
    ran = [d for d in days if d.status and d.status != "no_games"]
    latencies = [d.phase4_to_first_request_s for d in ran if d.phase4_to_first_request_s is not None]
    latency = _mean(latencies)
    completion = _mean([d.completion_pct for d in ran if d.completion_pct is not None])
    backup = [d.game_date for d in ran if d.triggered_by == "scheduler_backup"]
    ready = sum(d.players_ready or 0 for d in ran if d.straggler_requests)
    first_round = sum(d.straggler_requests[0] for d in ran if d.straggler_requests)
    stragglers = 100.0 * first_round / ready if ready else None
    doubled = [d.game_date for d in days if d.batches > 1]
    return [
        Metric(
            "Average Phase 4→5 latency",
            f"< {LATENCY_GOAL_S / 60:g} min",
            "-" if latency is None else f"{latency:.0f} s",
            latency is not None and latency < LATENCY_GOAL_S,
            f"Phase 4 done → first request, mean of {len(latencies)} runs",
        ),
        Metric(
            "Prediction completion",
            f"> {COMPLETION_GOAL_PCT:g} %",
            "-" if completion is None else f"{completion:.1f} %",
            completion is not None and completion > COMPLETION_GOAL_PCT,
            f"mean over {len(ran)} game days",
        ),
        Metric(
            "Scheduler backup needed",
            "never",
            f"{len(backup)} days",
            bool(ran) and not backup,
            f"on {', '.join(backup)}" if backup else "every batch started from Phase 4's event (or by hand)",
        ),
        Metric(
            "Stragglers caught by the retry rounds",
            f"< {STRAGGLER_GOAL_PCT:g} %",
            "-" if stragglers is None else f"{stragglers:.1f} %",
            stragglers is not None and stragglers < STRAGGLER_GOAL_PCT,
            f"{first_round} republished in round 1 of {ready} ready players",
        ),
        Metric(
            "Duplicate processing",
            "0",
            str(len(doubled)),
            not doubled,
            f"more than one batch on {', '.join(doubled)}" if doubled else "one batch per date",
        ),
    ]
