"""The summary `make run` prints at the end of a day: the date's figures as BigQuery has them.

Read from BigQuery as `nba-phase5 status` reads it (nba_phase5_local.status.collect), never from the run's log
text; only the worker's deliberate drops come from the worker's own log.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path


def dropped_by_worker(log: Path, day: date) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    # The subscription may also hold other dates' requests; count this day's only.
    ids = {
        line.split("Dropped request ")[1].split()[0]
        for line in lines
        if "Dropped request " in line and f" on {day.isoformat()} " in line
    }
    return f"{len(ids)} requests (acked without a prediction, to make stragglers)"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def summary(day: date, project: str, worker_log: Path) -> tuple[bool, str]:
    from nba_phase5.bigquery.clients import bigquery_client
    from nba_phase5_local.status import collect

    days = collect(bigquery_client(project), day, day)
    if not days or days[0].status is None:
        return False, "No run history for this date: the DAG run did not record anything."
    status = days[0]
    rounds = status.straggler_requests
    rows = [
        ("game date", status.game_date),
        ("status", status.status),
        ("triggered_by", status.triggered_by),
        ("players total / ready", f"{status.players_total} / {status.players_ready}"),
        ("requests published", f"{status.last_run_requests} this run ({status.requests_published} for the date)"),
        ("predictions written", f"{status.predictions} ({status.players_predicted} players)"),
        ("dropped by the worker", dropped_by_worker(worker_log, day)),
        ("stragglers per round", " + ".join(f"round {i}: {n}" for i, n in enumerate(rounds, 1)) or "-"),
        ("completion", f"{status.completion_pct:.1f} %" if status.completion_pct is not None else "-"),
        ("Phase 4 complete → event received", seconds(status.phase4_to_event_s)),
        ("Phase 4 event → first request", seconds(status.event_to_first_request_s)),
        ("first request → batch complete", seconds(status.first_request_to_complete_s)),
        ("alerts", ", ".join(f"{n} {s}" for s, n in status.alerts.items()) or "none"),
        ("runs recorded for the date", status.runs),
    ]
    width = max(len(k) for k, _ in rows)
    text = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
    complete = status.status == "already_complete" or (
        status.status == "success" and (status.completion_pct or 0) >= 100.0
    )
    if status.status == "already_complete":
        text += "\n  (already complete: no new requests were published)"
    return complete, text
