"""BigQuery access for this package's operators: parameterised queries through the provider's hook."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
from airflow.providers.google.common.hooks.base_google import PROVIDE_PROJECT_ID

from nba_phase5 import config
from nba_phase5.airflow.job_labels import current_labels
from nba_phase5.bigquery import sql
from nba_phase5.bigquery.bq import insert_rows, job_outcome, lookup_retry, run_query, start_query
from nba_phase5.bigquery.clients import check_emulators
from nba_phase5.bigquery.consolidation import consolidate, counted_tables
from nba_phase5.core import staging

# A line table is named by an Airflow Variable: only `dataset.table` of plain identifiers is accepted,
# because the name (unlike values) cannot be a query parameter.
LINE_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\.[A-Za-z_][A-Za-z0-9_]{0,1023}")
# One base line per player, as the coordinator sends one (docs/platform.md §7.3): the lowest if the
# table holds several.
LINE_VALUES_SQL = """
SELECT player_lookup, MIN(points_line) AS points_line
FROM `{table}`
WHERE game_date = @game_date AND player_lookup IN UNNEST(@players) AND points_line IS NOT NULL
GROUP BY player_lookup
"""


class Phase5BigQueryHook(BigQueryHook):
    """``BigQueryHook`` whose queries always use standard SQL and typed query parameters.

    Connection, credentials and project come from the Airflow connection like any provider hook; the
    client honours ``BIGQUERY_EMULATOR_HOST``, so the same code runs on the local emulator. Every job
    carries the labels of ``nba_phase5.airflow.job_labels`` (DAG, task, game date), and every job is created and
    looked up in one location (docs/platform.md §0: in a single-region location a lookup without it is
    a 404).

    :param job_labels: the jobs' labels; ``None`` (the default) takes the running task's, from its
        context (the triggerer, which has no task context, passes them).
    :param location: where jobs run and are looked up; ``None`` (the default) is
        :func:`nba_phase5.config.bigquery_location`.
    """

    def __init__(
        self, *, job_labels: Mapping[str, str] | None = None, location: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("use_legacy_sql", False)
        super().__init__(location=location or config.bigquery_location(), **kwargs)
        self.job_labels = job_labels

    def _labels(self) -> Mapping[str, str]:
        return self.job_labels if self.job_labels is not None else current_labels()

    def get_client(self, project_id: str = PROVIDE_PROJECT_ID, location: str | None = None) -> Any:
        check_emulators()  # a stopped local stack fails the task now, not after minutes of retries
        # The client's location is the default of every job it creates and looks up (jobs.get,
        # getQueryResults), so no call of this package's can leave it out.
        return super().get_client(project_id=project_id, location=location or self.location)

    def query_rows(self, sql: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        return run_query(self.get_client(project_id=self.project_id), sql, params, self._labels())

    def start_query(self, sql: str, params: Mapping[str, object] | None = None) -> Any:
        """Insert a query job and return it without waiting (:func:`nba_phase5.bigquery.bq.start_query`)."""
        return start_query(self.get_client(project_id=self.project_id), sql, params, self._labels())

    def job_outcome(self, job_id: str, *, project_id: str | None = None) -> dict[str, Any] | None:
        """A query job's outcome, looked up in the hook's location: ``None`` while it runs, else
        :func:`nba_phase5.bigquery.bq.job_outcome`'s event (``status`` success with its first ``row``, or error)."""
        project = project_id or self.project_id
        client = self.get_client(project_id=project)
        return job_outcome(client.get_job(job_id, project=project, location=self.location, retry=lookup_retry()))

    def insert(self, table_name: str, rows: list[dict[str, Any]]) -> int:
        return insert_rows(self.get_client(project_id=self.project_id), table_name, rows, self._labels())

    def prediction_state_sql(
        self, template: str, batch_ids: Sequence[str], *, force: bool = False, **names: Any
    ) -> str:
        """``template`` (a query over ``_prediction_state.sql``) rendered with the staging tables of
        ``batch_ids`` whose staged players count as predicted (a ``force`` batch: its own only), so the
        staged players are read in the query's own job (:func:`nba_phase5.bigquery.consolidation.counted_tables`)."""
        client = self.get_client(project_id=self.project_id)
        tables = counted_tables(client, batch_ids, own_batch_only=force)
        return sql.render(template, staging_tables=tables, staging_dataset=staging.STAGING_DATASET, **names)

    def consolidate(self, game_date: str, batch_id: str, adopted: Sequence[str] = ()) -> Any:
        """Merge the batch's (and the adopted batches') staging tables (:mod:`nba_phase5.bigquery.consolidation`)."""
        client = self.get_client(project_id=self.project_id)
        return consolidate(client, game_date=game_date, batch_id=batch_id, adopted=adopted, labels=self._labels())

    def points_lines(self, line_table: str | None, game_date: str, players: list[str]) -> dict[str, float]:
        """Each player's base points line from ``line_table`` (``dataset.table``); empty when none is set."""
        table = (line_table or "").strip()
        if not table or table == "None" or not players:
            return {}
        if not LINE_TABLE_RE.fullmatch(table):
            raise ValueError(f"line_table must be dataset.table (letters, digits, _), got {table[:80]!r}")
        rows = self.query_rows(
            LINE_VALUES_SQL.format(table=f"{self.project_id}.{table}"),
            {"game_date": {"type": "DATE", "value": game_date}, "players": sorted(players)},
        )
        return {row["player_lookup"]: float(row["points_line"]) for row in rows}
