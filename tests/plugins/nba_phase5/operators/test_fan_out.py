"""The fan-out's publish-and-record step with fake clients: what reaches the publish ledger."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from nba_phase5.hooks.pubsub import BatchPublishHook
from nba_phase5.ledger import UNCONFIRMED
from nba_phase5.operators.fan_out import PredictionFanOutOperator
from nba_phase5.prediction_requests import PredictionRequest


class HangsOne:
    """Accepts every publish but one, which is never answered (a publish stuck past the timeout)."""

    def __init__(self, hang: str) -> None:
        self.hang = hang
        self.stopped = False

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        future: Future[str] = Future()
        if attributes["player_lookup"] != self.hang:
            future.set_result(f"m-{attributes['player_lookup']}")
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
    operator = PredictionFanOutOperator(task_id="fan_out_requests", game_date="2025-11-28", chunk_size=4)
    operator.__dict__["bigquery_hook"] = Hooks(ledger)
    operator.__dict__["pubsub_hook"] = BatchPublishHook.__new__(BatchPublishHook)
    requests = [PredictionRequest("2025-11-28", f"p{i}", "g", "2025-11-28:run") for i in range(10)]
    result = operator.publish_and_record(requests, context={})
    assert (result.published, result.unconfirmed) == (3, [3])  # the first chunk: p0..p3, p3 unanswered
    recorded = {row["player_lookup"]: row["message_id"] for row in ledger.rows}
    assert recorded == {"p0": "m-p0", "p1": "m-p1", "p2": "m-p2", "p3": UNCONFIRMED}
    assert publisher.stopped
