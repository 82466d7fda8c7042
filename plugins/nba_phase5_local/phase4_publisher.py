"""Phase 4's side of the hand-off, for the local stack: its run-history row and its completion message.

Phase 4's feature store (``MLFeatureStoreProcessor``) writes a ``processor_run_history`` row and then
publishes the platform's unified envelope, JSON with no attributes (docs/platform.md §1.2, §3.3); the four
other Phase 4 processors publish the same envelope on the same topic (§1.3). :func:`build_envelope`
builds it as the platform's publisher does; :func:`build_event` and :func:`build_message` also build the
planning guide's shapes (§1.5), which the DAG still accepts for manual tests. Everything is built through
the contract the DAG's trigger validates with.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bigquery.bq import run_query
from nba_phase5.core.contract import InvalidEventError, Phase4CompletionEvent

if TYPE_CHECKING:
    from google.cloud import bigquery
    from google.cloud.pubsub_v1 import PublisherClient

log = logging.getLogger(__name__)

_FEATURE_STORE_DATASET = config.FEATURE_STORE_TABLE.split(".")[0]
#: The five Phase 4 processors publishing on the topic: class name → (output_table, output_dataset) (§1.3).
PHASE4_PROCESSORS: dict[str, tuple[str, str]] = {
    config.PHASE4_PROCESSOR: (config.PHASE4_OUTPUT_TABLE, _FEATURE_STORE_DATASET),
    "PlayerDailyCacheProcessor": ("player_daily_cache", "nba_precompute"),
    "PlayerCompositeFactorsProcessor": ("player_composite_factors", "nba_precompute"),
    "PlayerShotZoneAnalysisProcessor": ("player_shot_zone_analysis", "nba_precompute"),
    "TeamDefenseZoneAnalysisProcessor": ("team_defense_zone_analysis", "nba_precompute"),
}
#: What :func:`build_message` can build: the platform's envelope, the plan's shape, the scripts' shape.
SHAPES = ("envelope", "plan", "script")

COUNT_READY_SQL = """
SELECT
  COUNTIF(is_production_ready) AS players_ready,
  COUNT(*) AS players_total
FROM `{table}`
WHERE game_date = @game_date
"""
LATEST_RUN_SQL = """
SELECT run_id, duration_seconds
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


def latest_run(client: bigquery.Client, game_date: date) -> dict[str, Any] | None:
    """Phase 4's latest run-history row for ``game_date`` (``run_id``, ``duration_seconds``), if it ran."""
    sql = LATEST_RUN_SQL.format(table=f"{client.project}.{config.RUN_HISTORY_TABLE}")
    rows = run_query(client, sql, {"game_date": game_date, "processor": config.PHASE4_PROCESSOR})
    return dict(rows[0]) if rows else None


def latest_run_id(client: bigquery.Client, game_date: date) -> str | None:
    """Phase 4's latest run id for ``game_date`` (what the plan's shape carries as ``run_id``), if it ran."""
    run = latest_run(client, game_date)
    return str(run["run_id"]) if run else None


def new_execution_id() -> str:
    """A processor's own 8-hex run id, as Phase 4 mints one (``str(uuid4())[:8]``, docs/platform.md §1.2)."""
    return uuid.uuid4().hex[:8]


def phase4_run_id(started_at: datetime, *, seed: str | None = None) -> str:
    """Phase 4's run-history ``run_id``: ``MLFeatureStoreProcessor_{YYYYmmdd_HHMMSS}_{8hex}`` (§3.3).

    :param started_at: when the run started.
    :param seed: derive the 8 hex digits from this text (a reproducible seeded day); default random.
    """
    suffix = hashlib.sha256(seed.encode()).hexdigest()[:8] if seed else new_execution_id()
    return f"{config.PHASE4_PROCESSOR}_{started_at:%Y%m%d_%H%M%S}_{suffix}"


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
    """Phase 4's ``processor_run_history`` row in the shared table's production columns (§3.3, §4)."""
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
        "phase": config.PHASE4_PHASE,
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


