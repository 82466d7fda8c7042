"""What Phase 4 calls when its feature store is written: the plan's ``_publish_completion_event``.

Phase 4 (the ``ml_feature_store_v2`` processor) imports this module, so the event it publishes is built
by the same contract the DAG's sensor validates with.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

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


def count_production_ready(client: bigquery.Client, game_date: date) -> tuple[int, int]:
    """(production-ready players, all players) in the feature store for ``game_date``."""
    sql = COUNT_READY_SQL.format(table=f"{client.project}.{config.FEATURE_STORE_TABLE}")
    row = run_query(client, sql, {"game_date": game_date})[0]
    return int(row["players_ready"] or 0), int(row["players_total"] or 0)


def publish_completion_event(
    publisher: PublisherClient,
    project: str,
    event: Phase4CompletionEvent,
    *,
    timeout: float = 30.0,
) -> str:
    """Publish ``event`` to ``nba-phase4-precompute-complete`` and return its message id.

    Attributes duplicate ``event_type`` and ``game_date`` so subscribers can filter without parsing.
    """
    topic = publisher.topic_path(project, config.PHASE4_COMPLETE_TOPIC)
    future = publisher.publish(
        topic,
        event.to_json(),
        event_type="phase4_complete",
        game_date=event.game_date.isoformat(),
    )
    message_id: str = future.result(timeout=timeout)
    log.info(
        "Published Phase 4 completion for %s (%d/%d ready) as message %s",
        event.game_date,
        event.players_ready,
        event.players_total,
        message_id,
    )
    return message_id


def build_event(
    game_date: date,
    players_ready: int,
    players_total: int,
    *,
    correlation_id: str | None = None,
) -> Phase4CompletionEvent:
    """The event as Phase 4 sends it: processor name and completion time filled in."""
    return Phase4CompletionEvent(
        game_date=game_date,
        players_ready=players_ready,
        players_total=players_total,
        processor=config.PHASE4_PROCESSOR,
        completed_at=datetime.now(UTC).replace(microsecond=0),
        correlation_id=correlation_id,
    )
