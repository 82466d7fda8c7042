"""``status``: how the recent game days went, from run history, predictions and alerts.

Replaces the plan's monitoring ``bq query`` snippets and evaluates its go/no-go checklist over a
date range.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bigquery.bq import run_query
from nba_phase5_local.status_metrics import Metric, month_one

if TYPE_CHECKING:
    from google.cloud import bigquery

OK_STATUSES = ("success", "already_complete")
LATENCY_GOAL = config.GOALS.latency
COMPLETION_GOAL_PCT = config.GOALS.completion_pct
CONSECUTIVE_GOAL = config.GOALS.consecutive_runs

# Phase 5's figures live in the production table's `summary` JSON (it has no column for them).
RUNS_SQL = """
SELECT data_date, run_id, status, triggered_by, started_at, processed_at, TO_JSON_STRING(summary) AS summary
FROM `{table}`
WHERE data_date BETWEEN @first AND @last AND processor_name = @processor
ORDER BY data_date, started_at
"""
PREDICTIONS_SQL = """
SELECT game_date, COUNT(*) AS predictions, COUNT(DISTINCT player_lookup) AS players
FROM `{table}`
WHERE game_date BETWEEN @first AND @last AND is_active
GROUP BY game_date
"""
ALERTS_SQL = """
SELECT game_date, severity, COUNT(*) AS alerts
FROM `{table}`
WHERE game_date BETWEEN @first AND @last
GROUP BY game_date, severity
"""


def decode_summary(summary: object) -> dict[str, Any]:
    """The run's ``summary`` JSON as a dict (empty when missing or unreadable)."""
    if isinstance(summary, dict):
        return summary
    try:
        value = json.loads(summary) if isinstance(summary, str) else None
    except ValueError:
        return {}
    # A JSON column read back through some clients arrives encoded once more.
    if isinstance(value, str):
        return decode_summary(value)
    return value if isinstance(value, dict) else {}


@dataclass
class DayStatus:
    game_date: str
    #: the latest run's outcome word for people (success, partial, failed, already_complete, no_games, ...)
    status: str | None = None
    #: the latest run's ``status`` column (running, success, failed, partial, skipped): what the charts colour by
    run_status: str | None = None
    triggered_by: str | None = None
    #: the outcome of the date's latest scheduled ("overnight") run: what the consecutive-successes check counts
    scheduled_status: str | None = None
    runs: int = 0
    players_ready: int | None = None
    players_total: int | None = None
    requests_published: int | None = None
    last_run_requests: int | None = None
    predictions: int = 0
    players_predicted: int = 0
    completion_pct: float | None = None
    straggler_rounds: int | None = None
    straggler_requests: list[int] = field(default_factory=list)
    phase4_to_event_s: float | None = None
    event_to_first_request_s: float | None = None
    phase4_to_first_request_s: float | None = None
    first_request_to_complete_s: float | None = None
    batches: int = 0
    degraded: bool = False
    alert_channels: list[str] | None = None
    alerts: dict[str, int] = field(default_factory=dict)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class StatusReport:
    first: str
    last: str
    days: list[DayStatus]
    checklist: list[Check]
    metrics: list[Metric] = field(default_factory=list)

    @property
    def go(self) -> bool:
        return all(check.passed for check in self.checklist)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.first,
            "to": self.last,
            "go": self.go,
            "days": [asdict(d) for d in self.days],
            "checklist": [asdict(c) for c in self.checklist],
            "month_one": [asdict(m) for m in self.metrics],
        }


def collect(client: bigquery.Client, first: date, last: date) -> list[DayStatus]:
    params = {"first": first, "last": last}
    project = client.project
    runs = run_query(
        client,
        RUNS_SQL.format(table=f"{project}.{config.RUN_HISTORY_TABLE}"),
        {**params, "processor": config.PHASE5_PROCESSOR},
    )
    for row in runs:
        row.update(decode_summary(row.pop("summary")))
    predictions = {
        r["game_date"]: r
        for r in run_query(client, PREDICTIONS_SQL.format(table=f"{project}.{config.PREDICTIONS_TABLE}"), params)
    }
    alerts: dict[date, dict[str, int]] = {}
    for row in run_query(client, ALERTS_SQL.format(table=f"{project}.{config.ALERTS_TABLE}"), params):
        alerts.setdefault(row["game_date"], {})[row["severity"]] = row["alerts"]
    by_day: dict[date, list[dict[str, Any]]] = {}
    for row in runs:
        by_day.setdefault(row["data_date"], []).append(row)

    days = []
    day = first
    while day <= last:
        status = DayStatus(day.isoformat(), alerts=alerts.get(day, {}))
        day_runs = by_day.get(day, [])
        if day_runs:
            latest = day_runs[-1]
            status.runs = len(day_runs)
            status.batches = sum(1 for r in day_runs if r.get("requests_fan_out"))
            status.status = latest.get("outcome") or latest["status"]
            status.run_status = latest["status"]
            status.triggered_by = latest["triggered_by"]
            scheduled = [r for r in day_runs if str(r["run_id"]).startswith("scheduled__")]
            status.scheduled_status = (scheduled[-1].get("outcome") or scheduled[-1]["status"]) if scheduled else None
            for key in (
                "players_ready",
                "players_total",
                "completion_pct",
                "straggler_rounds",
                "phase4_to_event_s",
                "event_to_first_request_s",
                "phase4_to_first_request_s",
                "first_request_to_complete_s",
                "alert_channels",
            ):
                setattr(status, key, latest.get(key))
            status.degraded = bool(latest.get("degraded"))
            status.requests_published = sum(int(r.get("requests_published") or 0) for r in day_runs)
            status.last_run_requests = latest.get("requests_published")
            status.straggler_requests = list(latest.get("straggler_requests") or [])
        if day in predictions:
            status.predictions = predictions[day]["predictions"]
            status.players_predicted = predictions[day]["players"]
        if status.runs or status.predictions:
            days.append(status)
        day += timedelta(days=1)
    return days


