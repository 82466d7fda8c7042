"""Phase 4's side of the hand-off, for the local stack: its run-history row and its completion event.

The real Phase 4 (the ``ml_feature_store_v2`` processor) writes a ``processor_run_history`` row and
then publishes, JSON with no attributes (PLATFORM.md §1)::

    {"event_type": "phase4_complete", "processor": "ml_feature_store_v2", "game_date": "2025-11-28",
     "players_processed": 450, "players_ready": 418, "players_failed": 0,
     "timestamp": "2025-11-28T07:17:00+00:00", "run_id": "seed-20251128"}

:func:`build_event` builds exactly that shape, through the contract the DAG's sensor validates with.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bq import run_query
from nba_phase5.contract import Phase4CompletionEvent

if TYPE_CHECKING:
    from google.cloud import bigquery
    from google.cloud.pubsub_v1 import PublisherClient

log = logging.getLogger(__name__)

COUNT_READY_SQL = """
SELECT
  COUNTIF(is_production_ready) AS players_ready,
  COUNT(*) AS players_total
FROM `{table}`
WHERE game_date = @game_date
"""
LATEST_RUN_SQL = """
SELECT run_id
FROM `{table}`
WHERE data_date = @game_date AND processor_name = @processor
ORDER BY processed_at DESC
LIMIT 1
"""


def count_production_ready(client: bigquery.Client, game_date: date) -> tuple[int, int]:
    """(production-ready players, all players) in the feature store for ``game_date``."""
    sql = COUNT_READY_SQL.format(table=f"{client.project}.{config.FEATURE_STORE_TABLE}")
    row = run_query(client, sql, {"game_date": game_date})[0]
    return int(row["players_ready"] or 0), int(row["players_total"] or 0)


def latest_run_id(client: bigquery.Client, game_date: date) -> str | None:
    """Phase 4's latest run id for ``game_date`` (what its event carries as ``run_id``), if it ran."""
    sql = LATEST_RUN_SQL.format(table=f"{client.project}.{config.RUN_HISTORY_TABLE}")
    rows = run_query(client, sql, {"game_date": game_date, "processor": config.PHASE4_PROCESSOR})
    return str(rows[0]["run_id"]) if rows else None


def run_history_row(
    game_date: date,
    *,
    run_id: str,
    status: str,
    started_at: datetime,
    processed_at: datetime,
    players_processed: int,
    players_ready: int,
    players_failed: int,
    season_year: int,
) -> dict[str, Any]:
    """Phase 4's ``processor_run_history`` row in the shared table's production columns (§4)."""
    dataset, table = config.FEATURE_STORE_TABLE.split(".")
    return {
        "processor_name": config.PHASE4_PROCESSOR,
        "run_id": run_id,
        "status": status,
        "data_date": game_date,
        "started_at": started_at,
        "processed_at": processed_at,
        "duration_seconds": (processed_at - started_at).total_seconds(),
        "records_processed": players_processed,
        "records_created": players_processed,
        "season_year": season_year,
        "phase": "phase_4",
        "triggered_by": "scheduler",
        "trigger_source": "scheduler",
        "output_dataset": dataset,
        "output_table": table,
        # Processors keep their own figures in the JSON summary; the table has no column for them.
        "summary": {
            "players_processed": players_processed,
            "players_ready": players_ready,
            "players_failed": players_failed,
        },
    }


def build_event(
    game_date: date,
    players_ready: int,
    players_processed: int,
    *,
    players_failed: int = 0,
    run_id: str | None = None,
    timestamp: datetime | None = None,
) -> Phase4CompletionEvent:
    """The event as the real Phase 4 publisher sends it; ``timestamp`` defaults to now.

    Raises :class:`~nba_phase5.contract.InvalidEventError` for impossible counts, so they are never
    published.
    """
    return Phase4CompletionEvent(
        game_date=game_date,
        players_ready=players_ready,
        players_processed=players_processed,
        players_failed=players_failed,
        processor=config.PHASE4_PROCESSOR,
        timestamp=timestamp or datetime.now(UTC).replace(microsecond=0),
        run_id=run_id,
    )


def publish_completion_event(
    publisher: PublisherClient,
    project: str,
    event: Phase4CompletionEvent,
    *,
    timeout: float = 30.0,
) -> str:
    """Publish ``event`` to ``nba-phase4-precompute-complete`` and return its message id.

    The body is the event's JSON and nothing else: the real publisher sets no attributes, so
    subscribers must not depend on any.
    """
    topic = publisher.topic_path(project, config.PHASE4_COMPLETE_TOPIC)
    message_id: str = publisher.publish(topic, event.to_json()).result(timeout=timeout)
    log.info(
        "Published Phase 4 completion for %s (%d/%s ready) as message %s",
        event.game_date,
        event.players_ready,
        event.total_players,
        message_id,
    )
    return message_id
