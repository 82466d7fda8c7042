"""Fan out prediction requests: one Pub/Sub message per production-ready player, in the workers' format."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseOperator

from nba_phase5 import config
from nba_phase5.prediction_requests import PredictionRequest, batch_id

# A line table is named by an Airflow Variable: only `dataset.table` of plain identifiers is accepted,
# because the name (unlike values) cannot be a query parameter.
LINE_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\.[A-Za-z_][A-Za-z0-9_]{0,1023}")
LINE_VALUES_SQL = """
SELECT player_lookup, ARRAY_AGG(DISTINCT points_line IGNORE NULLS ORDER BY points_line) AS line_values
FROM `{table}`
WHERE game_date = @game_date AND player_lookup IN UNNEST(@players)
GROUP BY player_lookup
"""


class PredictionFanOutOperator(BaseOperator):
    """Publishes one prediction request for every ready player still lacking an active prediction.

    The players come from ``sql`` (by default ``missing_requests.sql``: ready players without an active
    prediction, or all of them with ``force``), so a rerun or a straggler round publishes only what is
    missing. Each message is the workers' body ``{player_lookup, game_date, game_id, line_values}``
    (line values from ``line_table`` when one is set, else ``[]``), with request and batch ids as
    attributes. Messages go out through :class:`~nba_phase5.hooks.pubsub.BatchPublishHook`: batched,
    asynchronous, with flow control; failed publishes are retried, and the task fails if any request
    is still unpublished.

    Returns ``{"requested", "published", "failed", "retried", "players", "first_published_at", "batch_id"}``.

    :param game_date: ISO game date (templated).
    :param force: request every ready player, predictions or not; the worker supersedes them (templated).
    :param sql: query returning ``player_lookup, game_id`` rows (templated, ``.sql`` file).
    :param topic: Pub/Sub topic the workers listen on (templated: the DAG reads it from a Variable).
    :param line_table: ``dataset.table`` with ``game_date, player_lookup, points_line`` rows; empty for
        no lines (templated).
    :param project_id: project for topic and tables; default from the connection.
    :param covered_by: task id of a coverage poll; when it found every prediction in place, nothing is
        queried or published (a straggler round after a complete wait).
    :param max_publish_attempts: attempts per message before the task gives up on it.
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    template_fields: Sequence[str] = ("game_date", "force", "sql", "topic", "line_table", "project_id")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        game_date: str,
        force: bool | str = False,
        sql: str = "missing_requests.sql",
        topic: str = config.PREDICTION_REQUESTS_TOPIC,
        line_table: str | None = None,
        project_id: str | None = None,
        covered_by: str | None = None,
        max_publish_attempts: int = 3,
        gcp_conn_id: str = config.GCP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.game_date = game_date
        self.force = force
        self.sql = sql
        self.topic = topic
        self.line_table = line_table
        self.project_id = project_id
        self.covered_by = covered_by
        self.max_publish_attempts = max_publish_attempts
        self.gcp_conn_id = gcp_conn_id

    @cached_property
    def bigquery_hook(self) -> Any:
        from nba_phase5.hooks.bigquery import Phase5BigQueryHook

        return Phase5BigQueryHook(gcp_conn_id=self.gcp_conn_id)

    @cached_property
    def pubsub_hook(self) -> Any:
        from nba_phase5.hooks.pubsub import BatchPublishHook

        return BatchPublishHook(gcp_conn_id=self.gcp_conn_id)

    @property
    def forced(self) -> bool:
        return str(self.force).lower() in ("true", "1")

    def missing_requests(self) -> list[tuple[str, str]]:
        """(player_lookup, game_id) of every player to request."""
        rows = self.bigquery_hook.query_rows(
            self.sql, {"game_date": {"type": "DATE", "value": self.game_date}, "force": self.forced}
        )
        return [(row["player_lookup"], row["game_id"]) for row in rows]

    def line_values(self, players: list[str]) -> dict[str, list[float]]:
        """Points lines per player from ``line_table``; empty when no table is configured."""
        table = (self.line_table or "").strip()
        if not table or table == "None" or not players:
            return {}
        if not LINE_TABLE_RE.fullmatch(table):
            raise ValueError(f"line_table must be dataset.table (letters, digits, _), got {table[:80]!r}")
        rows = self.bigquery_hook.query_rows(
            LINE_VALUES_SQL.format(table=f"{self.bigquery_hook.project_id}.{table}"),
            {"game_date": {"type": "DATE", "value": self.game_date}, "players": sorted(players)},
        )
        return {row["player_lookup"]: [float(v) for v in row["line_values"] or []] for row in rows}

    def execute(self, context: Any) -> dict[str, Any]:
        from nba_phase5.sensors.bigquery_poll import covered

        batch = batch_id(self.game_date, context["run_id"])
        if self.covered_by and covered(context["ti"].xcom_pull(task_ids=self.covered_by)):
            self.log.info("%s found every prediction in place: nothing to republish", self.covered_by)
            wanted: list[tuple[str, str]] = []
            project = self.project_id or ""
        else:
            project = self.project_id or self.bigquery_hook.project_id
            wanted = self.missing_requests()
        lines = self.line_values([player for player, _ in wanted])
        requests = [
            PredictionRequest(self.game_date, player, game_id, batch, tuple(lines.get(player, ())), self.forced)
            for player, game_id in wanted
        ]
        players = len({r.player_lookup for r in requests})
        self.log.info("Publishing %d requests for %d players (%s) to %s", len(requests), players, batch, self.topic)
        if requests:
            result = self.pubsub_hook.publish_batch(
                project_id=project,
                topic=self.topic,
                messages=[(r.body(), r.attributes()) for r in requests],
                max_attempts=self.max_publish_attempts,
            )
        else:
            from nba_phase5.hooks.pubsub import PublishResult

            result = PublishResult()
        summary = {
            "requested": len(requests),
            "published": result.published,
            "failed": len(result.failed),
            "retried": result.retried,
            "players": players,
            "player_lookups": sorted({r.player_lookup for r in requests})[:100],
            "first_published_at": (
                datetime.fromtimestamp(result.first_published_at, UTC).isoformat()
                if result.first_published_at
                else None
            ),
            "batch_id": batch,
        }
        self.log.info(
            "Published %d/%d requests (%d retried, %d failed after %d attempts)",
            result.published,
            len(requests),
            result.retried,
            len(result.failed),
            result.attempts,
        )
        if result.failed:
            lost = [requests[i] for i in result.failed]
            raise RuntimeError(
                f"{len(lost)} of {len(requests)} prediction requests are still unpublished after "
                f"{self.max_publish_attempts} attempts (first: {lost[0].player_lookup}); "
                f"errors: {'; '.join(result.errors)}"
            )
        return summary
