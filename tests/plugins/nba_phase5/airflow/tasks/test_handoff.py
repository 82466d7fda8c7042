"""The hand-off to Phase 6: the platform's completion envelope, announced once per batch."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from helpers import drain_subscription
from nba_phase5 import config
from nba_phase5.airflow.tasks import handoff
from nba_phase5.core.alert_kinds import AlertKind

NOW = datetime(2025, 11, 28, 15, 4, 5, tzinfo=UTC)


def _row(
    status: str = "success", day: str = "2025-11-28", batch: str = "batch_2025-11-28_1764300000", **figures: Any
) -> dict[str, Any]:
    """A run-history row as record_batch_run returns it: the summary holds the coordinator's keys."""
    summary = {
        "expected": 418,
        "completed": 415,
        "failed": 3,
        "total_predictions": 415,
        "completion_percentage": 99.3,
        "batch_id": batch,
        "correlation_id": "4f2a9c1e",  # Phase 4's, from its completion message
        "degraded": False,
        **figures,
    }
    return {
        "run_id": "scheduled__2025-11-28T05:00:00+00:00",
        "data_date": day,
        "status": status,
        "summary": json.dumps(summary),
        "trigger_message_id": "17",
        "trigger_source": "pubsub",
        "triggered_by": "pubsub",
        "duration_seconds": 812.5,
    }


def test_the_asset_is_the_predictions_table_in_the_google_providers_scheme() -> None:
    from airflow.sdk import Asset

    asset = handoff.predictions_asset(project="test-nba-props")
    table = config.PREDICTIONS_TABLE.replace(".", "/")
    assert (asset.name, asset.uri) == ("nba_phase5_predictions", f"bigquery://test-nba-props/{table}")
    assert handoff.predictions_asset_alias().name == asset.name  # Phase 6 schedules on the alias's name
    # Built through the provider's own check of the scheme (airflow.providers.google.assets.bigquery), which
    # refuses a URI that does not name a project, a dataset and a table.
    with pytest.raises(ValueError, match="dataset and table"):
        Asset(name="x", uri="bigquery://test-nba-props/nba_predictions")


def test_the_message_is_the_coordinators_completion_envelope() -> None:
    """The coordinator's message (coordinator.py 3938-3964 through unified_pubsub_publisher.py 162-223),
    with an honest status where the coordinator always said success (docs/platform.md §9.1)."""
    message = handoff.completion_message(_row("partial"), now=NOW)
    assert {"processor_name", "phase", "game_date", "status", "timestamp", "execution_id", "correlation_id"} <= set(
        message
    )
    assert (message["processor_name"], message["phase"]) == ("PredictionCoordinator", "phase_5_predictions")
    assert (message["game_date"], message["status"], message["timestamp"]) == (
        "2025-11-28",
        "partial",
        "2025-11-28T15:04:05+00:00",
    )
    # execution_id is the batch id; correlation_id Phase 4's (the coordinator passed /start's on).
    assert (message["execution_id"], message["correlation_id"]) == ("batch_2025-11-28_1764300000", "4f2a9c1e")
    assert (message["record_count"], message["records_failed"]) == (415, 3)
    assert (message["output_dataset"], message["output_table"]) == ("nba_predictions", "player_prop_predictions")
    assert message["trigger_source"] == "automatic"
    # What the platform's Phase 5→6 function reads from metadata (phase5_to_phase6/main.py 177, 203-209, 248-322).
    metadata = message["metadata"]
    assert (metadata["batch_id"], metadata["completion_pct"]) == ("batch_2025-11-28_1764300000", 99.3)
    assert (metadata["completed_predictions"], metadata["completed_players"], metadata["expected_players"]) == (
        415,
        415,
        418,
    )
    assert metadata["total_predictions"] == 415


def test_without_phase4s_correlation_id_the_batch_is_its_own() -> None:
    row = _row(correlation_id=None)
    assert handoff.completion_message(row, now=NOW)["correlation_id"] == "batch_2025-11-28_1764300000"


