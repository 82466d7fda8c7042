"""BigQuery access for this package's operators: parameterised queries through the provider's hook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
from airflow.providers.google.common.hooks.base_google import PROVIDE_PROJECT_ID

from nba_phase5.bq import insert_rows, run_query
from nba_phase5.clients import check_emulators
from nba_phase5.job_labels import current_labels


class Phase5BigQueryHook(BigQueryHook):
    """``BigQueryHook`` whose queries always use standard SQL and typed query parameters.

    Connection, credentials and project come from the Airflow connection like any provider hook; the
    client honours ``BIGQUERY_EMULATOR_HOST``, so the same code runs on the local emulator. Every job
    carries the labels of ``nba_phase5.job_labels`` (DAG, task, game date).

    :param job_labels: the jobs' labels; ``None`` (the default) takes the running task's, from its
        context (the triggerer, which has no task context, passes them).
    """

    def __init__(self, *, job_labels: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("use_legacy_sql", False)
        super().__init__(**kwargs)
        self.job_labels = job_labels

    def _labels(self) -> Mapping[str, str]:
        return self.job_labels if self.job_labels is not None else current_labels()

    def get_client(self, project_id: str = PROVIDE_PROJECT_ID, location: str | None = None) -> Any:
        check_emulators()  # a stopped local stack fails the task now, not after minutes of retries
        return super().get_client(project_id=project_id, location=location)

    def query_rows(self, sql: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        return run_query(self.get_client(project_id=self.project_id), sql, params, self._labels())

    def insert(self, table_name: str, rows: list[dict[str, Any]]) -> int:
        return insert_rows(self.get_client(project_id=self.project_id), table_name, rows, self._labels())
