"""Trigger that waits in the triggerer for one BigQuery query job, looked up in its location."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from nba_phase5 import config
from nba_phase5.core.states import TriggerStatus


class BigQueryJobTrigger(BaseTrigger):
    """Polls a query job until it is done, then yields its outcome: ``{"status": "success", "row": …}``
    with the first result row (a dict of plain values, or ``None``), or ``{"status": "error", "message"}``.

    Every lookup names the job's ``location``: in a single-region location (the platform's, docs/platform.md
    §0) BigQuery answers 404 to a jobs.get or getQueryResults without it, which is why this package does
    not defer on the provider's BigQuery triggers (they poll without it). A failed lookup ends the wait
    with the error event at once; the deferring task's retries decide what happens next (the lookup's
    client already retried transient errors).

    :param job_id: the query job's id.
    :param project_id: the project the job runs in.
    :param location: the job's location.
    :param poll_interval: seconds between lookups of a job still running.
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    def __init__(
        self,
        *,
        job_id: str,
        project_id: str,
        location: str,
        poll_interval: float = 4.0,
        gcp_conn_id: str = config.GCP_CONN_ID,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.project_id = project_id
        self.location = location
        self.poll_interval = poll_interval
        self.gcp_conn_id = gcp_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "project_id": self.project_id,
                "location": self.location,
                "poll_interval": self.poll_interval,
                "gcp_conn_id": self.gcp_conn_id,
            },
        )

    @cached_property
    def hook(self) -> Any:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

        # The job already exists: no job of the trigger's needs labels.
        return Phase5BigQueryHook(gcp_conn_id=self.gcp_conn_id, location=self.location, job_labels={})

    def outcome(self) -> dict[str, Any] | None:
        """The job's outcome, ``None`` while it runs (synchronous client: called in a thread)."""
        result: dict[str, Any] | None = self.hook.job_outcome(self.job_id, project_id=self.project_id)
        return result

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                outcome = await asyncio.to_thread(self.outcome)
            except Exception as exc:
                self.log.warning("Could not look up BigQuery job %s in %s: %s", self.job_id, self.location, exc)
                yield TriggerEvent({"status": str(TriggerStatus.ERROR), "message": f"{type(exc).__name__}: {exc}"})
                return
            if outcome is not None:
                yield TriggerEvent(outcome)
                return
            self.log.info("BigQuery job %s still running; next look in %.0f s", self.job_id, self.poll_interval)
            await asyncio.sleep(self.poll_interval)
