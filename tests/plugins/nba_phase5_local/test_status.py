"""`status`: one row per date and the plan's go/no-go checklist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from nba_phase5 import config
from nba_phase5.bigquery.bq import insert_rows
from nba_phase5_local.status import DayStatus, checklist

PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")


def day(d: str, **kwargs) -> DayStatus:
    base = {
        "status": "success",
        "scheduled_status": "success",
        "completion_pct": 100.0,
        "phase4_to_first_request_s": 90.0,
        "batches": 1,
        "straggler_rounds": 0,
    }
    return DayStatus(d, **{**base, **kwargs})


def by_name(days: list[DayStatus]) -> dict[str, bool]:
    return {check.name: check.passed for check in checklist(days)}


def test_three_good_days_with_a_retry_is_a_go() -> None:
    days = [day("2025-12-01"), day("2025-12-02", straggler_rounds=1), day("2025-12-03")]
    assert all(by_name(days).values())


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"status": "partial", "scheduled_status": "partial"}, "3 consecutive successful overnight runs"),
        ({"phase4_to_first_request_s": 601.0}, "Phase 4→5 latency < 10 min"),
        ({"completion_pct": 95.0}, "Prediction completion > 95 %"),
        ({"alerts": {"critical": 1}}, "Zero critical alerts"),
        ({"batches": 2}, "No duplicate processing"),
    ],
)
def test_each_check_fails_on_its_own_cause(change, failing) -> None:
    days = [day("2025-12-01", straggler_rounds=1), day("2025-12-02"), day("2025-12-03", **change)]
    results = by_name(days)
    assert results[failing] is False
    assert sum(not ok for ok in results.values()) == 1


def test_off_days_do_not_break_the_streak_and_no_retry_is_reported() -> None:
    days = [day("2025-12-01"), day("2025-12-02", status="no_games"), day("2025-12-03"), day("2025-12-04")]
    results = by_name(days)
    assert results["3 consecutive successful overnight runs"] is True
    assert results["Retry logic exercised"] is False


def test_only_overnight_runs_count_towards_the_streak() -> None:
    # A failed scheduled run fixed by a manual rerun the same day: the day ends success, the streak breaks.
    fixed_by_hand = day("2025-12-02", status="success", scheduled_status="failed")
    days = [day("2025-12-01"), fixed_by_hand, day("2025-12-03"), day("2025-12-04")]
    assert by_name(days)["3 consecutive successful overnight runs"] is False
    # A date with only a manual run (no scheduled one) neither counts nor breaks it.
    days = [day("2025-12-01"), day("2025-12-02", scheduled_status=None), day("2025-12-03"), day("2025-12-04")]
    assert by_name(days)["3 consecutive successful overnight runs"] is True


def _metrics(days: list[DayStatus]) -> dict[str, tuple[str, bool]]:
    from nba_phase5_local.status_metrics import month_one

    return {m.name: (m.value, m.met) for m in month_one(days)}


def test_month_one_metrics_meet_their_goals_on_good_days() -> None:
    days = [
        day(f"2025-12-0{n}", players_ready=400, straggler_requests=[8, 0], phase4_to_first_request_s=120.0)
        for n in (1, 2, 3)
    ]
    metrics = _metrics(days)
    assert metrics == {
        "Average Phase 4→5 latency": ("120 s", True),
        "Prediction completion": ("100.0 %", True),
        "Scheduler backup needed": ("0 days", True),
        "Stragglers caught by the retry rounds": ("2.0 %", True),
        "Duplicate processing": ("0", True),
    }


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"phase4_to_first_request_s": 400.0}, "Average Phase 4→5 latency"),
        ({"completion_pct": 93.0}, "Prediction completion"),
        ({"triggered_by": "scheduler_backup"}, "Scheduler backup needed"),
        ({"straggler_requests": [80, 3]}, "Stragglers caught by the retry rounds"),
        ({"batches": 2}, "Duplicate processing"),
    ],
)
def test_each_month_one_metric_misses_on_its_own_cause(change, failing) -> None:
    good = {"players_ready": 400, "straggler_requests": [4, 0], "triggered_by": "pubsub"}
    days = [day("2025-12-01", **good), day("2025-12-02", **good), day("2025-12-03", **{**good, **change})]
    metrics = _metrics(days)
    assert metrics[failing][1] is False, metrics
    assert sum(not met for _, met in metrics.values()) == 1, metrics


@pytest.mark.integration
def test_status_cli_prints_one_row_per_date_and_the_checklist(stack, bq) -> None:
    first = date(2025, 8, 1)
    now = datetime.now(UTC)
    runs = []
    outcomes = [("success", "success", [3, 0]), ("skipped", "already_complete", [0, 0]), ("partial", "partial", [9, 4])]
    for offset, (status, outcome, rounds) in enumerate(outcomes):
        d = first + timedelta(days=offset)
        # The production row: Phase 5's figures in `summary` JSON.
        figures = {
            "outcome": outcome,
            "players_ready": 418,
            "players_total": 450,
            "requests_fan_out": 418 if outcome != "already_complete" else 0,
            "requests_published": 418 + sum(rounds),
            "straggler_rounds": sum(1 for r in rounds if r),
            "straggler_requests": rounds,
            "completion_pct": 100.0 if status != "partial" else 93.0,
            "phase4_to_event_s": 2.0,
            "event_to_first_request_s": 1.0,
            "phase4_to_first_request_s": 3.0,
            "first_request_to_complete_s": 37.0,
            "alert_channels": [] if offset == 2 else ["slack"],
        }
        runs.append(
            {
                "data_date": d,
                "processor_name": config.PHASE5_PROCESSOR,
                "run_id": f"r{offset}",
                "status": status,
                "triggered_by": "pubsub",
                "started_at": now,
                "processed_at": now + timedelta(seconds=40),
                "summary": figures,
            }
        )
    insert_rows(bq, config.RUN_HISTORY_TABLE, runs)
    insert_rows(
        bq,
        config.ALERTS_TABLE,
        [
            {
                "alert_id": "a1",
                "created_at": now,
                "severity": "warning",
                "game_date": first + timedelta(days=2),
                "message": "29 missing",
            }
        ],
    )
    env = {**os.environ, "PYTHONPATH": PLUGINS}
    args = [sys.executable, "-m", "nba_phase5_local", "status", "--from", "2025-08-01", "--to", "2025-08-03"]
    text = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line for line in text.splitlines() if line.startswith("2025-08-0")]
    assert [r.split()[:2] for r in rows] == [
        ["2025-08-01", "success"],
        ["2025-08-02", "already_complete"],
        ["2025-08-03", "partial"],
    ]
    assert "1 warning" in rows[2]
    assert "9+4" in rows[2]
    assert "NO-GO" in text
    assert "[ ] 3 consecutive successful overnight runs: 0 scheduled runs in a row" in text
    assert "[x] Retry logic exercised" in text
    assert "Alerts reached only BigQuery on 2025-08-03" in text

    report = json.loads(subprocess.run([*args, "--json"], env=env, capture_output=True, text=True, check=True).stdout)
    assert [d["game_date"] for d in report["days"]] == ["2025-08-01", "2025-08-02", "2025-08-03"]
    assert report["go"] is False
    assert report["days"][0]["event_to_first_request_s"] == 1.0
    # The charts colour by the row's status column; the outcome word says which kind of skip it was.
    assert [(d["status"], d["run_status"]) for d in report["days"]] == [
        ("success", "success"),
        ("already_complete", "skipped"),
        ("partial", "partial"),
    ]


def test_status_cli_refuses_a_bad_range() -> None:
    env = {**os.environ, "PYTHONPATH": PLUGINS, "GCP_PROJECT": "p"}
    done = subprocess.run(
        [sys.executable, "-m", "nba_phase5_local", "status", "--from", "2025-08-03", "--to", "2025-08-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--from is after --to" in done.stderr
