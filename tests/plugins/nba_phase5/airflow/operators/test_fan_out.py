"""The fan-out's publish-and-record step with fake clients: what reaches the publish ledger."""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import pytest

from nba_phase5.airflow.hooks.pubsub import BatchPublishHook
from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator
from nba_phase5.bigquery.ledger import UNCONFIRMED
from nba_phase5.core.prediction_requests import PredictionRequest

BATCH = "batch_2025-11-28_1764300000"


class HangsOne:
    """Accepts every publish but one, which is never answered (a publish stuck past the timeout)."""

    def __init__(self, hang: str) -> None:
        self.hang = hang
        self.stopped = False

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        future: Future[str] = Future()
        player = json.loads(data)["player_lookup"]
        if player != self.hang:
            future.set_result(f"m-{player}")
        return future

    def stop(self) -> None:
        self.stopped = True


class Ledger:
    """A BigQuery client that keeps the rows streamed into it."""

    project = "p"

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def insert_rows_json(self, table: str, rows: list[dict[str, Any]], row_ids: list[str]) -> list[Any]:
        assert len(set(row_ids)) == len(row_ids)
        self.rows += rows
        return []


class Hooks:
    def __init__(self, client: Ledger) -> None:
        self.client = client
        self.project_id = "p"

    def get_client(self, project_id: str) -> Ledger:
        return self.client


def test_a_publish_unanswered_at_the_timeout_is_recorded_as_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    publisher, ledger = HangsOne(hang="p3"), Ledger()
    original = BatchPublishHook.publish_batch
    monkeypatch.setattr(BatchPublishHook, "get_batch_publisher", lambda self: publisher)
    monkeypatch.setattr(BatchPublishHook, "publish_batch", lambda self, **kw: original(self, **{**kw, "timeout": 0.05}))
    operator = PredictionFanOutOperator(
        task_id="fan_out_requests", game_date="2025-11-28", batch_id=BATCH, chunk_size=4
    )
    operator.__dict__["bigquery_hook"] = Hooks(ledger)
    operator.__dict__["pubsub_hook"] = BatchPublishHook.__new__(BatchPublishHook)
    requests = [PredictionRequest("2025-11-28", f"p{i}", "g", BATCH) for i in range(10)]
    result = operator.publish_and_record(requests, context={})
    assert (result.published, result.unconfirmed) == (3, [3])  # the first chunk: p0..p3, p3 unanswered
    recorded = {row["player_lookup"]: row["message_id"] for row in ledger.rows}
    assert recorded == {"p0": "m-p0", "p1": "m-p1", "p2": "m-p2", "p3": UNCONFIRMED}
    assert publisher.stopped


def test_the_correlation_id_is_phase4s_else_the_batch_id() -> None:
    """Phase 4's correlation id travels in every request (coordinator.py 959, 3586); without an event
    (the backup path), the batch id stands in, as the coordinator's fallback."""
    event = {
        "triggered_by": "pubsub",
        "event": {"correlation_id": "4f2a9c1e", "game_date": "2025-11-28"},
        "correlation_id": "4f2a9c1e",  # as Phase4EventWaitOperator returns it
    }
    with_event = PredictionFanOutOperator(task_id="t", game_date="2025-11-28", batch_id=BATCH, phase4_event=event)
    assert with_event.correlation_id == "4f2a9c1e"
    backup = {"triggered_by": "scheduler_backup"}
    without = PredictionFanOutOperator(task_id="t", game_date="2025-11-28", batch_id=BATCH, phase4_event=backup)
    assert without.correlation_id == BATCH
