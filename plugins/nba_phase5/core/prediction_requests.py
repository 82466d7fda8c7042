"""Prediction requests: one Pub/Sub message per ready player, in the coordinator's format (docs/platform.md §7).

The body is the coordinator's JSON object, field by field (docs/platform.md §7.2-§7.3): the 29 fields it
always sends, its line rules (``[round(line, 1)]``, or ``[None]`` with ``NO_PROP_LINE``; 20.0 nudged off),
``batch_id`` and ``correlation_id``. Beside it travels one attribute, ``request_id`` (UUID5), for the publish
ledger. Why each choice: docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from functools import cached_property

REQUEST_NAMESPACE = uuid.UUID("5f0c6f3e-6b1a-4f43-9a8e-3d1f0a6b7c21")
#: The coordinator's run modes; the workers write the request's to every row.
RUN_MODES = ("OVERNIGHT", "EARLY", "SAME_DAY", "BACKFILL")
#: The workers refuse a row whose line is exactly this (validation check 1).
REFUSED_LINE = 20.0
NO_PROP_LINE = "NO_PROP_LINE"
ACTUAL_PROP = "ACTUAL_PROP"
#: The 29 fields the coordinator always sends, in its order (docs/platform.md §7.2, fields 1-25 and 30-33).
BODY_FIELDS = (
    "player_lookup",
    "game_date",
    "game_id",
    "line_values",
    "team_abbr",
    "opponent_team_abbr",
    "is_home",
    "projected_minutes",
    "has_prop_line",
    "actual_prop_line",
    "line_source",
    "estimated_line_value",
    "estimation_method",
    "line_source_api",
    "sportsbook",
    "was_line_fallback",
    "line_minutes_before_game",
    "needs_bootstrap",
    "kalshi_available",
    "kalshi_line",
    "kalshi_yes_price",
    "kalshi_no_price",
    "kalshi_liquidity",
    "kalshi_market_ticker",
    "line_discrepancy",
    "batch_id",
    "timestamp",
    "correlation_id",
    "prediction_run_mode",
)


def request_id(game_date: date | str, player_lookup: str, generation: str | None = None) -> str:
    key = f"{game_date}:{player_lookup}" + (f":{generation}" if generation else "")
    return str(uuid.uuid5(REQUEST_NAMESPACE, key))


def line_fields(points_line: float | None) -> dict[str, object]:
    """The line fields of a request for a player whose base line is ``points_line`` (None: no line)."""
    if points_line is None:
        return {
            "line_values": [None],
            "has_prop_line": False,
            "actual_prop_line": None,
            "line_source": NO_PROP_LINE,
            "line_source_api": None,
            "sportsbook": None,
        }
    raw = float(points_line)
    line = round(raw, 1)
    if line == REFUSED_LINE:
        # The coordinator nudges up when the line itself is 20 or more, else down (its player_loader.py 602-605).
        line = REFUSED_LINE + 0.5 if raw >= REFUSED_LINE else REFUSED_LINE - 0.5
    return {
        "line_values": [line],
        "has_prop_line": True,
        "actual_prop_line": line,
        "line_source": ACTUAL_PROP,
        "line_source_api": None,
        "sportsbook": None,
    }


@dataclass(frozen=True)
class PredictionRequest:
    """One player's request in a batch.

    :param game_date: ISO game date.
    :param player_lookup: the player's key.
    :param game_id: the player's game.
    :param batch_id: the batch (a staging-table-safe id, :func:`nba_phase5.core.staging.check_batch_id`).
    :param points_line: the player's base points line, or None when he has none.
    :param correlation_id: Phase 4's correlation id, else the batch id.
    :param run_mode: one of :data:`RUN_MODES`.
    :param timestamp: when the batch built the request (naive ISO, as the coordinator writes it).
    :param opponent_team_abbr: the opponent, when the feature store has it.
    :param is_home: whether the player is at home, when the feature store has it.
    :param force: a new generation (its request ids carry the batch id).
    """

    game_date: str
    player_lookup: str
    game_id: str
    batch_id: str
    points_line: float | None = None
    correlation_id: str | None = None
    run_mode: str = "OVERNIGHT"
    timestamp: str = ""
    opponent_team_abbr: str | None = None
    is_home: bool | None = None
    force: bool = False

    @cached_property
    def request_id(self) -> str:
        return request_id(self.game_date, self.player_lookup, self.batch_id if self.force else None)

    def fields(self) -> dict[str, object]:
        """The body as a dict, every one of :data:`BODY_FIELDS` present."""
        body: dict[str, object] = {
            "player_lookup": self.player_lookup,
            "game_date": self.game_date,
            "game_id": self.game_id,
            "team_abbr": None,
            "opponent_team_abbr": self.opponent_team_abbr,
            "is_home": self.is_home,
            "projected_minutes": 0.0,
            **line_fields(self.points_line),
            "estimated_line_value": None,
            "estimation_method": None,
            "was_line_fallback": False,
            "line_minutes_before_game": None,
            "needs_bootstrap": False,
            "kalshi_available": False,
            "kalshi_line": None,
            "kalshi_yes_price": None,
            "kalshi_no_price": None,
            "kalshi_liquidity": None,
            "kalshi_market_ticker": None,
            "line_discrepancy": None,
            "batch_id": self.batch_id,
            "timestamp": self.timestamp,
            "correlation_id": self.correlation_id or self.batch_id,
            "prediction_run_mode": self.run_mode,
        }
        return {name: body[name] for name in BODY_FIELDS}

    def body(self) -> bytes:
        return json.dumps(self.fields(), separators=(",", ":")).encode("utf-8")

    def attributes(self) -> dict[str, str]:
        """Tracing only (the workers read the body): the request id the ledger keys on."""
        return {"request_id": self.request_id}
