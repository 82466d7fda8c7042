"""The Phase 4 completion event: the only way any code here reads or writes one.

Wire format (JSON object, UTF-8)::

    {"event_type": "phase4_complete", "game_date": "2025-11-28",
     "players_ready": 420, "players_total": 450}

plus optional ``processor`` and ``correlation_id`` (identifiers: letters, digits, ``_ . : / -``) and
``completed_at`` (ISO 8601 with offset).
Anything else is rejected with :class:`InvalidEventError`, whose ``reason`` says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

EVENT_TYPE = "phase4_complete"
# A real event is ~200 bytes; anything far larger is garbage or abuse and is not parsed at all.
MAX_EVENT_BYTES = 16 * 1024
MAX_PLAYERS = 5_000
MAX_TEXT = 200
# Phase 4 precomputes at most a few days ahead; a date further out is a bug upstream.
MAX_DAYS_AHEAD = 30
EARLIEST_GAME_DATE = date(1946, 11, 1)

_REQUIRED = {"event_type", "game_date", "players_ready", "players_total"}
_OPTIONAL = {"processor", "completed_at", "correlation_id"}
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# processor and correlation_id are identifiers, not free text: anything else (quotes, spaces, SQL) is refused.
_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9_.:/-]+")


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


def _count(payload: dict[str, Any], key: str) -> int:
    value = payload[key]
    # bool is an int in Python; true/false is not a count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventError(f"{key} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= MAX_PLAYERS:
        raise InvalidEventError(f"{key} must be between 0 and {MAX_PLAYERS}, got {value}")
    return value


def _text(payload: dict[str, Any], key: str, *, identifier: bool = False) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise InvalidEventError(f"{key} must be a non-empty string of at most {MAX_TEXT} characters")
    if identifier and not _IDENTIFIER_RE.fullmatch(value):
        raise InvalidEventError(f"{key} must be an identifier (letters, digits and _ . : / -)")
    return value


@dataclass(frozen=True)
class Phase4CompletionEvent:
    """Phase 4 finished precomputing features for ``game_date``."""

    game_date: date
    players_ready: int
    players_total: int
    processor: str | None = None
    completed_at: datetime | None = None
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        for key in ("players_ready", "players_total"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PLAYERS:
                raise InvalidEventError(f"{key} must be an integer between 0 and {MAX_PLAYERS}")
        if self.players_ready > self.players_total:
            raise InvalidEventError(
                f"players_ready ({self.players_ready}) exceeds players_total ({self.players_total})"
            )
        if self.completed_at is not None and self.completed_at.tzinfo is None:
            raise InvalidEventError("completed_at must carry a UTC offset")

    @property
    def ready_pct(self) -> float:
        return 100.0 * self.players_ready / self.players_total if self.players_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_type": EVENT_TYPE,
            "game_date": self.game_date.isoformat(),
            "players_ready": self.players_ready,
            "players_total": self.players_total,
        }
        if self.processor is not None:
            body["processor"] = self.processor
        if self.completed_at is not None:
            body["completed_at"] = self.completed_at.isoformat()
        if self.correlation_id is not None:
            body["correlation_id"] = self.correlation_id
        return body

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, *, today: date | None = None) -> Phase4CompletionEvent:
        """Parse and validate one message body; raises :class:`InvalidEventError` with the reason."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
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
        return cls.from_dict(payload, today=today)

    @classmethod
    def from_dict(cls, payload: object, *, today: date | None = None) -> Phase4CompletionEvent:
        if not isinstance(payload, dict):
            raise InvalidEventError(f"event must be a JSON object, got {type(payload).__name__}")
        missing = sorted(_REQUIRED - payload.keys())
        if missing:
            raise InvalidEventError("event is missing " + ", ".join(missing))
        unknown = sorted(str(k)[:40] for k in payload.keys() - _REQUIRED - _OPTIONAL)
        if unknown:
            raise InvalidEventError("event has unknown fields: " + ", ".join(unknown[:5]))
        if payload["event_type"] != EVENT_TYPE:
            raise InvalidEventError(f"event_type must be {EVENT_TYPE!r}, got {str(payload['event_type'])[:40]!r}")
        completed_at = _text(payload, "completed_at")
        completed: datetime | None = None
        if completed_at is not None:
            try:
                completed = datetime.fromisoformat(completed_at.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidEventError("completed_at is not an ISO 8601 timestamp") from None
        return cls(
            game_date=parse_game_date(payload["game_date"], today=today),
            players_ready=_count(payload, "players_ready"),
            players_total=_count(payload, "players_total"),
            processor=_text(payload, "processor", identifier=True),
            completed_at=completed,
            correlation_id=_text(payload, "correlation_id", identifier=True),
        )
