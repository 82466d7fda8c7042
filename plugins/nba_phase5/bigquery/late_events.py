"""Phase 4 events that came after their date's batch had finished: reported, not acted on.

Phase 4 can run again for a date whose predictions are done (more players ready after a late data
fix). The trigger records every ready feature-store event in the inbox for its own date's run, but a
finished date has no run waiting, so the event would be stored and never heard of. The run whose trigger
pulled it says so instead, with a warning that names the date: a run triggered for that date requests
only the players still missing, so it tops the batch up (docs/architecture.md, "Late Phase 4 messages").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nba_phase5 import config
from nba_phase5.bigquery import sql
from nba_phase5.core.states import FINISHED_STATUSES


def finished_at(hook: Any, dates: list[str]) -> dict[str, datetime]:
    """When each date's batch last finished (run history), for the dates that have one."""
    if not dates:
        return {}
    rows = hook.query_rows(
        sql.render("finished_batches.sql"),
        {
            "dates": {"type": "ARRAY<DATE>", "value": sorted(set(dates))},
            "processor_name": config.PHASE5_PROCESSOR,
            "finished_statuses": {"type": "ARRAY<STRING>", "value": [str(status) for status in FINISHED_STATUSES]},
        },
    )
    return {str(row["data_date"]): row["finished_at"] for row in rows if row["finished_at"] is not None}


def came_late(late: list[dict[str, Any]], finished: dict[str, datetime]) -> list[dict[str, Any]]:
    """The noted events (``note_late``'s) published after their date's batch finished."""
    found = []
    for event in late:
        done = finished.get(event["game_date"])
        if done is not None and event.get("at") and datetime.fromisoformat(event["at"]) > done:
            found.append({**event, "batch_finished_at": done.isoformat()})
    return found


def words(event: dict[str, Any]) -> str:
    """The warning for one late event."""
    players = f" ({event['players']} players)" if event.get("players") is not None else ""
    return (
        f"Phase 4 published the feature store again for {event['game_date']} at {event['at']}{players}, after "
        f"that date's batch finished at {event['batch_finished_at']}: players it made ready since were not "
        f"requested. Trigger a run for {event['game_date']} (it requests only the players still missing)."
    )
