"""Phase 4 events that came after their date's batch finished: found from the run history, in words."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from nba_phase5 import config
from nba_phase5.bigquery.late_events import came_late, finished_at, words

FINISHED = datetime(2025, 9, 2, 14, 0, tzinfo=UTC)


def test_only_events_published_after_the_batch_finished_came_late() -> None:
    late = [
        {
            "message_id": "after",
            "game_date": "2025-09-02",
            "players": 5,
            "at": (FINISHED + timedelta(hours=3)).isoformat(),
        },
        {
            "message_id": "before",
            "game_date": "2025-09-02",
            "players": 5,
            "at": (FINISHED - timedelta(hours=3)).isoformat(),
        },
        {"message_id": "unfinished", "game_date": "2025-09-03", "players": 5, "at": FINISHED.isoformat()},
        {"message_id": "no-time", "game_date": "2025-09-02", "players": 5, "at": None},
    ]
    found = came_late(late, {"2025-09-02": FINISHED})
    assert [event["message_id"] for event in found] == ["after"]
    assert "after that date's batch finished at 2025-09-02T14:00:00+00:00" in words(found[0])


@pytest.mark.integration
def test_finished_batches_are_read_from_the_run_history(stack: Any, bq: Any) -> None:
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook
    from nba_phase5.bigquery.bq import insert_rows

    day, other = date(2025, 9, 2), date(2025, 9, 3)
    base = {"processor_name": config.PHASE5_PROCESSOR, "data_date": day, "started_at": FINISHED - timedelta(hours=1)}
    insert_rows(
        bq,
        config.RUN_HISTORY_TABLE,
        [
            {**base, "run_id": "a", "status": "success", "processed_at": FINISHED - timedelta(hours=2)},
            {**base, "run_id": "b", "status": "partial", "processed_at": FINISHED},
            {**base, "run_id": "c", "status": "failed", "processed_at": FINISHED + timedelta(hours=5)},
            {
                **base,
                "run_id": "d",
                "processor_name": "MLFeatureStoreProcessor",
                "status": "success",
                "processed_at": FINISHED + timedelta(hours=6),
            },
            {**base, "run_id": "e", "data_date": other, "status": "running", "processed_at": None},
        ],
    )
    hook = Phase5BigQueryHook(gcp_conn_id=config.GCP_CONN_ID, job_labels={})
    assert finished_at(hook, [day.isoformat(), other.isoformat()]) == {day.isoformat(): FINISHED}
    assert finished_at(hook, []) == {}
