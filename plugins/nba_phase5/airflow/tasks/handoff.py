"""The hand-off to Phase 6: one completion message per batch, and the asset event Airflow DAGs run on.

A ``success`` or ``partial`` batch is announced once on ``nba-phase5-predictions-complete`` in the
coordinator's envelope (docs/platform.md §9.1) and recorded in ``phase5_handoffs``, which every later try
reads first; one Phase 6 would drop (docs/platform.md §9.2) is skipped with a warning, and a backfill
announces nothing. Why, and the one window in which it can announce twice: docs/architecture.md, *Why each
module is built as it is*.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Asset, AssetAlias
from airflow.sdk.exceptions import AirflowSkipException

from nba_phase5 import config
from nba_phase5.airflow.hooks import bigquery_hook
from nba_phase5.airflow.notifications import warn
from nba_phase5.airflow.tasks.run_history import OUTPUT_DATASET, OUTPUT_TABLE
from nba_phase5.bigquery import sql
from nba_phase5.core.alert_kinds import AlertKind
from nba_phase5.core.states import FINISHED_STATUSES

#: Phase 6's own gates (docs/platform.md §9.2): a partial batch below this completion is not exported ...
PHASE6_MIN_COMPLETION_PCT = 80.0
#: ... nor a date with fewer predictions than this.
PHASE6_MIN_PREDICTIONS = 10


def completion_message(row: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """The platform's completion envelope for the run-history ``row`` ``record_batch_run`` wrote."""
    figures = json.loads(row["summary"]) if isinstance(row.get("summary"), str) else dict(row.get("summary") or {})
    batch = figures.get("batch_id") or row["run_id"]
    predicted, missing = int(figures.get("completed") or 0), int(figures.get("failed") or 0)
    message = {
        "processor_name": config.PHASE5_PROCESSOR,
        "phase": config.COMPLETION_PHASE,
        "execution_id": batch,
        "correlation_id": figures.get("correlation_id") or batch,
        "game_date": str(row["data_date"]),
        "output_table": OUTPUT_TABLE,
        "output_dataset": OUTPUT_DATASET,
        "status": row["status"],
        "record_count": predicted,
        "records_failed": missing,
        "timestamp": now.isoformat(),
        "duration_seconds": row.get("duration_seconds"),
        "trigger_source": "automatic",
        "metadata": {
            "batch_id": batch,
            "expected_players": figures.get("expected"),
            "completed_players": predicted,
            "completed_predictions": predicted,
            "total_predictions": figures.get("total_predictions"),
            "completion_pct": figures.get("completion_percentage"),
            "airflow_run_id": row["run_id"],
            "degraded": figures.get("degraded"),
        },
    }
    return {key: value for key, value in message.items() if value is not None}


def phase6_refusal(message: dict[str, Any], count_rows: Any = None) -> str | None:
    """Why Phase 6 would drop ``message`` (docs/platform.md §9.2), or None when it would export.

    Phase 6 counts every prediction row of the date (all systems, active or not). Each predicted player
    has at least one, so the rows are counted (``count_rows()``) only when fewer than 10 players were.
    """
    metadata = message.get("metadata") or {}
    pct = metadata.get("completion_pct")
    pct = 100.0 if pct is None else float(pct)
    predicted = int(metadata.get("completed_predictions") or 0)
    if message["status"] == "partial" and pct < PHASE6_MIN_COMPLETION_PCT:
        return f"the batch is partial at {pct:.1f} %, below Phase 6's {PHASE6_MIN_COMPLETION_PCT:.0f} %"
    if predicted == 0 and pct < PHASE6_MIN_COMPLETION_PCT:
        return f"no prediction completed and completion is {pct:.1f} %"
    if predicted < PHASE6_MIN_PREDICTIONS:
        rows = int(count_rows()) if count_rows is not None else predicted
        if rows < PHASE6_MIN_PREDICTIONS:
            return f"the date has {rows} prediction rows, Phase 6 needs {PHASE6_MIN_PREDICTIONS}"
    return None


def prediction_rows(hook: Any, game_date: str) -> int:
    """Every prediction row of ``game_date`` (``prediction_rows.sql``), as Phase 6 counts them."""
    rows = hook.query_rows(sql.render("prediction_rows.sql"), {"game_date": {"type": "DATE", "value": game_date}})
    return int(rows[0]["prediction_rows"])


def already_announced(hook: Any, game_date: str, batch_id: str) -> dict[str, Any] | None:
    """The hand-off row of ``batch_id`` on ``game_date``, if it was announced."""
    rows = hook.query_rows(
        sql.render("handoff_find.sql"),
        {"game_date": {"type": "DATE", "value": game_date}, "batch_id": {"type": "STRING", "value": batch_id}},
    )
    return rows[0] if rows else None


