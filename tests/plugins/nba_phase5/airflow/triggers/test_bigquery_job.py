"""The gate's trigger: it looks the job up in its location until done, and yields a plain outcome."""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any

import pytest

from nba_phase5.airflow.triggers.bigquery_job import BigQueryJobTrigger


def _trigger(**kwargs: Any) -> BigQueryJobTrigger:
    return BigQueryJobTrigger(job_id="job_1", project_id="p", location="us-west2", poll_interval=0.01, **kwargs)


def _events(trigger: BigQueryJobTrigger) -> list[Any]:
    async def collect() -> list[Any]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


class _Hook:
    """Answers ``job_outcome`` from a script: None (running), an outcome, or an exception to raise."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str | None]] = []

    def job_outcome(self, job_id: str, *, project_id: str | None = None) -> Any:
        self.calls.append((job_id, project_id))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_it_serializes_to_its_import_path_and_round_trips() -> None:
    path, kwargs = _trigger().serialize()
    module, name = path.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["location"] == "us-west2"


def test_it_polls_a_running_job_until_done_and_yields_one_event() -> None:
    done = {"status": "success", "message": "BigQuery job job_1 done", "row": {"phase4_ran": True}}
    trigger = _trigger()
    hook = _Hook(None, None, done)
    trigger.__dict__["hook"] = hook
    assert _events(trigger) == [done]
    assert hook.calls == [("job_1", "p")] * 3


def test_a_failed_lookup_ends_the_wait_with_an_error_event() -> None:
    from google.api_core.exceptions import NotFound

    trigger = _trigger()
    trigger.__dict__["hook"] = _Hook(None, NotFound("Not found: Job p:job_1"))
    [event] = _events(trigger)
    assert event["status"] == "error"
    assert "NotFound" in event["message"]
    json.dumps(event, allow_nan=False)  # the triggerer and XCom carry it as JSON


@pytest.mark.integration
def test_the_hook_it_builds_looks_jobs_up_in_the_triggers_location(stack: Any) -> None:
    hook = _trigger().hook
    assert hook.location == "us-west2"
    assert _trigger().hook is not hook  # one per trigger; cached within it


@pytest.mark.integration
def test_against_bigquery_a_query_job_yields_its_first_row(stack: Any, bq: Any) -> None:
    from nba_phase5 import config
    from nba_phase5.bigquery.bq import start_query

    job = start_query(bq, "SELECT @n AS n, TRUE AS ok, DATE '2025-11-28' AS day", {"n": 7})
    trigger = BigQueryJobTrigger(
        job_id=job.job_id, project_id=bq.project, location=config.bigquery_location(), poll_interval=0.1
    )
    [event] = _events(trigger)
    assert event == {
        "status": "success",
        "message": f"BigQuery job {job.job_id} done",
        "row": {"n": 7, "ok": True, "day": "2025-11-28"},
    }