def build_envelope(
    game_date: date,
    *,
    record_count: int,
    processor: str = config.PHASE4_PROCESSOR,
    status: str = "success",
    correlation_id: str | None = None,
    execution_id: str | None = None,
    duration_seconds: float = 0.0,
    rows_skipped: int = 0,
    trigger_source: str = "manual",
    timestamp: datetime | None = None,
) -> Phase4CompletionEvent:
    """The completion envelope as a Phase 4 processor publishes it (§1.2), validated by the contract.

    :param game_date: the date Phase 4 processed.
    :param record_count: rows the processor wrote (the feature store: one per player).
    :param processor: one of :data:`PHASE4_PROCESSORS`; default the feature store.
    :param status: success (the only status the platform sends in practice), partial, no_data or failed.
    :param correlation_id: the trigger's correlation id; default the new execution id, as Phase 4 does.
    :param execution_id: the processor's 8-hex run id; default a new one.
    :param duration_seconds: the run's total runtime (``metadata.total_runtime`` too).
    :param rows_skipped: ``metadata.rows_skipped``.
    :param trigger_source: what started the run; the platform's default is ``manual``.
    :param timestamp: when it finished; default now (UTC, with microseconds, as the platform sends it).
    """
    if processor not in PHASE4_PROCESSORS:
        raise InvalidEventError(f"processor must be one of {', '.join(PHASE4_PROCESSORS)}, got {processor!r}")
    output_table, output_dataset = PHASE4_PROCESSORS[processor]
    execution_id = execution_id or new_execution_id()
    runtime = float(duration_seconds)
    return Phase4CompletionEvent(
        game_date=game_date,
        processor_name=processor,
        phase=config.PHASE4_PHASE,
        execution_id=execution_id,
        correlation_id=correlation_id or execution_id,
        output_table=output_table,
        output_dataset=output_dataset,
        status=status,
        record_count=record_count,
        records_failed=0,
        timestamp=timestamp or datetime.now(UTC),
        duration_seconds=runtime,
        trigger_source=trigger_source,
        metadata={"total_runtime": runtime, "rows_processed": record_count, "rows_skipped": rows_skipped},
    )


def build_event(
    game_date: date,
    players_ready: int,
    players_processed: int,
    *,
    players_failed: int = 0,
    run_id: str | None = None,
    timestamp: datetime | None = None,
    processor: str = config.PHASE4_PLAN_PROCESSOR,
) -> Phase4CompletionEvent:
    """The planning guide's shape (§1.5), which no production code publishes; ``timestamp`` defaults to now.

    Raises :class:`~nba_phase5.core.contract.InvalidEventError` for impossible counts, so they are never
    published. The platform's real message is :func:`build_envelope`'s.
    """
    return Phase4CompletionEvent(
        game_date=game_date,
        players_ready=players_ready,
        players_processed=players_processed,
        players_failed=players_failed,
        processor=processor,
        timestamp=timestamp or datetime.now(UTC).replace(microsecond=0),
        run_id=run_id,
    )


def check_status(shape: str, status: str) -> None:
    """Only the envelope carries a status: another shape with one other than success is refused."""
    if shape != "envelope" and status != "success":
        raise InvalidEventError(f"the {shape} shape has no status; only the envelope carries {status!r}")


def build_message(
    game_date: date,
    *,
    shape: str,
    players_ready: int,
    players_total: int,
    processor: str = config.PHASE4_PROCESSOR,
    status: str = "success",
    run_id: str | None = None,
    duration_seconds: float = 0.0,
) -> Phase4CompletionEvent:
    """One completion message in ``shape`` (see :data:`SHAPES`), for the command line and tests.

    :param game_date: the date Phase 4 processed.
    :param shape: ``envelope`` (the platform's), ``plan`` or ``script`` (``{event_type, game_date, players_ready}``).
    :param players_ready: production-ready players (the plan's shapes carry it; checked against the total).
    :param players_total: players written: the envelope's ``record_count``, the plan's ``players_processed``.
    :param processor: the sending processor's class name (the plan's shape names its output table instead).
    :param status: the envelope's status; the plan's shapes have none.
    :param run_id: the envelope's correlation id, or the plan's run id.
    :param duration_seconds: the envelope's runtime.
    """
    if shape not in SHAPES:
        raise InvalidEventError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    if players_ready > players_total:
        raise InvalidEventError(f"players_ready ({players_ready}) exceeds the total ({players_total})")
    if shape == "envelope":
        return build_envelope(
            game_date,
            record_count=players_total,
            processor=processor,
            status=status,
            correlation_id=run_id,
            duration_seconds=duration_seconds,
        )
    check_status(shape, status)
    if processor not in PHASE4_PROCESSORS:
        raise InvalidEventError(f"processor must be one of {', '.join(PHASE4_PROCESSORS)}, got {processor!r}")
    if shape == "script":
        return Phase4CompletionEvent(game_date=game_date, players_ready=players_ready)
    plan_name = PHASE4_PROCESSORS[processor][0]  # the plan names the processor by its output table
    return build_event(game_date, players_ready, players_total, run_id=run_id, processor=plan_name)


def publish_completion_event(
    publisher: PublisherClient,
    project: str,
    event: Phase4CompletionEvent,
    *,
    timeout: float = 30.0,
) -> str:
    """Publish ``event`` to ``nba-phase4-precompute-complete`` and return its message id.

    The body is the event's JSON and nothing else: the real publisher sets no attributes (§1.1), so
    subscribers must not depend on any.
    """
    topic = publisher.topic_path(project, config.PHASE4_COMPLETE_TOPIC)
    message_id: str = publisher.publish(topic, event.to_json()).result(timeout=timeout)
    log.info(
        "Published %s's completion for %s (%s shape, status %s, %s rows) as message %s",
        event.processor_name or event.processor or "Phase 4",
        event.game_date,
        event.shape,
        event.status or "-",
        event.total_players,
        message_id,
    )
    return message_id
