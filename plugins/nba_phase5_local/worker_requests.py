"""The workers' request body, read as the platform's worker reads it (docs/platform.md §7.2, §7.4).

The worker requires ``player_lookup``, ``game_date`` and ``game_id`` (a missing one: 204, dropped), reads a
few more with defaults and ignores the rest; every message ends in an :class:`Answer`, 204 (acked) or 500
(nacked, dead-lettered after 5 deliveries). What the bytes alone can tell is answered here, the rest in
:mod:`nba_phase5_local.worker_answers`; of the attributes only ``request_id`` is read, for the logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from nba_phase5.core.prediction_requests import request_id as derive_request_id

#: The worker's answers: 204 acks the message, 500 makes Pub/Sub redeliver it.
ACK, RETRY = 204, 500
#: WK 810, 812, 792: the defaults of ``has_prop_line``, ``line_source`` and ``prediction_run_mode``.
DEFAULT_HAS_PROP_LINE = True
DEFAULT_LINE_SOURCE = "ACTUAL_PROP"
DEFAULT_RUN_MODE = "OVERNIGHT"
#: BSW 157: a ``dataset_prefix`` names ``{prefix}_nba_predictions``; only these characters make a dataset
#: name, so any other prefix fails the worker's first query (an error: 500).
_DATASET_PREFIX_RE = re.compile(r"[A-Za-z0-9_]{1,900}")


@dataclass(frozen=True)
class WorkerRequest:
    """One request as the worker holds it: the body's values as sent (JSON types, unchecked)."""

    request_id: str
    player_lookup: Any
    #: As sent (the ready message echoes it); :attr:`game_day` is what ``strptime`` made of it.
    game_date: str
    game_day: date
    game_id: Any
    line_values: Any = ()
    batch_id: Any = None
    correlation_id: Any = None
    prediction_run_mode: Any = DEFAULT_RUN_MODE
    has_prop_line: Any = DEFAULT_HAS_PROP_LINE
    actual_prop_line: Any = None
    line_source: Any = DEFAULT_LINE_SOURCE
    line_source_api: Any = None
    dataset_prefix: Any = ""

    @property
    def feature_key(self) -> tuple[str, str]:
        """The feature row it reads: ``(game_date as YYYY-MM-DD, player_lookup)``."""
        return self.game_day.isoformat(), str(self.player_lookup)


@dataclass(frozen=True)
class Answer:
    """What the worker answers one message, and what it does on the way.

    ``rows`` are staged before a 204 counts (a failed load turns it into a 500); ``ready`` is the
    prediction-ready message published after the 204 (docs/platform.md §7.7), or None.
    """

    status: int
    reason: str
    request: WorkerRequest | None = None
    rows: tuple[dict[str, Any], ...] = ()
    ready: dict[str, Any] | None = None
    #: The batch part of the staging table's name (the batch id, or ``fallback_{epoch_ms}``).
    staging_batch: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def acked(self) -> bool:
        return self.status == ACK


def error_answer(request: WorkerRequest, exc: BaseException, *, today: date) -> Answer:
    """WK 1013-1059: any other exception is 500, but 204 for a game more than a day before ``today``.

    :param request: the request being handled.
    :param exc: what was raised.
    :param today: the worker's UTC date.
    """
    status = ACK if request.game_day < today - timedelta(days=1) else RETRY
    return Answer(status, f"error: {type(exc).__name__}: {str(exc)[:200]}", request)


def _body(data: bytes) -> dict[str, Any] | Answer:
    """The JSON object in ``data``, or the answer to a message that holds none."""
    if not data:
        # WK 764, 993-1012: a push envelope without message.data raises KeyError, answered 204.
        return Answer(ACK, "no message data")
    try:
        # WK 764-765: base64-decoded, decoded as UTF-8, json.loads; any failure is answered 500.
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        return Answer(RETRY, f"body is not JSON: {type(exc).__name__}")
    if not isinstance(body, dict):
        # WK 767: request_data.get(...) on a list or a string raises AttributeError: 500.
        return Answer(RETRY, "body is not a JSON object")
    return body


