"""Prediction requests: one Pub/Sub message per (player, prop type), identical however often it is built.

``request_id`` is a UUID5 of (game_date, player_lookup, prop_type), so a republished request carries
the same id and workers can deduplicate on it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date

from nba_phase5 import config

REQUEST_NAMESPACE = uuid.UUID("5f0c6f3e-6b1a-4f43-9a8e-3d1f0a6b7c21")


def request_id(game_date: date | str, player_lookup: str, prop_type: str) -> str:
    return str(uuid.uuid5(REQUEST_NAMESPACE, f"{game_date}:{player_lookup}:{prop_type}"))


def batch_id(game_date: date | str, run_id: str) -> str:
    """One id per DAG run and game date, for tracing a batch through workers' logs."""
    return f"{game_date}:{run_id}"


@dataclass(frozen=True)
class PredictionRequest:
    game_date: str
    player_lookup: str
    prop_type: str
    batch_id: str
    project: str

    @property
    def request_id(self) -> str:
        return request_id(self.game_date, self.player_lookup, self.prop_type)

    def body(self) -> bytes:
        return json.dumps(
            {
                "game_date": self.game_date,
                "player_lookup": self.player_lookup,
                "prop_types": [self.prop_type],
                "batch_id": self.batch_id,
                "request_id": self.request_id,
                "features": {
                    "table": f"{self.project}.{config.FEATURE_STORE_TABLE}",
                    "game_date": self.game_date,
                    "player_lookup": self.player_lookup,
                },
            },
            separators=(",", ":"),
        ).encode("utf-8")

    def attributes(self) -> dict[str, str]:
        return {"game_date": self.game_date, "player_lookup": self.player_lookup, "request_id": self.request_id}
