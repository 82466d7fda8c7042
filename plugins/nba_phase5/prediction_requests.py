"""Prediction requests: one Pub/Sub message per ready player, in the workers' format (PLATFORM.md §7).

Body (JSON, what the production workers parse)::

    {"player_lookup": "lebronjames", "game_date": "2025-11-28", "game_id": "0022500301",
     "line_values": [25.5]}

``line_values`` holds the player's points lines from the configured line table, or ``[]`` when no line
table is set (the workers then predict without a line: ``NO_LINE``). Tracing fields travel as message
attributes, never in the body: ``request_id``, ``batch_id``, ``game_date``, ``player_lookup`` and, for
a ``force`` run, ``force=true`` (the worker then supersedes the player's active prediction).

``request_id`` is a UUID5 of (game_date, player_lookup): a republished request carries the same id.
A ``force`` request adds its batch id, so every forced run is a new generation of requests (a cleared
forced run keeps its ids: what it already sent is not sent again under new ones).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

REQUEST_NAMESPACE = uuid.UUID("5f0c6f3e-6b1a-4f43-9a8e-3d1f0a6b7c21")
BODY_FIELDS = ("player_lookup", "game_date", "game_id", "line_values")


def request_id(game_date: date | str, player_lookup: str, generation: str | None = None) -> str:
    key = f"{game_date}:{player_lookup}" + (f":{generation}" if generation else "")
    return str(uuid.uuid5(REQUEST_NAMESPACE, key))


def batch_id(game_date: date | str, run_id: str) -> str:
    """One id per DAG run and game date, for tracing a batch through workers' logs."""
    return f"{game_date}:{run_id}"


@dataclass(frozen=True)
class PredictionRequest:
    game_date: str
    player_lookup: str
    game_id: str
    batch_id: str
    line_values: Sequence[float] = field(default_factory=tuple)
    force: bool = False

    @cached_property
    def request_id(self) -> str:
        return request_id(self.game_date, self.player_lookup, self.batch_id if self.force else None)

    def body(self) -> bytes:
        return json.dumps(
            {
                "player_lookup": self.player_lookup,
                "game_date": self.game_date,
                "game_id": self.game_id,
                "line_values": [float(v) for v in self.line_values],
            },
            separators=(",", ":"),
        ).encode("utf-8")

    def attributes(self) -> dict[str, str]:
        attributes = {
            "request_id": self.request_id,
            "batch_id": self.batch_id,
            "game_date": self.game_date,
            "player_lookup": self.player_lookup,
        }
        if self.force:
            attributes["force"] = "true"
        return attributes