def parse_request(data: bytes, *, attributes: Mapping[str, str] | None = None) -> WorkerRequest | Answer:
    """The request in a message's data, or the worker's answer when the bytes alone decide it.

    :param data: the message's data, as published.
    :param attributes: the message's attributes (only ``request_id`` is read, for tracing).
    """
    body = _body(data)
    if isinstance(body, Answer):
        return body
    # WK 774-779: request_data['player_lookup'], ['game_date'], ['game_id']: a KeyError is answered 204.
    missing = [key for key in ("player_lookup", "game_date", "game_id") if key not in body]
    if missing:
        return Answer(ACK, "missing field " + ", ".join(missing))
    game_date = body["game_date"]
    try:
        # WK 837: strptime, exactly (it also takes 2025-1-5); a str that does not parse, or no str: 500.
        game_day = datetime.strptime(game_date, "%Y-%m-%d").date()
    except (TypeError, ValueError) as exc:
        return Answer(RETRY, f"game_date {str(game_date)[:40]!r} is not YYYY-MM-DD ({type(exc).__name__})")
    traced = (attributes or {}).get("request_id") or _derived_id(game_date, body["player_lookup"])
    return WorkerRequest(
        request_id=traced,
        player_lookup=body["player_lookup"],
        game_date=game_date,
        game_day=game_day,
        game_id=body["game_id"],
        # WK 790: `request_data.get('line_values') or []`: null, absent or empty is no line at all.
        line_values=body.get("line_values") or [],
        batch_id=body.get("batch_id"),
        correlation_id=body.get("correlation_id"),
        prediction_run_mode=body.get("prediction_run_mode", DEFAULT_RUN_MODE),
        has_prop_line=body.get("has_prop_line", DEFAULT_HAS_PROP_LINE),
        actual_prop_line=body.get("actual_prop_line"),
        line_source=body.get("line_source", DEFAULT_LINE_SOURCE),
        line_source_api=body.get("line_source_api"),
        dataset_prefix=body.get("dataset_prefix", ""),
    )


def _derived_id(game_date: str, player_lookup: Any) -> str:
    """The fan-out's request id for a body without the attribute (``ascii()`` for text UTF-8 cannot carry)."""
    player = player_lookup if isinstance(player_lookup, str) else str(player_lookup)
    try:
        return derive_request_id(game_date, player)
    except UnicodeEncodeError:
        return derive_request_id(game_date, ascii(player))


def queryable(request: WorkerRequest) -> str | None:
    """Why the worker's queries for ``request`` would fail (its catch-all answers that), or None.

    The stand-in reads a whole pull's features in one query, so a value that would fail it is kept out:
    a player or game that is not text (UTF-8 encodable: a lone surrogate parses as JSON but no query can
    carry it), or a dataset prefix that names no dataset.

    :param request: the parsed request.
    """
    for name in ("player_lookup", "game_id"):
        value = getattr(request, name)
        if not isinstance(value, str):
            return f"{name} is {type(value).__name__}, not text"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{name} is not valid Unicode text (a lone surrogate)"
    prefix = request.dataset_prefix
    if prefix and not (isinstance(prefix, str) and _DATASET_PREFIX_RE.fullmatch(prefix)):
        return f"dataset_prefix {str(prefix)[:40]!r} names no dataset"
    return None


def dataset(request: WorkerRequest, *, name: str) -> str:
    """``name``, or ``{prefix}_{name}`` for a request with a ``dataset_prefix`` (BSW 157; checked by
    :func:`queryable` first).

    :param request: the parsed request.
    :param name: the production dataset, e.g. ``nba_predictions``.
    """
    return f"{request.dataset_prefix}_{name}" if request.dataset_prefix else name
