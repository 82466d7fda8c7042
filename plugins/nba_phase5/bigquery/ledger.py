"""The publish ledger (``nba_reference.phase5_request_ledger``, this package's own table).

Every request Pub/Sub accepted (and every publish still unanswered at the hook's timeout, as ``unconfirmed``)
is streamed in, keyed by request and message id, before the publishing task can finish;
``missing_requests.sql`` and ``prediction_coverage.sql`` do not request again a player whose request is
younger than the in-flight window. Why: docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from nba_phase5 import config
from nba_phase5.core.prediction_requests import PredictionRequest


@dataclass(frozen=True)
class LedgerEntry:
    """One accepted request."""

    request: PredictionRequest
    message_id: str
    accepted_at: float

    def row(self, task_id: str) -> dict[str, Any]:
        return {
            "game_date": self.request.game_date,
            "player_lookup": self.request.player_lookup,
            "game_id": self.request.game_id,
            "batch_id": self.request.batch_id,
            "task_id": task_id,
            "request_id": self.request.request_id,
            "message_id": self.message_id,
            "force": self.request.force,
            "published_at": _iso(self.accepted_at),
        }


@lru_cache(maxsize=64)
def _iso(timestamp: float) -> str:
    # A chunk's requests share one acceptance time: format it once, not 2,500 times.
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


#: The message id recorded for a publish still unanswered at the hook's timeout: it may yet be accepted,
#: so it counts as in flight like any other.
UNCONFIRMED = "unconfirmed"


class LedgerWriteError(RuntimeError):
    """Pub/Sub accepted requests the ledger could not record."""


def record(client: Any, entries: Sequence[LedgerEntry], task_id: str) -> int:
    """Record ``entries`` in the ledger; raises :class:`LedgerWriteError` if any row is refused."""
    if not entries:
        return 0
    table = f"{client.project}.{config.REQUEST_LEDGER_TABLE}"
    errors = client.insert_rows_json(
        table,
        [entry.row(task_id) for entry in entries],
        row_ids=[f"{entry.request.request_id}:{entry.message_id}" for entry in entries],
    )
    if errors:
        raise LedgerWriteError(
            f"{len(errors)} of {len(entries)} accepted requests could not be recorded in {table}: {errors[:3]}"
        )
    return len(entries)
