"""How the Phase 4 trigger sorts what it pulls: ours to record, others' to count, garbage to report.

Pure functions of the message bodies (no I/O), so they are tested without Pub/Sub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from nba_phase5.bigquery.inbox import InboxEntry
from nba_phase5.config import DAG_TIMEZONE
from nba_phase5.core.contract import InvalidEventError, Phase4CompletionEvent

MAX_REPORTED = 10
# A ready event published at most this long after its game date is a re-run of that day's Phase 4 (say,
# with more players ready), not a backfill of an old date (backfills publish too: docs/platform.md §1.1).
RERUN_WINDOW_DAYS = 1
# Other processors' messages are counted per sender in the final event; at most this many keys, the
# last being OTHERS_OVERFLOW for any further senders (a bound on what the trigger event carries).
MAX_OTHER_KEYS = 10
OTHERS_OVERFLOW = "(more)"


@dataclass
class Sorted:
    """One pull's messages, sorted: events to record, and what to ack once they are recorded."""

    entries: list[InboxEntry] = field(default_factory=list)
    ack_after_record: list[str] = field(default_factory=list)
    ack_now: list[str] = field(default_factory=list)


def count_other(others: dict[str, int], event: Phase4CompletionEvent) -> None:
    """Count one message that is not ours under its sender (bounded to :data:`MAX_OTHER_KEYS` keys)."""
    key = event.source[:64]
    if key not in others and len(others) >= MAX_OTHER_KEYS - 1:
        key = OTHERS_OVERFLOW
    others[key] = others.get(key, 0) + 1


def classify(data: bytes, game_date: date, *, today: date | None = None) -> tuple[str, str | Phase4CompletionEvent]:
    """Sort one message: ``match``, ``other``, ``stale`` or ``ignored`` (a valid event), or ``invalid`` (a reason).

    All five Phase 4 processors publish on the topic (docs/platform.md §1.3): only the feature store's
    message with a ready status (``success``/``partial``) can end a wait. The others, and the feature
    store's ``failed``/``no_data`` messages, are valid but ``ignored``: acked, counted, never recorded.
    Every ready feature-store event is kept for its own date's run, whichever run pulls it: a run waiting
    for tomorrow must not drop today's event, and today's run must not drop the event of a past date that
    a manual rerun (or the staging check) is waiting for. ``stale`` marks an event dated before both today
    (Eastern) and the awaited date: Phase 4 backfills publish too (§1.1), and backfills don't trigger
    predictions, so it starts nothing; it is only there for a run that waits for that date.

    :param data: the message body.
    :param game_date: the awaited game date.
    :param today: today's date (Eastern) for tests; default now.
    """
    try:
        event = Phase4CompletionEvent.from_json(data, today=today)
    except InvalidEventError as exc:
        return "invalid", exc.reason
    if not (event.is_feature_store and event.is_ready):
        return "ignored", event
    today_et = today or datetime.now(ZoneInfo(DAG_TIMEZONE)).date()
    if event.game_date < min(game_date, today_et):
        return "stale", event
    return ("match" if event.game_date == game_date else "other"), event


def rerun_of_its_day(event: Phase4CompletionEvent) -> bool:
    """Whether a ready event was published within ``RERUN_WINDOW_DAYS`` of its game date (Eastern)."""
    if event.timestamp is None:
        return False
    published = event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=UTC)
    return 0 <= (published.astimezone(ZoneInfo(DAG_TIMEZONE)).date() - event.game_date).days <= RERUN_WINDOW_DAYS


def note_late(late: list[dict[str, Any]], message_id: str, event: Phase4CompletionEvent) -> None:
    """Keep a ready event of another date that may have come after that date's batch (bounded)."""
    if len(late) < MAX_REPORTED and rerun_of_its_day(event):
        players = event.record_count if event.record_count is not None else event.players_ready
        stamp = event.timestamp.isoformat() if event.timestamp else None
        late.append(
            {"message_id": message_id, "game_date": event.game_date.isoformat(), "players": players, "at": stamp}
        )


def sort_messages(
    log: Any,
    messages: list[Any],
    target: date,
    rejected: list[dict[str, str]],
    others: dict[str, int] | None = None,
    late: list[dict[str, Any]] | None = None,
) -> Sorted:
    """Decide each pulled message's fate.

    :param log: the logger to report each decision on.
    :param messages: the pull's received messages.
    :param target: the awaited game date.
    :param rejected: unusable messages are added here (bounded); each raises the run's warning.
    :param others: valid messages that are not ours are counted here per sender (bounded).
    :param late: ready events of other dates, published soon after their date, are noted here (bounded):
        the task checks whether they came after that date's batch.
    """
    result = Sorted()
    now = datetime.now(UTC)
    for received in messages:
        kind, detail = classify(received.message.data, target)
        message_id = received.message.message_id
        if kind == "ignored" and isinstance(detail, Phase4CompletionEvent):
            # Another processor's completion, or the feature store's failed/no_data: normal traffic.
            result.ack_now.append(received.ack_id)
            count_other(others if others is not None else {}, detail)
            log.info(
                "Message %s (%s for %s) is not the feature store's ready event: acked",
                message_id,
                detail.source,
                detail.game_date,
            )
            continue
        if isinstance(detail, Phase4CompletionEvent):
            result.entries.append(InboxEntry(message_id, detail, now))
            result.ack_after_record.append(received.ack_id)
            if kind != "match":
                note_late(late if late is not None else [], message_id, detail)
                log.info(
                    "Event %s for %s recorded for its own run%s",
                    message_id,
                    detail.game_date,
                    " (a past date: it starts nothing)" if kind == "stale" else "",
                )
            continue
        result.ack_now.append(received.ack_id)
        log.warning("Dropped unusable message %s: %s", message_id, detail)
        if len(rejected) < MAX_REPORTED:
            rejected.append({"message_id": message_id, "reason": str(detail)[:300]})
    return result