def record_announcement(client: Any, message: dict[str, Any], message_id: str, run_id: str) -> None:
    """Write the batch's hand-off row (a streaming insert, de-duplicated on the batch id)."""
    table = f"{client.project}.{config.HANDOFF_TABLE}"
    row = {
        "game_date": message["game_date"],
        "batch_id": message["execution_id"],
        "run_id": run_id,
        "status": message["status"],
        "message_id": message_id,
        "published_at": datetime.now(UTC).isoformat(),
    }
    errors = client.insert_rows_json(table, [row], row_ids=[message["execution_id"]])
    if errors:
        raise RuntimeError(
            f"batch {message['execution_id']} was announced (message {message_id}) but not recorded "
            f"in {table}: {errors[:3]}"
        )


def predictions_asset_uri(*, project: str) -> str:
    """The predictions table as an asset URI, in the Google provider's scheme for a BigQuery table:
    ``bigquery://project/dataset/table`` (its handler, ``airflow.providers.google.assets.bigquery``,
    checks that form), which OpenLineage reads as the table ``project.dataset.table`` itself.

    :param project: the project the hand-off's BigQuery connection works in.
    """
    dataset, table = config.PREDICTIONS_TABLE.split(".")
    return f"bigquery://{project}/{dataset}/{table}"


def predictions_asset(*, project: str) -> Any:
    """The predictions table of ``project`` as an asset, named ``config.PREDICTIONS_ASSET_NAME``.

    Built at run time, by the hand-off, through :func:`predictions_asset_alias`: its project is the
    connection's, which a DAG file cannot know while it is parsed, and a ``bigquery://`` URI built while
    parsing would make every parse load each provider's URI handlers (0.5-1.5 s; docs/benchmarks.md).

    :param project: the project the hand-off's BigQuery connection works in.
    """
    return Asset(name=config.PREDICTIONS_ASSET_NAME, uri=predictions_asset_uri(project=project))


def predictions_asset_alias() -> Any:
    """The stable name a finished batch is announced under: the hand-off's ``outlets`` and Phase 6's
    ``schedule``. Each announcement adds an event for :func:`predictions_asset` through it (Airflow's
    pattern for an asset whose URI is only known at run time)."""
    return AssetAlias(name=config.PREDICTIONS_ASSET_NAME)


def announce(context: Any, row: dict[str, Any] | None) -> dict[str, Any]:
    """Announce this run's batch to Phase 6, once; skip (no message, no asset event) otherwise."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from nba_phase5.airflow.hooks.pubsub import BatchPublishHook

    status = (row or {}).get("status")
    if row is None or status not in FINISHED_STATUSES:
        raise AirflowSkipException(f"Nothing to hand off to Phase 6: the run ended {status or 'unrecorded'}")
    if row.get("backfill_mode"):
        # The platform's publisher skips downstream in backfill mode: a backfilled date starts no export.
        raise AirflowSkipException("Backfill run: the platform does not start Phase 6 from backfills")
    message = completion_message(row, now=datetime.now(UTC))
    hook = bigquery_hook()
    refusal = phase6_refusal(message, lambda: prediction_rows(hook, message["game_date"]))
    if refusal:
        words = f"Batch {message['execution_id']} for {message['game_date']} is not handed to Phase 6: {refusal}"
        warn(context, AlertKind.handoff_refused, f"{words}, so Phase 6 would not export it")
        raise AirflowSkipException(words)
    earlier = already_announced(hook, message["game_date"], message["execution_id"])
    if earlier:
        raise AirflowSkipException(
            f"Batch {message['execution_id']} was already announced to Phase 6 "
            f"(message {earlier['message_id']}, run {earlier['run_id']})"
        )
    publisher = BatchPublishHook(gcp_conn_id=config.GCP_CONN_ID)
    result = publisher.publish_batch(
        project_id=hook.project_id,
        topic=config.PHASE5_COMPLETE_TOPIC,
        messages=[(json.dumps(message, default=str).encode(), {})],
        timeout=60.0,
    )
    if not result.accepted:
        # Not known to be accepted (an unanswered publish is not resent by the hook): the task's retry
        # looks again, and announces the batch if nothing says it was.
        raise RuntimeError(f"Pub/Sub did not accept the Phase 6 hand-off: {result.errors}")
    message_id = result.accepted[0][1]
    record_announcement(hook.get_client(project_id=hook.project_id), message, message_id, str(context["run_id"]))
    extra = {"game_date": message["game_date"], "status": message["status"], "batch_id": message["execution_id"]}
    asset = predictions_asset(project=hook.project_id)
    context["outlet_events"][predictions_asset_alias()].add(asset, extra={**extra, "message_id": message_id})
    return {**extra, "message_id": message_id, "topic": config.PHASE5_COMPLETE_TOPIC}
