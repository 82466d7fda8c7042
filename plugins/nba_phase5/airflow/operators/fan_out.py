"""Fan out prediction requests: one Pub/Sub message per production-ready player, in the coordinator's format."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from nba_phase5 import config
from nba_phase5.airflow import batch_claims
from nba_phase5.bigquery import query_params
from nba_phase5.bigquery.ledger import UNCONFIRMED, LedgerEntry, record
from nba_phase5.core.coverage import covered
from nba_phase5.core.prediction_requests import PredictionRequest
from nba_phase5.core.staging import check_batch_id
from nba_phase5.core.states import TriggeredBy, parse_flag, triggered_by_of_run


class PredictionFanOutOperator(BaseOperator):
    """Publishes one prediction request for every ready player still missing its prediction.

    The players are those ``sql`` (``missing_requests.sql``) finds ready and still missing: no active
    prediction, no rows staged by the batch's workers, no request in flight (the publish ledger); each gets
    the coordinator's request body (:mod:`nba_phase5.core.prediction_requests`), ``chunk_size`` at a time
    through :class:`~nba_phase5.airflow.hooks.pubsub.BatchPublishHook`, and the task finishes only once every
    accepted request is in the ledger; it fails if any request is still unpublished. With ``check_holder`` it
    publishes nothing, and is skipped, when another live run holds the date's batch. Returns ``{"requested",
    "published", "failed", "retried", "players", "first_published_at", "batch_id", "correlation_id"}``. Why:
    docs/architecture.md, *Why each module is built as it is*.

    :param game_date: ISO game date (templated).
    :param batch_id: the run's batch id, minted when the run claimed its date (templated: an XComArg).
    :param staged_batches: the batches whose staged rows count as predictions: the run's own, then the
        dead batches of the date it adopted (templated: an XComArg). None: the run's own only.
    :param phase4_event: the Phase 4 event wait's result (templated: an XComArg); its event's
        ``correlation_id`` travels in every request. None or no event: the batch id is the correlation id.
    :param force: a new generation: request every ready player without a prediction made by this
        batch, with new request ids; consolidation then deactivates the older rows (templated).
    :param batch_started_at: ISO time the batch started; a forced batch's generation begins here (templated).
    :param in_flight_minutes: a request accepted less than this long ago is in flight (templated).
    :param sql: template in ``include/sql`` returning ``kind`` (``request``; with ``with_claims`` also
        ``claim`` rows, ``batch_claims.sql``'s columns) and ``player_lookup, game_id, opponent_team_abbr,
        is_home``, rendered when the task runs with the staging tables it finds then.
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
        "batch_id",
        "staged_batches",
        "phase4_event",
        "force",
        "batch_started_at",
        "in_flight_minutes",
        "topic",
        "line_table",
        "project_id",
        "chunk_size",
        "coverage",
    )
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        game_date: str,
        batch_id: str,
        staged_batches: Any = None,
        phase4_event: Any = None,
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
        self.batch_id = batch_id
        self.staged_batches = staged_batches
        self.phase4_event = phase4_event
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
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

        return Phase5BigQueryHook(gcp_conn_id=self.gcp_conn_id)

    @cached_property
    def pubsub_hook(self) -> Any:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.pubsub import BatchPublishHook

        return BatchPublishHook(gcp_conn_id=self.gcp_conn_id)

    @property
    def forced(self) -> bool:
        return parse_flag(self.force)

    @property
    def started_at(self) -> str:
        started = str(self.batch_started_at or "")
        return started if started and started != "None" else datetime.now(UTC).isoformat()

    def state_rows(self) -> list[dict[str, Any]]:
        """``sql``'s rows, in one job: the players to request and, with ``check_holder``, the date's claims."""
        params = query_params.prediction_state(
            self.game_date,
            force=self.forced,
            batch_started_at=self.started_at,
            in_flight_seconds=query_params.in_flight_seconds(self.in_flight_minutes),
        )
        hook, batches = self.bigquery_hook, list(self.staged_batches or [self.batch_id])
        query = hook.prediction_state_sql(self.sql, batches, force=self.forced, with_claims=self.check_holder)
        return list(hook.query_rows(query, params))

    def missing_requests(self) -> list[dict[str, Any]]:
        """``player_lookup, game_id, opponent_team_abbr, is_home`` of every player to request."""
        return [row for row in self.state_rows() if row["kind"] == "request"]

    @property
    def correlation_id(self) -> str:
        """Phase 4's correlation id (the event wait's result says it), else the batch id, as the coordinator
        falls back."""
        correlation = self.phase4_event.get("correlation_id") if isinstance(self.phase4_event, dict) else None
        return str(correlation or self.batch_id)

    def wanted_requests(self, context: Any, wanted: list[dict[str, Any]]) -> list[PredictionRequest]:
        """The requests for the ``wanted`` rows (``sql``'s players) in the coordinator's format."""
        batch = check_batch_id(str(self.batch_id))
        lines = self.bigquery_hook.points_lines(self.line_table, self.game_date, [r["player_lookup"] for r in wanted])
        backfill = triggered_by_of_run(context.get("dag_run")) is TriggeredBy.BACKFILL
        mode = "BACKFILL" if backfill else "OVERNIGHT"
        # Naive, as the coordinator writes it (datetime.now().isoformat()); one stamp for the whole batch.
        stamp = datetime.now(UTC).replace(tzinfo=None).isoformat()
        correlation = self.correlation_id
        # A forced batch is a generation of its own (its request ids carry the batch id); a cleared
        # forced run keeps its batch, so what it already sent is not sent again under new ids.
        return [
            PredictionRequest(
                game_date=self.game_date,
                player_lookup=row["player_lookup"],
                game_id=row["game_id"],
                batch_id=batch,
                points_line=lines.get(row["player_lookup"]),
                correlation_id=correlation,
                run_mode=mode,
                timestamp=stamp,
                opponent_team_abbr=row.get("opponent_team_abbr"),
                is_home=row.get("is_home"),
                force=self.forced,
            )
            for row in wanted
        ]

    def players_to_request(self, context: Any) -> list[dict[str, Any]]:
        """The players still to request; skips the task when another live run holds the date's batch."""
        if self.check_holder:
            batch_claims.claim_again_if_cleared(context, self.game_date)
        elif covered(self.coverage):
            self.log.info("The last wait found every prediction in place: nothing to republish")
            return []
        rows = self.state_rows()
        if self.check_holder:
            held_by = batch_claims.holder_among(context, self.game_date, [r for r in rows if r["kind"] == "claim"])
            if held_by:
                # The task's result even though it skips: the run's record says to whom it yielded.
                context["ti"].xcom_push(
                    key="return_value", value={"held_by": held_by.run_id, "batch_id": self.batch_id}
                )
                raise AirflowSkipException(held_by.words(self.game_date))
        return [row for row in rows if row["kind"] == "request"]

    def execute(self, context: Any) -> dict[str, Any]:
        requests = self.wanted_requests(context, self.players_to_request(context))
        batch = str(self.batch_id)
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
            "correlation_id": self.correlation_id,
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
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.pubsub import PublishResult

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
                    total.absorb(result, offset=start)
                    if result.failed:
                        break
                if recording is not None:
                    recording.result()
            finally:
                publisher.stop()
        return total
