"""Fan out prediction requests: one Pub/Sub message per production-ready player, in the workers' format."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseOperator

from nba_phase5 import config
from nba_phase5.ledger import UNCONFIRMED, LedgerEntry
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
    """Publishes one prediction request for every ready player still missing its prediction.

    The players come from ``sql`` (by default ``missing_requests.sql``): production-ready, without an
    active prediction (with ``force``: without one made by this batch), and with no request in flight
    (recorded in the publish ledger less than ``in_flight_minutes`` ago). So a retried or cleared
    fan-out, or a straggler round, sends only what was never accepted or is presumed lost.

    Each message is the workers' body ``{player_lookup, game_date, game_id, line_values}`` (line values
    from ``line_table`` when one is set, else ``[]``), with request and batch ids as attributes.
    Requests go out ``chunk_size`` at a time through
    :class:`~nba_phase5.hooks.pubsub.BatchPublishHook` (batched, asynchronous, flow-controlled); what
    Pub/Sub accepted is recorded in the ledger while the next chunk publishes, and the task finishes
    only once every accepted request is recorded. Refused publishes are retried; the task fails if any
    request is still unpublished.

    With ``check_holder``, the task first asks whether another live run holds the date's batch
    (:mod:`nba_phase5.batch_lease`) and, if so, publishes nothing and is skipped.

    Returns ``{"requested", "published", "failed", "retried", "players", "first_published_at", "batch_id"}``.

    :param game_date: ISO game date (templated).
    :param force: a new generation: request every ready player without a prediction made by this
        batch, with new request ids; the worker supersedes the old predictions (templated).
    :param batch_started_at: ISO time the batch started; a forced batch's generation begins here (templated).
    :param in_flight_minutes: a request accepted less than this long ago is in flight (templated).
    :param sql: query returning ``player_lookup, game_id`` rows (templated, ``.sql`` file).
    :param topic: Pub/Sub topic the workers listen on (templated: the DAG reads it from a Variable).
    :param line_table: ``dataset.table`` with ``game_date, player_lookup, points_line`` rows; empty for
        no lines (templated).
    :param project_id: project for topic and tables; default from the connection.
    :param coverage: the result of the coverage poll before this round, as an XComArg (templated): when
        it found every prediction in place, nothing is queried or published.
    :param check_holder: yield (skip) when another live run holds the date's batch.
    :param chunk_size: requests published, then recorded, per step (templated).
    :param max_publish_attempts: attempts per message before the task gives up on it.
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    template_fields: Sequence[str] = (
        "game_date",
        "force",
        "batch_started_at",
        "in_flight_minutes",
        "sql",
        "topic",
        "line_table",
        "project_id",
        "chunk_size",
        "coverage",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        game_date: str,
        force: bool | str = False,
        batch_started_at: str | None = None,
        in_flight_minutes: float | str = config.DEFAULT_THRESHOLDS.in_flight_minutes,
        sql: str = "missing_requests.sql",
        topic: str = config.PREDICTION_REQUESTS_TOPIC,
        line_table: str | None = None,
        project_id: str | None = None,
        coverage: Any = None,
        check_holder: bool = False,
        chunk_size: int | str = config.FAN_OUT.chunk_size,
        max_publish_attempts: int = config.FAN_OUT.max_publish_attempts,
        gcp_conn_id: str = config.GCP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.game_date = game_date
        self.force = force
        self.batch_started_at = batch_started_at
        self.in_flight_minutes = in_flight_minutes
        self.sql = sql
        self.topic = topic
        self.line_table = line_table
        self.project_id = project_id
        self.coverage = coverage
        self.check_holder = check_holder
        self.chunk_size = chunk_size
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

    @property
    def started_at(self) -> str:
        started = str(self.batch_started_at or "")
        return started if started and started != "None" else datetime.now(UTC).isoformat()

    def missing_requests(self) -> list[tuple[str, str]]:
        """(player_lookup, game_id) of every player to request."""
        from nba_phase5 import query_params

        params = query_params.prediction_state(
            self.game_date,
            force=self.forced,
            batch_started_at=self.started_at,
            in_flight_seconds=query_params.in_flight_seconds(self.in_flight_minutes),
        )
        rows = self.bigquery_hook.query_rows(self.sql, params)
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

    def wanted_requests(self, context: Any, batch: str) -> list[PredictionRequest]:
        from nba_phase5.operators.bigquery_wait import covered

        if covered(self.coverage):
            self.log.info("The last wait found every prediction in place: nothing to republish")
            return []
        wanted = self.missing_requests()
        lines = self.line_values([player for player, _ in wanted])
        # A forced batch is a generation of its own (its request ids carry the batch id); a cleared
        # forced run keeps its ids, so what it already sent is not sent again under new ones.
        return [
            PredictionRequest(self.game_date, player, game_id, batch, tuple(lines.get(player, ())), self.forced)
            for player, game_id in wanted
        ]

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        if self.check_holder:
            from nba_phase5.batch_lease import find_holder

            held_by = find_holder(context, self.game_date)
            if held_by:
                raise AirflowSkipException(held_by.words(self.game_date))
        batch = batch_id(self.game_date, context["run_id"])
        requests = self.wanted_requests(context, batch)
        players = len({r.player_lookup for r in requests})
        self.log.info("Publishing %d requests for %d players (%s) to %s", len(requests), players, batch, self.topic)
        result = self.publish_and_record(requests, context)
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
            "Published %d/%d requests (%d retried, %d failed after %d attempts), each accepted one in the ledger",
            result.published,
            len(requests),
            result.retried,
            len(result.failed),
            result.attempts,
        )
        if result.failed:
            raise RuntimeError(
                f"{len(result.failed)} of {len(requests)} prediction requests are still unpublished after "
                f"{self.max_publish_attempts} attempts (first: {requests[result.failed[0]].player_lookup}); "
                f"errors: {'; '.join(result.errors)}"
            )
        return summary

    def publish_and_record(self, requests: list[PredictionRequest], context: Any) -> Any:
        """Publish ``chunk_size`` requests at a time; record each chunk's accepted ones while the next publishes.

        Requests accepted but unrecorded are at most the chunk being recorded and the chunk being
        published. A chunk with requests Pub/Sub would not take stops the fan-out once what it
        accepted is recorded.
        """
        from nba_phase5.hooks.pubsub import PublishResult
        from nba_phase5.ledger import record

        total = PublishResult()
        if not requests:
            return total
        project = self.project_id or self.bigquery_hook.project_id
        publisher = self.pubsub_hook.get_batch_publisher()
        client = self.bigquery_hook.get_client(project_id=project)
        size = max(1, int(self.chunk_size))
        recording: Future[int] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger") as recorder:
            try:
                for start in range(0, len(requests), size):
                    chunk = requests[start : start + size]
                    result = self.pubsub_hook.publish_batch(
                        project_id=project,
                        topic=self.topic,
                        messages=[(r.body(), r.attributes()) for r in chunk],
                        max_attempts=self.max_publish_attempts,
                        publisher=publisher,
                    )
                    entries = [LedgerEntry(chunk[i], message_id, at) for i, message_id, at in result.accepted]
                    # Unanswered at the timeout: maybe accepted yet. Recorded as in flight, so a retry
                    # of this task does not send them again inside the window.
                    entries += [LedgerEntry(chunk[i], UNCONFIRMED, time.time()) for i in result.unconfirmed]
                    if recording is not None:
                        recording.result()
                    recording = recorder.submit(record, client, entries, self.task_id)
                    _add(total, result, offset=start)
                    if result.failed:
                        break
                if recording is not None:
                    recording.result()
            finally:
                publisher.stop()
        return total


def _add(total: Any, part: Any, *, offset: int) -> None:
    """Fold one chunk's publish result into the fan-out's (indexes become the fan-out's)."""
    total.published += part.published
    total.retried += part.retried
    total.attempts = max(total.attempts, part.attempts)
    total.failed.extend(offset + i for i in part.failed)
    total.unconfirmed.extend(offset + i for i in part.unconfirmed)
    total.errors.extend(part.errors)
    if total.first_published_at is None:
        total.first_published_at = part.first_published_at
