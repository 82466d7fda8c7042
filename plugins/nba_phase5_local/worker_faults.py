"""Faults the local worker injects on purpose, for demos and tests: never part of a real worker's job.

``drop_rate`` acks a request without staging it or sending its ready message (a reproducible set given
``seed``; a request dropped once is never dropped again, so a republished one gets through), ``delay_ms``
slows every pull, and ``crash_after`` exits the process hard mid-pull (nothing of the pull staged or acked).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
#: The exit status of a crash on purpose.
CRASH_EXIT_STATUS = 3


@dataclass
class WorkerFaults:
    """The faults one worker injects (all off by default)."""

    drop_rate: float = 0.0
    seed: int = 0
    delay_ms: int = 0
    crash_after: int | None = None
    _dropped_once: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_rate <= 1.0:
            raise ValueError("drop_rate must be between 0 and 1")

    def should_drop(self, request_id: str) -> bool:
        """Reproducible for a seed; never the same request twice, so a republished one gets through."""
        if self.drop_rate <= 0 or request_id in self._dropped_once:
            return False
        digest = hashlib.sha256(f"{self.seed}:{request_id}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 < self.drop_rate:
            self._dropped_once.add(request_id)
            return True
        return False

    def delay(self) -> None:
        """Slow the batch down by ``delay_ms``."""
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000.0)

    def crash_if_due(self, received: int) -> None:
        """Exit hard once more than ``crash_after`` messages were received, as a real crash would."""
        if self.crash_after is not None and received > self.crash_after:
            log.error("crash_after=%d reached: exiting hard", self.crash_after)
            os._exit(CRASH_EXIT_STATUS)
