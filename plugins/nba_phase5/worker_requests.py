"""The workers' request message: its body ``{player_lookup, game_date, game_id, line_values}`` and its
attributes (PLATFORM.md §7), parsed and bounded before anything is written.

A request is validated strictly before any write, so no value of a message can fail the batch's MERGE:
text fields must be short, encodable UTF-8 without control characters (a lone surrogate such as
``"\\ud800"`` parses as JSON but stalls BigQuery's client in retries), line values must be points lines
(0-200; 1e300 or a 400-digit integer is refused here, not by the MERGE's NUMERIC cast).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from nba_phase5.prediction_requests import request_id as derive_request_id

MAX_LINE_VALUES = 20
MAX_LINE_VALUE = 200.0
MAX_TEXT_CHARS = 100
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class WorkerRequest:
    """One prediction request: the workers' body plus the tracing attributes."""

    request_id: str
    game_date: str
    player_lookup: str
    game_id: str
    line_values: tuple[float, ...] = ()
    batch_id: str | None = None
    force: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.game_date, self.player_lookup


def _text(body: Mapping[str, object], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"{key} must be a non-empty string of at most {MAX_TEXT_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{key} is not valid Unicode text (a lone surrogate)") from None
    if _CONTROL_RE.search(value):
        raise ValueError(f"{key} holds control characters")
    return value


def _line_values(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) > MAX_LINE_VALUES:
        raise ValueError(f"line_values must be a list of at most {MAX_LINE_VALUES} numbers")
    lines = []
    for item in value:
        # bool is an int in Python; true is not a line.
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            raise ValueError("line_values must hold numbers")
        try:
            line = float(item)
        except OverflowError:  # an integer too big for a float
            line = math.inf
        if not 0.0 <= line <= MAX_LINE_VALUE:  # NaN fails too
            raise ValueError(f"line value {line:.6g} is out of range (0 to {MAX_LINE_VALUE:g})")
        lines.append(line)
    return tuple(lines)


def parse_request(data: bytes, attributes: Mapping[str, str]) -> WorkerRequest:
    """The request in a message; :class:`ValueError` says why a message is unusable.

    A body published without attributes (by hand, as the workers accept) still works: its request id
    is derived as the coordinator derives it, and it is not forced.
    """
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ValueError(f"body is not JSON: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    game_date = _text(body, "game_date")
    try:
        # fullmatch first: fromisoformat alone also takes 20251128 and other ISO spellings.
        if not _DATE_RE.fullmatch(game_date):
            raise ValueError
        date.fromisoformat(game_date)
    except ValueError:
        raise ValueError(f"game_date {game_date[:20]!r} is not YYYY-MM-DD") from None
    player_lookup = _text(body, "player_lookup")
    return WorkerRequest(
        request_id=attributes.get("request_id") or derive_request_id(game_date, player_lookup),
        game_date=game_date,
        player_lookup=player_lookup,
        game_id=_text(body, "game_id"),
        line_values=_line_values(body.get("line_values", [])),
        batch_id=attributes.get("batch_id"),
        force=attributes.get("force", "").lower() == "true",
    )
