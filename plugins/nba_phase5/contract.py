"""The Phase 4 completion event: the only way any code here reads or writes one.

Three shapes reach the trigger subscription (PLATFORM.md §1), and all three are accepted:

* the real Phase 4 publisher's::

    {"event_type": "phase4_complete", "processor": "ml_feature_store_v2", "game_date": "2025-11-28",
     "players_processed": 450, "players_ready": 418, "players_failed": 2,
     "timestamp": "2025-11-28T07:17:00+00:00", "run_id": "abc-123"}

* the seed's manual test: ``{"event_type", "game_date", "players_ready", "players_total"}``;
* the infrastructure script's test: ``{"event_type", "game_date", "players_ready"}``.

Known fields are strictly typed and bounded; unknown fields (a later Phase 4 may add some) are
ignored for decisions and kept in :attr:`Phase4CompletionEvent.extras` for the run's record. Total
players = ``players_total``, else ``players_processed``, else unknown (the gate counts them in
BigQuery). Anything unusable raises :class:`InvalidEventError`, whose ``reason`` says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

EVENT_TYPE = "phase4_complete"
# A real event is ~250 bytes; anything far larger is garbage or abuse and is not parsed at all.
MAX_EVENT_BYTES = 16 * 1024
MAX_PLAYERS = 5_000
MAX_TEXT = 200
MAX_EXTRAS = 20
# Phase 4 precomputes at most a few days ahead; a date further out is a bug upstream.
MAX_DAYS_AHEAD = 30
EARLIEST_GAME_DATE = date(1946, 11, 1)
# Timestamps outside these years are garbage (and 9999-12-31 with an offset overflows on conversion).
TIMESTAMP_YEARS = (2000, 2200)

_REQUIRED = ("event_type", "game_date", "players_ready")
_COUNTS = ("players_ready", "players_total", "players_processed", "players_failed")
_TEXTS = ("processor", "run_id", "correlation_id")
_TIMESTAMPS = ("timestamp", "completed_at")
_KNOWN = {*_REQUIRED, *_COUNTS, *_TEXTS, *_TIMESTAMPS}
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# processor and run ids are identifiers, not free text: anything else (quotes, spaces, SQL) is refused.
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


def _count(payload: dict[str, Any], key: str) -> int | None:
    value = payload.get(key)
    if value is None and key != "players_ready":
        return None
    # bool is an int in Python; true/false is not a count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventError(f"{key} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= MAX_PLAYERS:
        raise InvalidEventError(f"{key} must be between 0 and {MAX_PLAYERS}, got {value}")
    return value


def _text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise InvalidEventError(f"{key} must be a non-empty string of at most {MAX_TEXT} characters")
    if not _IDENTIFIER_RE.fullmatch(value):
        raise InvalidEventError(f"{key} must be an identifier (letters, digits and _ . : / + -)")
    return value


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


def _extras(payload: dict[str, Any]) -> dict[str, Any]:
    """Unknown fields, kept (bounded) for the run's record; never used for a decision."""
    kept: dict[str, Any] = {}
    for key in sorted(str(k) for k in payload.keys() - _KNOWN)[:MAX_EXTRAS]:
        value = payload[key]
        text = json.dumps(value, default=str)
        kept[key[:64]] = value if len(text) <= MAX_TEXT else text[:MAX_TEXT]
    return kept


@dataclass(frozen=True)
class Phase4CompletionEvent:
    """Phase 4 finished precomputing features for ``game_date``."""

    game_date: date
    players_ready: int
    players_total: int | None = None
    players_processed: int | None = None
    players_failed: int | None = None
    processor: str | None = None
    timestamp: datetime | None = None
    run_id: str | None = None
    extras: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for key in _COUNTS:
            value = getattr(self, key)
            if value is None and key != "players_ready":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PLAYERS:
                raise InvalidEventError(f"{key} must be an integer between 0 and {MAX_PLAYERS}")
        total = self.total_players
        if total is not None and self.players_ready > total:
            raise InvalidEventError(f"players_ready ({self.players_ready}) exceeds the total ({total})")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            raise InvalidEventError("timestamp must carry a UTC offset")

    @property
    def total_players(self) -> int | None:
        """``players_total``, else ``players_processed``, else unknown."""
        return self.players_total if self.players_total is not None else self.players_processed

    @property
    def ready_pct(self) -> float | None:
        total = self.total_players
        if total is None:
            return None
        return 100.0 * self.players_ready / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The event as the real Phase 4 publisher sends it (only the fields this event has)."""
        body: dict[str, Any] = {**self.extras, "event_type": EVENT_TYPE, "game_date": self.game_date.isoformat()}
        for key in ("processor", "players_processed", "players_total", "players_ready", "players_failed", "run_id"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        if self.timestamp is not None:
            body["timestamp"] = self.timestamp.isoformat()
        return body

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, *, today: date | None = None) -> Phase4CompletionEvent:
        """Parse and validate one message body; raises :class:`InvalidEventError` with the reason.

        Nothing in a body can raise anything else: size is checked before parsing, and any error of the
        parser itself (deep nesting → RecursionError, huge numbers, odd encodings) is a reason.
        """
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if not isinstance(raw, (bytes, bytearray)):
            raise InvalidEventError(f"event body must be bytes, got {type(data).__name__}")
        if not raw:
            raise InvalidEventError("event body is empty")
        if len(raw) > MAX_EVENT_BYTES:
            raise InvalidEventError(f"event body is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidEventError("event body is not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise InvalidEventError(f"event body is not JSON: {exc.msg} at position {exc.pos}") from None
        except (RecursionError, ValueError, MemoryError) as exc:
            raise InvalidEventError(f"event body cannot be parsed: {type(exc).__name__}") from None
        try:
            return cls.from_dict(payload, today=today)
        except InvalidEventError:
            raise
        except Exception as exc:
            raise InvalidEventError(f"event body is unusable: {type(exc).__name__}") from None

    @classmethod
    def from_dict(cls, payload: object, *, today: date | None = None) -> Phase4CompletionEvent:
        if not isinstance(payload, dict):
            raise InvalidEventError(f"event must be a JSON object, got {type(payload).__name__}")
        missing = [key for key in _REQUIRED if key not in payload]
        if missing:
            raise InvalidEventError("event is missing " + ", ".join(missing))
        if payload["event_type"] != EVENT_TYPE:
            raise InvalidEventError(f"event_type must be {EVENT_TYPE!r}, got {str(payload['event_type'])[:40]!r}")
        # The real publisher says run_id; earlier versions of this package said correlation_id.
        run_id = _text(payload, "run_id") or _text(payload, "correlation_id")
        timestamp = parse_timestamp(payload.get("timestamp"), "timestamp") or parse_timestamp(
            payload.get("completed_at"), "completed_at"
        )
        return cls(
            game_date=parse_game_date(payload["game_date"], today=today),
            players_ready=_count(payload, "players_ready"),  # type: ignore[arg-type]
            players_total=_count(payload, "players_total"),
            players_processed=_count(payload, "players_processed"),
            players_failed=_count(payload, "players_failed"),
            processor=_text(payload, "processor"),
            timestamp=timestamp,
            run_id=run_id,
            extras=_extras(payload),
        )
