"""Rules over the rows the waits and the branch read: is the work covered, and why Phase 4 is not ready."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeGuard

from nba_phase5 import config


def covered(row: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a poll result says the work is complete (not merely that the wait ended)."""
    return isinstance(row, dict) and bool(row.get("done"))


def plain_row(row: dict[str, Any]) -> dict[str, Any]:
    """A poll's row as a task returns it: timestamps as ISO strings (an XCom, read by later tasks)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def readiness_words(row: dict[str, Any] | None, day: str, degraded_min_players: int) -> str:
    """Why Phase 4 is not ready, in words (the critical alert's text)."""
    if not row:
        return f"Phase 4 readiness for {day} could not be read"
    if not row.get("phase4_ran"):
        return f"{config.PHASE4_PROCESSOR} has not run for {day}"
    ready, total = int(row.get("players_ready") or 0), int(row.get("players_total") or 0)
    if not total:
        return f"No feature records found for {day} in {config.FEATURE_STORE_TABLE}"
    return (
        f"{ready}/{total} players ready ({100.0 * ready / total:.1f} %) for {day}, "
        f"fewer than the {degraded_min_players} needed to proceed"
    )