@pytest.mark.parametrize(
    ("status", "figures", "why"),
    [
        # phase5_to_phase6/main.py 212-217: a partial batch under 80 % is not exported.
        ("partial", {"completion_percentage": 79.9, "completed": 300}, "partial at 79.9 %"),
        # main.py 220-227: fewer than 10 prediction rows for the date (all systems, active or not).
        ("success", {"completion_percentage": 100.0, "completed": 3}, "has 9 prediction rows"),
        # main.py 203-209: success with completed_predictions == 0 keeps its low percentage.
        ("success", {"completion_percentage": 0.0, "completed": 0}, "no prediction completed"),
    ],
)
def test_a_batch_phase6_would_drop_is_not_announced_and_a_warning_says_why(
    status: str, figures: dict[str, Any], why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []

    def warn(context: Any, kind: Any, message: str) -> None:
        assert kind is AlertKind.handoff_refused
        warnings.append(message)

    monkeypatch.setattr("nba_phase5.airflow.tasks.handoff.warn", warn)
    monkeypatch.setattr("nba_phase5.airflow.tasks.handoff.bigquery_hook", lambda: None)
    monkeypatch.setattr(handoff, "prediction_rows", lambda hook, day: 9)
    message = handoff.completion_message(_row(status, **figures), now=NOW)
    assert why in (handoff.phase6_refusal(message, lambda: 9) or "")
    with pytest.raises(AirflowSkipException, match="not handed to Phase 6"):
        handoff.announce({"run_id": "r"}, _row(status, **figures))
    assert len(warnings) == 1
    assert why in warnings[0]
    assert "Phase 6 would not export" in warnings[0]


@pytest.mark.parametrize(
    ("status", "figures"),
    [
        ("success", {}),
        ("partial", {"completion_percentage": 80.0, "completed": 300}),  # the threshold itself passes
        ("success", {"completion_percentage": 40.0, "completed": 200}),  # success >0 counts as 100 % there
    ],
)
def test_a_batch_phase6_takes_is_not_refused(status: str, figures: dict[str, Any]) -> None:
    assert handoff.phase6_refusal(handoff.completion_message(_row(status, **figures), now=NOW)) is None


def test_few_players_but_enough_rows_for_phase6_is_announced() -> None:
    """Three players predicted by several systems: 21 rows, which Phase 6 takes (main.py 112-150)."""
    message = handoff.completion_message(_row(completed=3), now=NOW)
    assert handoff.phase6_refusal(message, lambda: 21) is None


@pytest.mark.parametrize("status", ["failed", "skipped", "running"])
def test_a_run_that_did_not_finish_a_batch_hands_nothing_off(status: str) -> None:
    with pytest.raises(AirflowSkipException, match=f"the run ended {status}"):
        handoff.announce({"run_id": "r"}, _row(status))


def test_a_backfilled_batch_starts_no_phase6_export() -> None:
    with pytest.raises(AirflowSkipException, match="backfills"):
        handoff.announce({"run_id": "r"}, {**_row(), "backfill_mode": True})


class _AliasEvents:
    """What a task's ``outlet_events[alias]`` records: the assets added through it, with their extras."""

    def __init__(self) -> None:
        self.added: list[tuple[Any, dict[str, Any]]] = []

    def add(self, asset: Any, extra: dict[str, Any] | None = None) -> None:
        self.added.append((asset, extra or {}))


def _context(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "outlet_events": defaultdict(_AliasEvents)}


@pytest.mark.integration
def test_one_message_per_batch_however_often_the_task_runs(stack) -> None:
    drain_subscription(config.PHASE5_COMPLETE_LOCAL_SUBSCRIPTION)
    day = date(2025, 8, 21).isoformat()
    first = _context("manual__1")
    batch_a, batch_b = f"batch_{day}_1755734400", f"batch_{day}_1755738000"
    announced = handoff.announce(first, _row(day=day, batch=batch_a))
    assert announced["message_id"]
    [(asset, extra)] = first["outlet_events"][handoff.predictions_asset_alias()].added
    assert asset.uri == f"bigquery://{stack.project}/{config.PREDICTIONS_TABLE.replace('.', '/')}"
    assert extra["batch_id"] == batch_a
    for again in ("manual__1", "manual__2"):  # the task cleared, or another run holding the same batch id
        with pytest.raises(AirflowSkipException, match="already announced"):
            handoff.announce(_context(again), _row(day=day, batch=batch_a))
    handoff.announce(_context("manual__3"), _row(day=day, batch=batch_b))  # a forced new batch: announced
    messages = [json.loads(m.data) for m in drain_subscription(config.PHASE5_COMPLETE_LOCAL_SUBSCRIPTION)]
    assert [(m["game_date"], m["execution_id"]) for m in messages] == [(day, batch_a), (day, batch_b)]
