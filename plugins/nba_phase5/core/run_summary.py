"""What a finished run amounts to: its outcome and the figures of its run-history ``summary``.

Read from what the run's tasks returned (their XComs): :mod:`nba_phase5.airflow.tasks.run_history` writes the row.
The summary leads with the coordinator's keys, which the platform's monitoring reads
(docs/platform.md §4), then this DAG's own figures (requests per round, latencies, degradation).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from nba_phase5.airflow.tasks import batch

log = logging.getLogger(__name__)


def pull(context: Any, task_id: str, key: str = "return_value") -> Any:
    return context["ti"].xcom_pull(task_ids=task_id, key=key)


def outcome(context: Any) -> tuple[str, str | None, str]:
    """(status, skip_reason, message) of the run from what its tasks returned."""
    if pull(context, batch.GAME_DAY, "game_date") is None:
        return "failed", None, "the game date could not be resolved"
    games = pull(context, batch.GAME_DAY, "games")
    if games == 0 and not pull(context, batch.GAME_DAY, "schedule_outage"):
        return "skipped", "no_data", "no games scheduled"
    status_row = pull(context, batch.BATCH_STATUS, "batch_status") or {}
    if status_row.get("state") == "fully_complete" and not status_row.get("force"):
        return "skipped", "already_processed", "every ready player already had an active prediction"
    holder = held_by(context)
    if holder:
        # The platform's skip reasons have no word for it: early_exit, and the summary says why.
        return "skipped", "early_exit", f"run {holder} was already running this date's batch: nothing published"
    verify = pull(context, batch.VERIFY) or {}
    if verify.get("incomplete"):
        return "failed", None, f"only {verify.get('completion_pct')}% of ready players predicted"
    if verify:
        missing = int(verify.get("players_missing") or 0)
        return ("success" if missing == 0 else "partial"), None, f"{missing} players missing after the retry rounds"
    return "failed", None, "the batch did not reach verification (see failed tasks)"


def held_by(context: Any) -> str | None:
    """The run this one yielded the date's batch to (at the branch or at the fan-out), if it did."""
    from nba_phase5.airflow.batch_claims import HELD_BY_KEY

    for task_id in (batch.BATCH_STATUS, batch.FAN_OUT):
        held = pull(context, task_id, HELD_BY_KEY)
        if held:
            return str(held["run_id"])
    return None


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def summary(context: Any, status: str, skip_reason: str | None, message: str) -> dict[str, Any]:
    """Phase 5's figures for the run: the JSON ``summary`` column."""
    event = pull(context, batch.EVENT) or {}
    readiness = pull(context, batch.READINESS_VERDICT) or pull(context, batch.READINESS_WAIT) or {}
    status_row = pull(context, batch.BATCH_STATUS, "batch_status") or {}
    fan_out = pull(context, batch.FAN_OUT) or {}
    rounds = [pull(context, batch.republish_task(n)) or {} for n in range(1, batch.STRAGGLER_ROUNDS + 1)]
    verify = pull(context, batch.VERIFY) or {}
    payload = event.get("event") or {}
    straggler_requests = [int(r.get("published") or 0) for r in rounds]
    phase4_done = payload.get("timestamp") or readiness.get("phase4_processed_at")
    first_request = fan_out.get("first_published_at")
    consolidation = pull(context, batch.CONSOLIDATE) or {}
    expected = readiness.get("players_ready", payload.get("players_ready"))
    completed, missing = verify.get("players_complete"), verify.get("players_missing")
    return {
        # The coordinator's keys (docs/platform.md §4), which the platform's monitoring reads.
        "expected": expected,
        "completed": completed,
        "failed": missing,
        "total_predictions": consolidation.get("rows_affected"),
        "completion_percentage": verify.get("completion_pct"),
        "batch_id": pull(context, batch.GAME_DAY, "batch_id") or fan_out.get("batch_id"),
        "correlation_id": correlation_id(context),
        "records_processed": completed,
        "records_failed": missing,
        # This DAG's own figures.
        "outcome": _outcome_word(status, skip_reason),
        "message": message,
        "games": pull(context, batch.GAME_DAY, "games"),
        "schedule_outage": bool(pull(context, batch.GAME_DAY, "schedule_outage")),
        # The envelope's record_count is the players Phase 4 processed; the plan's shape says players_processed.
        "players_total": readiness.get("players_total", payload.get("record_count", payload.get("players_processed"))),
        "players_ready": readiness.get("players_ready", payload.get("players_ready")),
        "phase4_status": readiness.get("phase4_status"),
        "degraded": bool(readiness.get("degraded")),
        "held_by": held_by(context),
        "requests_fan_out": int(fan_out.get("published") or 0),
        "requests_published": int(fan_out.get("published") or 0) + sum(straggler_requests),
        "straggler_requests": straggler_requests,
        "straggler_rounds": sum(1 for r in rounds if r.get("requested")),
        "players_predicted": verify.get("players_complete", status_row.get("players_complete")),
        "players_missing": verify.get("players_missing"),
        "completion_pct": verify.get("completion_pct", 100.0 if status_row.get("done") else None),
        "events_rejected": event.get("rejected") or [],
        "phase4_other_messages": event.get("others") or {},
        "staging_tables_consolidated": consolidation.get("staging_tables"),
        "phase4_completed_at": phase4_done,
        "event_received_at": event.get("event_received_at"),
        "first_request_at": first_request,
        "batch_completed_at": verify.get("batch_completed_at"),
        "phase4_to_event_s": _seconds(phase4_done, event.get("event_received_at")),
        "event_to_first_request_s": _seconds(event.get("event_received_at"), first_request),
        "phase4_to_first_request_s": _seconds(phase4_done, first_request),
        "first_request_to_complete_s": _seconds(first_request, verify.get("batch_completed_at")),
        "alert_channels": _alert_channels(),
    }


def correlation_id(context: Any) -> str | None:
    """Phase 4's correlation id (the event wait's result says it), else the batch id, as the coordinator fell back."""
    found = (pull(context, batch.EVENT) or {}).get("correlation_id") or pull(context, batch.GAME_DAY, "batch_id")
    return str(found) if found else None


def _outcome_word(status: str, skip_reason: str | None) -> str:
    """A one-word outcome for people: success, partial, failed, already_complete, no_games, running."""
    words = {"no_data": "no_games", "already_processed": "already_complete", "early_exit": "concurrent_run"}
    return words.get(skip_reason or "", status)


def _alert_channels() -> list[str]:
    try:
        from nba_phase5.airflow.alert_channels import configured_channels

        return list(configured_channels())
    except Exception:
        log.exception("Could not tell which alert channels are configured")
        return []
