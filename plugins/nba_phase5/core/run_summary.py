"""What a finished run amounts to: its outcome and the figures of its run-history ``summary``.

Read from the run's facts (:class:`~nba_phase5.core.run_facts.RunFacts`); :mod:`nba_phase5.airflow.tasks.run_history`
writes the row.
The summary leads with the coordinator's keys, which the platform's monitoring reads
(docs/platform.md §4), then this DAG's own figures (requests per round, latencies, degradation).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nba_phase5.core.run_facts import RunFacts
from nba_phase5.core.states import BatchState, RunStatus, SkipReason

#: One word per outcome for people: the skip reasons say what happened in the platform's words.
OUTCOME_WORDS = {
    SkipReason.NO_DATA: "no_games",
    SkipReason.ALREADY_PROCESSED: "already_complete",
    SkipReason.EARLY_EXIT: "concurrent_run",
}


def outcome(facts: RunFacts) -> tuple[RunStatus, SkipReason | None, str]:
    """(status, skip_reason, message) of the run from what its tasks returned."""
    day = facts.get("game_day")
    if not day:
        return RunStatus.FAILED, None, "resolve_game_day did not finish (see its log)"
    if day.get("games") == 0 and not day.get("schedule_outage"):
        return RunStatus.SKIPPED, SkipReason.NO_DATA, "no games scheduled"
    if facts.get("batch_status").get("state") == BatchState.FULLY_COMPLETE and not facts.force:
        message = "every ready player already had an active prediction"
        return RunStatus.SKIPPED, SkipReason.ALREADY_PROCESSED, message
    holder = held_by(facts)
    if holder:
        # The platform's skip reasons have no word for it: early_exit, and the summary says why.
        message = f"run {holder} was already running this date's batch: nothing published"
        return RunStatus.SKIPPED, SkipReason.EARLY_EXIT, message
    verify = facts.get("verify")
    if verify.get("incomplete"):
        return RunStatus.FAILED, None, f"only {verify.get('completion_pct')}% of ready players predicted"
    if verify:
        missing = int(verify.get("players_missing") or 0)
        status = RunStatus.SUCCESS if missing == 0 else RunStatus.PARTIAL
        return status, None, f"{missing} players missing after the retry rounds"
    return RunStatus.FAILED, None, "the batch did not reach verification (see failed tasks)"


def held_by(facts: RunFacts) -> str | None:
    """The run this one yielded the date's batch to (at the branch or at the fan-out), if it did."""
    for result in (facts.get("batch_status"), facts.get("fan_out")):
        if result.get("held_by"):
            return str(result["held_by"])
    return None


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def summary(facts: RunFacts, status: RunStatus, skip_reason: SkipReason | None, message: str) -> dict[str, Any]:
    """Phase 5's figures for the run: the JSON ``summary`` column."""
    day, event, fan_out = facts.get("game_day"), facts.get("event"), facts.get("fan_out")
    readiness = facts.get("verdict") or facts.get("readiness")
    status_row = facts.get("batch_status")
    rounds = [round_ or {} for round_ in facts.rounds]
    verify = facts.get("verify")
    payload = event.get("event") or {}
    straggler_requests = [int(r.get("published") or 0) for r in rounds]
    phase4_done = payload.get("timestamp") or readiness.get("phase4_processed_at")
    first_request = fan_out.get("first_published_at")
    consolidation = facts.get("consolidation")
    expected = readiness.get("players_ready", payload.get("players_ready"))
    completed, missing = verify.get("players_complete"), verify.get("players_missing")
    return {
        # The coordinator's keys (docs/platform.md §4), which the platform's monitoring reads.
        "expected": expected,
        "completed": completed,
        "failed": missing,
        "total_predictions": consolidation.get("rows_affected"),
        "completion_percentage": verify.get("completion_pct"),
        "batch_id": facts.batch_id,
        "correlation_id": correlation_id(facts),
        "records_processed": completed,
        "records_failed": missing,
        # This DAG's own figures.
        "outcome": _outcome_word(status, skip_reason),
        "message": message,
        "games": day.get("games"),
        "schedule_outage": bool(day.get("schedule_outage")),
        # The envelope's record_count is the players Phase 4 processed; the plan's shape says players_processed.
        "players_total": readiness.get("players_total", payload.get("record_count", payload.get("players_processed"))),
        "players_ready": readiness.get("players_ready", payload.get("players_ready")),
        "phase4_status": readiness.get("phase4_status"),
        "degraded": bool(readiness.get("degraded")),
        "held_by": held_by(facts),
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
        "alert_channels": list(facts.alert_channels),
    }


def correlation_id(facts: RunFacts) -> str | None:
    """Phase 4's correlation id (the event wait's result says it), else the batch id, as the coordinator fell back."""
    found = facts.get("event").get("correlation_id") or facts.batch_id
    return str(found) if found else None


def _outcome_word(status: RunStatus, skip_reason: SkipReason | None) -> str:
    """A one-word outcome for people: success, partial, failed, already_complete, no_games, running."""
    return OUTCOME_WORDS.get(skip_reason, status) if skip_reason else str(status)
