"""The Phase 4 completion event: the only way any code here reads or writes one.

Parses the platform's unified envelope (docs/platform.md §1.1-§1.2) and the plan's two shapes into
:class:`Phase4CompletionEvent`; only its :attr:`~Phase4CompletionEvent.is_feature_store` and
:attr:`~Phase4CompletionEvent.is_ready` events start predictions, and anything unusable raises
:class:`InvalidEventError` with a ``reason``. The shapes, and what is kept or refused and why:
docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from nba_phase5 import config
from nba_phase5.core import json_safe
from nba_phase5.core.contract_fields import (
    MAX_DURATION_S,
    MAX_ERROR_TEXT,
    MAX_EVENT_BYTES,
    MAX_PLAYERS,
    MAX_RECORDS,
    InvalidEventError,
    bounded,
    check_count,
    check_text,
    load_body,
    parse_game_date,
    parse_timestamp,
)

__all__ = [
    "EVENT_TYPE",
    "MAX_EVENT_BYTES",
    "InvalidEventError",
    "Phase4CompletionEvent",
    "parse_game_date",
    "parse_timestamp",
]

EVENT_TYPE = "phase4_complete"
#: The statuses the platform's publisher sends at all; it refuses to send any other (docs/platform.md §1.1).
ENVELOPE_STATUSES = ("success", "partial", "no_data", "failed")

_REQUIRED = ("event_type", "game_date", "players_ready")
_COUNTS = ("players_ready", "players_total", "players_processed", "players_failed")
_KNOWN = {*_REQUIRED, *_COUNTS, "processor", "run_id", "correlation_id", "timestamp", "completed_at"}
_PLAN_ONLY = (*_COUNTS, "processor", "run_id")
# What the platform's publisher checks before it sends an envelope (docs/platform.md §1.1).
_ENVELOPE_REQUIRED = ("processor_name", "phase", "execution_id", "correlation_id", "game_date", "status", "timestamp")
# Identifiers of the envelope, in the order the publisher builds it (§1.2).
_ENVELOPE_IDS = ("processor_name", "phase", "execution_id", "correlation_id", "output_table", "output_dataset")
_TRACING = ("parent_processor", "trigger_source", "trigger_message_id")
_ENVELOPE_ONLY = (*_ENVELOPE_IDS[1:], "status", "record_count", "records_failed", "duration_seconds", *_TRACING)
_ENVELOPE_KNOWN = {*_ENVELOPE_REQUIRED, *_ENVELOPE_ONLY, "error_message", "error_type", "metadata"}
# Keys that make an object without event_type an envelope (so a missing processor_name is named as such).
_ENVELOPE_MARKERS = {"processor_name", "phase", "execution_id", "status", "output_table", "record_count"}


@dataclass(frozen=True)
class Phase4CompletionEvent:
    """A Phase 4 processor finished for ``game_date``: an envelope (``processor_name`` set) or a plan shape.

    ``correlation_id`` is the envelope's, or the plan's ``run_id`` (the id that traces the pipeline).
    """

    game_date: date
    players_ready: int | None = None
    players_total: int | None = None
    players_processed: int | None = None
    players_failed: int | None = None
    processor: str | None = None
    timestamp: datetime | None = None
    run_id: str | None = None
    processor_name: str | None = None
    phase: str | None = None
    execution_id: str | None = None
    correlation_id: str | None = None
    output_table: str | None = None
    output_dataset: str | None = None
    status: str | None = None
    record_count: int | None = None
    records_failed: int | None = None
    duration_seconds: float | None = None
    parent_processor: str | None = None
    trigger_source: str | None = None
    trigger_message_id: str | None = None
    error_message: str | None = None
    error_type: str | None = None
    metadata: dict[str, Any] | None = field(default=None, hash=False)
    extras: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.timestamp is not None and (not isinstance(self.timestamp, datetime) or self.timestamp.tzinfo is None):
            raise InvalidEventError("timestamp must carry a UTC offset")
        if self.is_envelope:
            self._check_envelope()
        else:
            self._check_plan()
        # Also for an event built in code: what was accepted must encode everywhere (bounded() is idempotent).
        if not isinstance(self.extras, dict):
            raise InvalidEventError("extras must be a JSON object")
        object.__setattr__(self, "extras", bounded(self.extras))
        if self.metadata is not None:
            object.__setattr__(self, "metadata", bounded(self.metadata))

    def _check_plan(self) -> None:
        for key in (*_ENVELOPE_ONLY, "error_message", "error_type", "metadata"):
            if key != "correlation_id" and getattr(self, key) is not None:
                raise InvalidEventError(f"{key} belongs to the envelope, which needs processor_name")
        for key in _COUNTS:
            if getattr(self, key) is None and key != "players_ready":
                continue
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PLAYERS:
                raise InvalidEventError(f"{key} must be an integer between 0 and {MAX_PLAYERS}")
        total = self.total_players
        if total is not None and self.players_ready is not None and self.players_ready > total:
            raise InvalidEventError(f"players_ready ({self.players_ready}) exceeds the total ({total})")
        check_text("processor", self.processor)
        for key in ("run_id", "correlation_id"):
            check_text(key, getattr(self, key))
        if self.run_id and self.correlation_id and self.run_id != self.correlation_id:
            raise InvalidEventError("run_id and correlation_id differ; the plan's shape carries one id")
        # The plan's run_id is its correlation id: one value, whichever name it came under.
        object.__setattr__(self, "run_id", self.run_id or self.correlation_id)
        object.__setattr__(self, "correlation_id", self.run_id)

    def _check_envelope(self) -> None:
        missing = [key for key in _ENVELOPE_REQUIRED if key != "game_date" and getattr(self, key) is None]
        if missing:
            raise InvalidEventError("envelope is missing " + ", ".join(missing))
        for key in _PLAN_ONLY:
            if getattr(self, key) is not None:
                raise InvalidEventError(f"{key} belongs to the plan's shape, not the envelope")
        for key in (*_ENVELOPE_IDS, *_TRACING, "error_type"):
            check_text(key, getattr(self, key))
        check_text("error_message", self.error_message, limit=MAX_ERROR_TEXT, identifier=False)
        if self.error_message is not None:
            # NUL is Unicode, but PostgreSQL's JSONB (XCom, next_kwargs) refuses it: free text, so replaced.
            object.__setattr__(self, "error_message", json_safe.text(self.error_message))
        if self.status not in ENVELOPE_STATUSES:
            raise InvalidEventError(
                f"status must be one of {', '.join(ENVELOPE_STATUSES)}, got {str(self.status)[:40]!r}"
            )
        check_count("record_count", self.record_count, MAX_RECORDS)
        check_count("records_failed", self.records_failed, MAX_RECORDS)
        seconds = self.duration_seconds
        if seconds is not None:
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
                raise InvalidEventError("duration_seconds must be a number")
            if not 0 <= seconds <= MAX_DURATION_S:  # NaN and infinities fail this too
                raise InvalidEventError(f"duration_seconds must be between 0 and {MAX_DURATION_S:.0f}")
            object.__setattr__(self, "duration_seconds", float(seconds))
        if self.metadata is not None and not isinstance(self.metadata, dict):
            raise InvalidEventError("metadata must be a JSON object")

    @property
    def is_envelope(self) -> bool:
        """The platform's unified envelope (``processor_name`` set), not one of the plan's shapes."""
        return self.processor_name is not None

    @property
    def shape(self) -> str:
        """``envelope``, ``plan`` (the guide's full shape) or ``script`` (the manual test shapes)."""
        if self.is_envelope:
            return "envelope"
        plan_only = (self.processor, self.players_processed, self.players_failed, self.run_id, self.timestamp)
        return "plan" if any(v is not None for v in plan_only) else "script"

    @property
    def is_feature_store(self) -> bool:
        """From the feature store: by class name or output table (envelope), by ``processor`` (plan)."""
        if self.is_envelope:
            return self.processor_name == config.PHASE4_PROCESSOR or self.output_table == config.PHASE4_OUTPUT_TABLE
        return self.processor in (None, config.PHASE4_PLAN_PROCESSOR)

    @property
    def is_ready(self) -> bool:
        """The run produced features: a ready status (envelope); the plan's shapes are only sent when ready."""
        return not self.is_envelope or self.status in config.PHASE4_READY_MESSAGE_STATUSES

    @property
    def source(self) -> str:
        """Who sent it, for counts of messages that are not ours: the processor, with any status but success."""
        name = self.processor_name or self.processor or EVENT_TYPE
        return name if self.status in (None, "success") else f"{name}:{self.status}"

    @property
    def total_players(self) -> int | None:
        """``players_total``, else ``players_processed`` (plan), else ``record_count`` (envelope), else unknown."""
        for value in (self.players_total, self.players_processed, self.record_count):
            if value is not None:
                return value
        return None

    @property
    def ready_pct(self) -> float | None:
        total = self.total_players
        if total is None or self.players_ready is None:
            return None
        return 100.0 * self.players_ready / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The event in the shape it was parsed from (only the fields it has), unknown fields included."""
        body: dict[str, Any] = dict(self.extras)
        if self.is_envelope:
            keys: tuple[str, ...] = (*_ENVELOPE_IDS[:4], "game_date", *_ENVELOPE_IDS[4:], "status", "record_count")
            keys += ("records_failed", "timestamp", "duration_seconds", *_TRACING, "error_message", "error_type")
            keys += ("metadata",)
        else:
            body["event_type"] = EVENT_TYPE
            keys = ("game_date", "processor", "players_processed", "players_total", "players_ready")
            keys += ("players_failed", "run_id", "timestamp")
        for key in keys:
            value = getattr(self, key)
            if isinstance(value, (date, datetime)):
                value = value.isoformat()
            if value is not None:
                body[key] = value
        return body

    def to_json(self) -> bytes:
        # Strict JSON: the contract never holds NaN or a surrogate, and this would say so loudly.
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, *, today: date | None = None) -> Phase4CompletionEvent:
        """Parse and validate one message body; raises :class:`InvalidEventError` (with the reason), nothing else."""
        payload = load_body(data)
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
        if "processor_name" in payload or ("event_type" not in payload and payload.keys() & _ENVELOPE_MARKERS):
            return cls._from_envelope(payload, today=today)
        missing = [key for key in _REQUIRED if key not in payload]
        if missing:
            raise InvalidEventError("event is missing " + ", ".join(missing))
        if payload["event_type"] != EVENT_TYPE:
            raise InvalidEventError(f"event_type must be {EVENT_TYPE!r}, got {str(payload['event_type'])[:40]!r}")
        for key in _COUNTS:
            check_count(key, payload.get(key))
        timestamp = parse_timestamp(payload.get("timestamp"), "timestamp") or parse_timestamp(
            payload.get("completed_at"), "completed_at"
        )
        # Earlier versions of this package said correlation_id for the plan's run_id.
        known = {key: payload.get(key) for key in (*_PLAN_ONLY, "correlation_id")}
        game_date = parse_game_date(payload["game_date"], today=today)
        return cls(game_date=game_date, timestamp=timestamp, extras=bounded(payload, _KNOWN), **known)

    @classmethod
    def _from_envelope(cls, payload: dict[str, Any], *, today: date | None) -> Phase4CompletionEvent:
        # The publisher drops None values before sending (docs/platform.md §1.2): a null counts as missing.
        missing = [key for key in _ENVELOPE_REQUIRED if payload.get(key) is None]
        if missing:
            raise InvalidEventError("envelope is missing " + ", ".join(missing))
        metadata = payload.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidEventError("metadata must be a JSON object")
        error = payload.get("error_message")
        known = {key: payload.get(key) for key in (*_ENVELOPE_IDS, *_ENVELOPE_ONLY[5:], "error_type")}
        return cls(
            game_date=parse_game_date(payload["game_date"], today=today),
            timestamp=parse_timestamp(payload["timestamp"]),
            # A failed run's error text is free text: kept, cut to a bound (cutting twice changes nothing).
            error_message=error[:MAX_ERROR_TEXT] if isinstance(error, str) else error,
            metadata=None if metadata is None else bounded(metadata),
            extras=bounded(payload, _ENVELOPE_KNOWN),
            **known,
        )
