"""Trigger that waits in the triggerer for Phase 4's completion event for one game date."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from nba_phase5 import config
from nba_phase5.airflow.triggers.phase4_messages import (
    MAX_OTHER_KEYS,
    MAX_REPORTED,
    Sorted,
    classify,
    count_other,
    sort_messages,
)
from nba_phase5.bigquery import inbox
from nba_phase5.bigquery.inbox import InboxEntry
from nba_phase5.core.states import TriggerStatus

# Re-exported: tests and tools import them from the trigger's module.
__all__ = ["MAX_OTHER_KEYS", "MAX_REPORTED", "Phase4EventTrigger", "Sorted", "classify", "count_other"]

# Consecutive Pub/Sub or inbox failures (transient ones) before the wait gives up: about a minute of
# jittered backoff, then the run takes the backup path with a warning instead of failing the day.
MAX_CONSECUTIVE_ERRORS = 6
BACKOFF_CAP_S = 20.0
# Once the run has been warned, a trigger that tolerates errors keeps trying this often until its deadline.
TOLERANT_RETRY_S = 60.0
# Another run's trigger may record this date's event (runs for several dates can wait at once): look
# in the inbox at start, after recording an event for this date, and at least this often.
INBOX_CHECK_INTERVAL_S = 300.0


class Phase4EventTrigger(BaseTrigger):
    """Waits until the durable inbox holds a valid Phase 4 event for ``game_date``, or ``deadline`` passes.

    It looks in the inbox first (an event another run pulled, or one this run pulled before a crash
    or a clear), then pulls ``subscription`` in small batches. Every feature-store ready event, for any
    date, is written to the inbox *before* it is acked; duplicates collapse on the message id. The other
    Phase 4 processors' messages and the feature store's non-ready ones are acked at once and counted
    per sender in the final event's ``others``; unusable messages are acked, logged and reported in the
    final event's ``rejected`` (so the run raises one warning). Pub/Sub or inbox errors are retried with
    jittered backoff; a missing or forbidden subscription, or errors that persist, end the wait with
    ``status='unavailable'``: the run takes the backup path. It pulls at least once before honouring a
    deadline already in the past.

    :param project_id: Google Cloud project of the subscription.
    :param subscription: subscription name (not the full path).
    :param game_date: ISO date of the event to wait for.
    :param deadline: ISO timestamp (with offset) after which the trigger gives up.
    :param poke_interval: seconds between pulls that returned nothing useful.
    :param pull_timeout: seconds one long-poll pull may block.
    :param max_messages: messages per pull (small: every body is validated in the shared triggerer).
    :param gcp_conn_id: Airflow connection to Google Cloud.
    :param impersonation_chain: optional service account(s) to impersonate.
    :param tolerate_errors: never end early on errors: retry every minute until the deadline (used once
        the run has been warned that the subscription cannot be read).
    :param labels: labels for the inbox's BigQuery jobs (the deferring task's: the triggerer has no task).
    """

    def __init__(
        self,
        *,
        project_id: str,
        subscription: str,
        game_date: str,
        deadline: str,
        poke_interval: float = 5.0,
        pull_timeout: float = 10.0,
        max_messages: int = 10,
        gcp_conn_id: str = config.GCP_CONN_ID,
        impersonation_chain: str | list[str] | None = None,
        tolerate_errors: bool = False,
        labels: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.labels = labels
        self.tolerate_errors = tolerate_errors
        self.project_id = project_id
        self.subscription = subscription
        self.game_date = game_date
        self.deadline = deadline
        self.poke_interval = poke_interval
        self.pull_timeout = pull_timeout
        self.max_messages = max_messages
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "nba_phase5.airflow.triggers.phase4_event.Phase4EventTrigger",
            {
                "project_id": self.project_id,
                "subscription": self.subscription,
                "game_date": self.game_date,
                "deadline": self.deadline,
                "poke_interval": self.poke_interval,
                "pull_timeout": self.pull_timeout,
                "max_messages": self.max_messages,
                "gcp_conn_id": self.gcp_conn_id,
                "impersonation_chain": self.impersonation_chain,
                "tolerate_errors": self.tolerate_errors,
                "labels": self.labels,
            },
        )

    @cached_property
    def hook(self) -> Any:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.pubsub import Phase5PubSubAsyncHook

        return Phase5PubSubAsyncHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain, project_id=self.project_id
        )

    @cached_property
    def bigquery_hook(self) -> Any:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

        return Phase5BigQueryHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain, job_labels=self.labels or {}
        )

    async def _pull(self, timeout: float) -> list[Any]:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from airflow.providers.google.cloud.hooks.pubsub import PubSubException

        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from google.api_core.exceptions import DeadlineExceeded

        try:
            messages: list[Any] = await self.hook.pull(
                project_id=self.project_id,
                subscription=self.subscription,
                max_messages=self.max_messages,
                return_immediately=False,
                timeout=timeout,
            )
        except (DeadlineExceeded, PubSubException) as exc:
            # A long poll that found nothing ends in DeadlineExceeded: that is "no messages", not an error.
            cause = exc.args[1] if isinstance(exc, PubSubException) and len(exc.args) > 1 else exc
            if isinstance(cause, DeadlineExceeded):
                return []
            raise
        return messages

    @staticmethod
    def unavailable_reason(exc: BaseException) -> str | None:
        """Why the subscription cannot be read at all (missing, forbidden), or None for other errors."""
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from google.api_core.exceptions import NotFound, PermissionDenied

        cause = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], BaseException) else exc
        if isinstance(cause, (NotFound, PermissionDenied)):
            return f"{type(cause).__name__}: {cause}"
        return None

    def sort_messages(
        self,
        messages: list[Any],
        target: date,
        rejected: list[dict[str, str]],
        others: dict[str, int] | None = None,
        late: list[dict[str, Any]] | None = None,
    ) -> Sorted:
        """Decide each pulled message's fate (:func:`~nba_phase5.airflow.triggers.phase4_messages.sort_messages`)."""
        return sort_messages(self.log, messages, target, rejected, others, late)

    async def _find(self, target: date) -> InboxEntry | None:
        return await asyncio.to_thread(inbox.find, self.bigquery_hook, target)

    async def _pull_and_record(
        self,
        target: date,
        remaining: float,
        rejected: list[dict[str, str]],
        others: dict[str, int] | None = None,
        late: list[dict[str, Any]] | None = None,
    ) -> Sorted:
        """One pull: record ready feature-store events in the inbox, then ack them; ack the rest at once."""
        messages = await self._pull(timeout=max(1.0, min(self.pull_timeout, remaining)))
        sorted_ = self.sort_messages(messages, target, rejected, others, late)
        where = {"project_id": self.project_id, "subscription": self.subscription}
        if sorted_.ack_now:
            await self.hook.acknowledge(**where, ack_ids=sorted_.ack_now)
        if sorted_.entries:
            # Durable first: if this write fails nothing valid is acked, and Pub/Sub redelivers it.
            await asyncio.to_thread(inbox.record, self.bigquery_hook, sorted_.entries, pulled_for=target)
            await self.hook.acknowledge(**where, ack_ids=sorted_.ack_after_record)
        return sorted_

    def _event(self, entry: InboxEntry, pulls: int, seen: dict[str, Any]) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": str(TriggerStatus.EVENT),
                "event": entry.event.to_dict(),
                "message_id": entry.message_id,
                "received_at": entry.received_at.isoformat(),
                "pulls": pulls,
                **seen,
            }
        )

    async def _after_error(self, exc: Exception, errors: int, deadline: datetime) -> str | None:
        """Back off after a failed round; returns why the wait must end now, or None to go on."""
        reason = self.unavailable_reason(exc)
        if self.tolerate_errors:
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            self.log.warning("Phase 4 event wait still failing: %s; trying again in %.0f s", exc, TOLERANT_RETRY_S)
            await asyncio.sleep(max(0.0, min(TOLERANT_RETRY_S, remaining)))
            return None
        if reason is None and errors < MAX_CONSECUTIVE_ERRORS:
            delay = min(BACKOFF_CAP_S, 2.0**errors) * random.uniform(0.5, 1.0)
            self.log.warning("Phase 4 event wait: %s (attempt %d); retrying in %.1f s", exc, errors, delay)
            await asyncio.sleep(delay)
            return None
        return reason or f"{type(exc).__name__}: {exc} (after {errors} attempts)"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        target = date.fromisoformat(self.game_date)
        deadline = datetime.fromisoformat(self.deadline)
        pulls, errors, last_check, look = 0, 0, 0.0, True
        rejected: list[dict[str, str]] = []
        others: dict[str, int] = {}
        late: list[dict[str, Any]] = []
        # What every final event reports besides its outcome (the lists fill as messages are pulled).
        seen: dict[str, Any] = {"rejected": rejected, "others": others, "late": late}
        while True:
            loop = asyncio.get_running_loop()
            pulled = Sorted()
            try:
                entry = None
                if look or loop.time() - last_check >= INBOX_CHECK_INTERVAL_S:
                    entry, last_check, look = await self._find(target), loop.time(), False
                if entry is None:
                    remaining = (deadline - datetime.now(UTC)).total_seconds()
                    pulled = await self._pull_and_record(target, remaining, rejected, others, late)
                    pulls += 1
                    # This run's event was just recorded (here or by a retry after an error): look at once.
                    look = any(e.event.game_date == target for e in pulled.entries)
                    if look:
                        entry, last_check, look = await self._find(target), loop.time(), False
                errors = 0
            except Exception as exc:
                errors += 1
                reason = await self._after_error(exc, errors, deadline)
                if reason is not None:
                    ended: dict[str, Any] = {
                        "status": str(TriggerStatus.UNAVAILABLE),
                        "reason": reason,
                        "deadline": self.deadline,
                    }
                    yield TriggerEvent({**ended, "pulls": pulls, **seen})
                    return
                if datetime.now(UTC) < deadline:
                    continue
            if entry is not None:
                yield self._event(entry, pulls, seen)
                return
            if datetime.now(UTC) >= deadline and (pulls or self.tolerate_errors):
                ended = {"status": str(TriggerStatus.DEADLINE), "deadline": self.deadline, "pulls": pulls}
                yield TriggerEvent({**ended, **seen})
                return
            if not (pulled.ack_now or pulled.ack_after_record):
                await asyncio.sleep(max(0.0, min(self.poke_interval, (deadline - datetime.now(UTC)).total_seconds())))
