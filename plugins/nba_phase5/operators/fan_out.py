"""Fan out prediction requests: one Pub/Sub message per production-ready player and prop type."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseOperator

from nba_phase5 import config
from nba_phase5.prediction_requests import PredictionRequest, batch_id


class PredictionFanOutOperator(BaseOperator):
    """Publishes a prediction request for every ready player (× prop type) still lacking a prediction.

    The players come from ``sql`` (by default ``missing_requests.sql``: ready players without a
    prediction, or all of them with ``force``), so a rerun or a straggler round publishes only what is
    missing. Messages go out through :class:`~nba_phase5.hooks.pubsub.BatchPublishHook`: batched,
    asynchronous, with flow control; failed publishes are retried, and the task fails if any request
    is still unpublished. ``request_id`` is deterministic, so workers can deduplicate.

    Returns ``{"requested", "published", "failed", "retried", "players", "first_published_at", "batch_id"}``.

    :param game_date: ISO game date (templated).
    :param prop_types: prop types to request per player: a list, or comma-separated as the DAG renders it (templated).
    :param force: request every ready player, predictions or not (templated).
    :param sql: query returning ``player_lookup, prop_type`` rows (templated, ``.sql`` file).
    :param topic: Pub/Sub topic the workers subscribe to.
    :param project_id: project for topic and tables; default from the connection.
    :param covered_by: task id of a coverage poll; when it found every prediction in place, nothing is
        queried or published (a straggler round after a complete wait).
    :param max_publish_attempts: attempts per message before the task gives up on it.
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    template_fields: Sequence[str] = ("game_date", "prop_types", "force", "sql", "project_id")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        game_date: str,
        prop_types: Sequence[str] | str = ("points",),
        force: bool | str = False,
        sql: str = "missing_requests.sql",
        topic: str = config.PREDICTION_REQUESTS_TOPIC,
        project_id: str | None = None,
        covered_by: str | None = None,
        max_publish_attempts: int = 3,
        gcp_conn_id: str = config.GCP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.game_date = game_date
        self.prop_types = prop_types
        self.force = force
        self.sql = sql
        self.topic = topic
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

    def missing_requests(self) -> list[tuple[str, str]]:
        rows = self.bigquery_hook.query_rows(
            self.sql,
            {
                "game_date": {"type": "DATE", "value": self.game_date},
                "prop_types": {"type": "ARRAY<STRING>", "value": self.prop_types},
                "force": str(self.force).lower() in ("true", "1"),
            },
        )
        return [(row["player_lookup"], row["prop_type"]) for row in rows]

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
        requests = [PredictionRequest(self.game_date, player, prop, batch, project) for player, prop in wanted]
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
                f"{self.max_publish_attempts} attempts (first: {lost[0].player_lookup}/{lost[0].prop_type}); "
                f"errors: {'; '.join(result.errors)}"
            )
        return summary