def checklist(days: list[DayStatus]) -> list[Check]:
    """The plan's go/no-go checklist over ``days`` (days without any run are not game days here)."""
    ran = [d for d in days if d.status and d.status != "no_games"]
    overnight = [d for d in ran if d.scheduled_status]  # manual reruns and backfills do not count
    streak = 0
    for d in reversed(overnight):
        if d.scheduled_status not in OK_STATUSES:
            break
        streak += 1
    latencies = [d.phase4_to_first_request_s for d in ran if d.phase4_to_first_request_s is not None]
    low = [d.game_date for d in ran if d.completion_pct is None or d.completion_pct <= COMPLETION_GOAL_PCT]
    critical = sum(d.alerts.get("critical", 0) for d in days)
    doubled = [d.game_date for d in days if d.batches > 1]
    retried = [d.game_date for d in ran if (d.straggler_rounds or 0) > 0]
    worst = max(latencies) if latencies else None
    return [
        Check(
            f"{CONSECUTIVE_GOAL} consecutive successful overnight runs",
            streak >= CONSECUTIVE_GOAL,
            f"{streak} scheduled runs in a row at the end of the range",
        ),
        Check(
            "Phase 4→5 latency < 10 min",
            bool(latencies) and worst is not None and worst < LATENCY_GOAL.total_seconds(),
            f"worst {worst:.0f} s over {len(latencies)} runs" if worst is not None else "no run with both timestamps",
        ),
        Check(
            f"Prediction completion > {COMPLETION_GOAL_PCT:g} %",
            bool(ran) and not low,
            "every run" if ran and not low else f"below on {', '.join(low) or 'no runs'}",
        ),
        Check("Zero critical alerts", critical == 0, f"{critical} critical"),
        Check(
            "No duplicate processing",
            not doubled,
            "one batch per date" if not doubled else f"more than one batch on {', '.join(doubled)}",
        ),
        Check(
            "Retry logic exercised",
            bool(retried),
            f"straggler rounds ran on {', '.join(retried)}" if retried else "no straggler round ran",
        ),
    ]


def report(client: bigquery.Client, first: date, last: date) -> StatusReport:
    days = collect(client, first, last)
    return StatusReport(first.isoformat(), last.isoformat(), days, checklist(days), month_one(days))


def _fmt(value: object, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}{suffix}"
    return f"{value}{suffix}"


def render(status: StatusReport) -> str:
    header = (
        "date",
        "status",
        "triggered_by",
        "ready",
        "predicted",
        "complete",
        "stragglers",
        "ev→1st",
        "1st→done",
        "alerts",
    )
    rows = [header]
    for d in status.days:
        rows.append(
            (
                d.game_date,
                _fmt(d.status),
                _fmt(d.triggered_by),
                f"{_fmt(d.players_ready)}/{_fmt(d.players_total)}",
                str(d.players_predicted),
                _fmt(d.completion_pct, "%"),
                "+".join(map(str, d.straggler_requests)) or "-",
                _fmt(d.event_to_first_request_s, "s"),
                _fmt(d.first_request_to_complete_s, "s"),
                ", ".join(f"{n} {s}" for s, n in sorted(d.alerts.items())) or "none",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    if not status.days:
        lines.append(f"(no runs between {status.first} and {status.last})")
    silent = [d.game_date for d in status.days if d.alert_channels == []]
    if silent:
        lines.append(
            f"Alerts reached only BigQuery on {', '.join(silent)}: no Slack connection and no e-mail "
            "recipients were configured (see docs/operations.md, Alerts and the deadline)."
        )
    lines += ["", f"Go/no-go {status.first} → {status.last}: {'GO' if status.go else 'NO-GO'}"]
    lines += [f"  [{'x' if c.passed else ' '}] {c.name}: {c.detail}" for c in status.checklist]
    lines += ["", "Month-1 metrics:"]
    lines += [f"  [{'x' if m.met else ' '}] {m.name} {m.goal}: {m.value} ({m.evidence})" for m in status.metrics]
    return "\n".join(lines)
