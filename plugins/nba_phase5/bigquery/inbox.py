"""The durable inbox of Phase 4's completion events (``nba_reference.phase5_event_inbox``).

The feature store's ready event is written here, keyed by its message id, before it is acked; the run for its
game date is satisfied by an inbox row, whichever run pulled it. Only this package writes the table; the other
Phase 4 processors' messages are never written here. Why: docs/architecture.md, *Why each module is built as
it is*.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from nba_phase5.bigquery import sql
from nba_phase5.bigquery.bq import query_parameter
from nba_phase5.core.contract import InvalidEventError, Phase4CompletionEvent

ROW_TYPES = (
    ("message_id", "STRING"),
    ("game_date", "DATE"),
    ("received_at", "TIMESTAMP"),
    ("event", "STRING"),
    ("pulled_for_date", "DATE"),
)


@dataclass(frozen=True)
class InboxEntry:
    """One recorded event: what arrived, as which message, and when this package first saw it."""

    message_id: str
    event: Phase4CompletionEvent
    received_at: datetime


def record(hook: Any, entries: list[InboxEntry], *, pulled_for: date) -> None:
    """Write ``entries`` (idempotent per message id); raises if BigQuery did not take them."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud import bigquery

    if not entries:
        return
    values = [
        {
            "message_id": entry.message_id,
            "game_date": entry.event.game_date,
            "received_at": entry.received_at,
            "event": json.dumps(entry.event.to_dict(), separators=(",", ":")),
            "pulled_for_date": pulled_for,
        }
        for entry in entries
    ]
    structs = [
        bigquery.StructQueryParameter(None, *(query_parameter(n, row[n], t) for n, t in ROW_TYPES)) for row in values
    ]
    dates = sorted({entry.event.game_date for entry in entries})
    hook.query_rows(
        sql.render("inbox_record.sql"),
        {
            "rows": bigquery.ArrayQueryParameter("rows", "STRUCT", structs),
            "game_dates": bigquery.ArrayQueryParameter("game_dates", "DATE", dates),
        },
    )


def find(hook: Any, game_date: date) -> InboxEntry | None:
    """The first feature-store ready event recorded for ``game_date``, or None.

    :param hook: the BigQuery hook that runs the query.
    :param game_date: the awaited game date (the table's partition filter).
    """
    rows = hook.query_rows(sql.render("inbox_find.sql"), {"game_date": {"type": "DATE", "value": game_date}})
    for row in rows or []:
        try:
            # Validated before it was written; parsed again so nothing unvalidated ever leaves the inbox.
            event = Phase4CompletionEvent.from_json(row["event"], today=game_date)
        except InvalidEventError:
            continue
        # Only such events are recorded; checked again so a row from any other writer can never start a run.
        if event.is_feature_store and event.is_ready and event.game_date == game_date:
            return InboxEntry(str(row["message_id"]), event, row["received_at"])
    return None
