"""The hand-off to Phase 6: the platform's completion envelope, announced once per batch."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from helpers import drain_subscription
from nba_phase5 import config, handoff

NOW = datetime(2025, 11, 28, 15, 4, 5, tzinfo=UTC)


def _row(status: str = "success", day: str = "2025-11-28", batch: str = "batch-1") -> dict[str, Any]:
    figures = {
        "batch_id": batch,
        "players_ready": 418,
        "players_total": 450,
        "players_predicted": 415,
        "players_missing": 3,
        "completion_pct": 99.3,
        "degraded": False,
    }
    return {
        "run_id": "scheduled__2025-11-28T05:00:00+00:00",
        "data_date": day,
        "status": status,
        "summary": json.dumps(figures),
        "trigger_message_data": json.dumps({"run_id": "phase4-run-7", "players_ready": 418}),
        "trigger_message_id": "17",
        "trigger_source": "pubsub",
        "triggered_by": "pubsub",
        "duration_seconds": 812.5,
    }


def test_the_message_is_the_platforms_completion_envelope() -> None:
    message = handoff.completion_message(_row("partial"), now=NOW)
    # the fields every platform completion message carries (PLATFORM.md section 7) ...
    assert {"processor_name", "phase", "game_date", "status", "timestamp", "execution_id", "correlation_id"} <= set(
        message
    )
    assert (message["processor_name"], message["phase"]) == (config.PHASE5_PROCESSOR, "phase_5_predictions")
    assert (message["game_date"], message["status"], message["timestamp"]) == (
        "2025-11-28",
        "partial",
        "2025-11-28T15:04:05+00:00",
    )
    assert (message["execution_id"], message["correlation_id"]) == ("batch-1", "phase4-run-7")
    assert (message["record_count"], message["records_failed"]) == (415, 3)
    assert (message["output_dataset"], message["output_table"]) == ("nba_predictions", "player_prop_predictions")
    # ... and what the platform's Phase 5→6 orchestrator reads from metadata
    metadata = message["metadata"]
    assert (metadata["batch_id"], metadata["completion_pct"]) == ("batch-1", 99.3)
    assert metadata["completed_predictions"] == 415
    assert metadata["expected_predictions"] == 418


def test_without_phase4s_run_id_the_batch_is_its_own_correlation_id() -> None:
    row = {**_row(), "trigger_message_data": None}
    assert handoff.completion_message(row, now=NOW)["correlation_id"] == "batch-1"


@pytest.mark.parametrize("status", ["failed", "skipped", "running"])
def test_a_run_that_did_not_finish_a_batch_hands_nothing_off(status: str) -> None:
    with pytest.raises(AirflowSkipException, match=f"the run ended {status}"):
        handoff.announce({"run_id": "r"}, _row(status))


def test_a_backfilled_batch_starts_no_phase6_export() -> None:
    with pytest.raises(AirflowSkipException, match="backfills"):
        handoff.announce({"run_id": "r"}, {**_row(), "backfill_mode": True})


def _context(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "outlet_events": defaultdict(lambda: SimpleNamespace(extra={}))}


@pytest.mark.integration
def test_one_message_per_batch_however_often_the_task_runs(stack) -> None:  # type: ignore[no-untyped-def]
    drain_subscription(config.PHASE5_COMPLETE_LOCAL_SUBSCRIPTION)
    day = date(2025, 8, 21).isoformat()
    first = _context("manual__1")
    announced = handoff.announce(first, _row(day=day, batch=f"{day}-batch-a"))
    assert announced["message_id"]
    assert first["outlet_events"][handoff.predictions_asset()].extra["batch_id"] == f"{day}-batch-a"
    for again in ("manual__1", "manual__2"):  # the task cleared, or another run holding the same batch id
        with pytest.raises(AirflowSkipException, match="already announced"):
            handoff.announce(_context(again), _row(day=day, batch=f"{day}-batch-a"))
    handoff.announce(_context("manual__3"), _row(day=day, batch=f"{day}-batch-b"))  # a forced new batch: announced
    messages = [json.loads(m.data) for m in drain_subscription(config.PHASE5_COMPLETE_LOCAL_SUBSCRIPTION)]
    assert [(m["game_date"], m["execution_id"]) for m in messages] == [(day, f"{day}-batch-a"), (day, f"{day}-batch-b")]
