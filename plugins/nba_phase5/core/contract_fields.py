"""The Phase 4 event's building blocks: its error, its bounds and its field checks (:mod:`nba_phase5.core.contract`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nba_phase5.core import json_safe

# A real event is ~500 bytes; anything far larger is garbage or abuse and is not parsed at all.
MAX_EVENT_BYTES = 16 * 1024
MAX_PLAYERS = 5_000
# record_count is rows of any Phase 4 table, not players: a bound against garbage only.
MAX_RECORDS = 10_000_000
MAX_DURATION_S = 10_000_000.0
MAX_TEXT = 200
MAX_ERROR_TEXT = 500
MAX_EXTRAS = 20
# Phase 4 precomputes at most a few days ahead; a date further out is a bug upstream.
MAX_DAYS_AHEAD = 30
EARLIEST_GAME_DATE = date(1946, 11, 1)
# Timestamps outside these years are garbage (and 9999-12-31 with an offset overflows on conversion).
TIMESTAMP_YEARS = (2000, 2200)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Names and ids are identifiers, not free text: anything else (quotes, spaces, SQL) is refused.
_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9_.:/+-]+")


class InvalidEventError(ValueError):
    """A Phase 4 event that must not be acted on; ``reason`` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_game_date(value: object, *, today: date | None = None) -> date:
    """A strict ``YYYY-MM-DD`` game date that exists on the calendar and is not absurdly far out."""
    if not isinstance(value, str):
        raise InvalidEventError(f"game_date must be a string YYYY-MM-DD, got {type(value).__name__}")
    if not _DATE_RE.fullmatch(value):
        raise InvalidEventError(f"game_date must be YYYY-MM-DD, got {value[:40]!r}")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidEventError(f"game_date {value!r} is not a calendar date") from None
    today = today or datetime.now(UTC).date()
    if parsed < EARLIEST_GAME_DATE:
        raise InvalidEventError(f"game_date {value} is before the NBA existed")
    if parsed > today + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidEventError(f"game_date {value} is more than {MAX_DAYS_AHEAD} days ahead of {today}")
    return parsed


def check_count(key: str, value: object, limit: int = MAX_PLAYERS) -> None:
    if value is None:
        return
    # bool is an int in Python; true/false is not a count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventError(f"{key} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= limit:
        raise InvalidEventError(f"{key} must be between 0 and {limit}, got {value}")


def check_text(key: str, value: object, *, limit: int = MAX_TEXT, identifier: bool = True) -> None:
    if value is None:
        return
    # Free text (a failed run's error) may be empty; a name or id may not.
    if not isinstance(value, str) or (identifier and not value) or len(value) > limit:
        raise InvalidEventError(f"{key} must be a non-empty string of at most {limit} characters")
    # A known field is refused rather than repaired: no UTF-8 encoder (msgpack, BigQuery) can write it.
    if json_safe.has_surrogate(value):
        raise InvalidEventError(f"{key} holds a lone surrogate (an escape like \\ud800): not Unicode text")
    if identifier and not _IDENTIFIER_RE.fullmatch(value):
        raise InvalidEventError(f"{key} must be an identifier (letters, digits and _ . : / + -)")


def parse_timestamp(value: object, key: str = "timestamp") -> datetime | None:
    """An ISO 8601 timestamp with a UTC offset, in a sane range, as an aware UTC datetime."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidEventError(f"{key} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEventError(f"{key} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidEventError(f"{key} must carry a UTC offset")
    if not TIMESTAMP_YEARS[0] <= parsed.year < TIMESTAMP_YEARS[1]:
        raise InvalidEventError(f"{key} year {parsed.year} is out of range")
    return parsed.astimezone(UTC)


def bounded(values: dict[str, Any], known: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """``values`` minus ``known``, at most :data:`MAX_EXTRAS` keys, made JSON-safe, long values cut to text.

    :mod:`~nba_phase5.core.json_safe` first, so that every hop of the event can encode what is kept.
    Cutting is idempotent (a cut value is a short string, kept as is), so a stored event parses back equal.
    """
    kept: dict[str, Any] = {}
    for raw in sorted(values.keys() - known, key=str)[:MAX_EXTRAS]:
        value = json_safe.value(values[raw])
        if isinstance(value, str):
            value = value[:MAX_TEXT]
        else:
            # Safe values always dump: no NaN, no surrogate, no deep nesting.
            text = json.dumps(value, allow_nan=False)
            if len(text) > MAX_TEXT:
                value = text[:MAX_TEXT]
        kept[json_safe.key(raw)[:64]] = value
    return kept


def load_body(data: bytes | str) -> object:
    """One message body as JSON; raises :class:`InvalidEventError` with the reason, never anything else.

    Size is checked before parsing, and any error of the parser itself (deep nesting → RecursionError,
    huge numbers, odd encodings) is a reason.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if not isinstance(raw, (bytes, bytearray)):
        raise InvalidEventError(f"event body must be bytes, got {type(data).__name__}")
    if not raw:
        raise InvalidEventError("event body is empty")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEventError(f"event body is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidEventError("event body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"event body is not JSON: {exc.msg} at position {exc.pos}") from None
    except (RecursionError, ValueError, MemoryError) as exc:
        raise InvalidEventError(f"event body cannot be parsed: {type(exc).__name__}") from None
