"""Trigger that waits in the triggerer for Phase 4's completion event for one game date."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from nba_phase5.contract import InvalidEventError, Phase4CompletionEvent

MAX_REPORTED = 10


def classify(data: bytes, game_date: date, *, today: date | None = None) -> tuple[str, str | Phase4CompletionEvent]:
    """Sort one message: ``match`` (event), ``invalid``/``stale`` (reason: ack and drop), ``future`` (leave it).

    A past date is not an error: Phase 4 backfills publish too, and backfills don't trigger predictions.
    """
    try:
        event = Phase4CompletionEvent.from_json(data, today=today)
    except InvalidEventError as exc:
        return "invalid", exc.reason
    if event.game_date < game_date:
        return "stale", f"event for past game date {event.game_date} ignored (waiting for {game_date})"
    if event.game_date > game_date:
        return "future", f"event for later game date {event.game_date}; left for its own run"
    return "match", event


class Phase4EventTrigger(BaseTrigger):
    """Pulls ``subscription`` until a valid Phase 4 event for ``game_date`` arrives or ``deadline`` passes.

    Unlike the provider's ``PubsubPullTrigger`` it validates before it acks: the matching event (and
    any duplicate of it) is acked after validation; malformed and past-date messages are acked and
    logged with their reason (unusable ones are also reported in the final event, so the run can raise
    one warning); events for later dates are nacked so their own run receives them. A subscription
    that is missing or forbidden ends the wait at once with ``status='unavailable'``: the run takes the
    backup path. It pulls at least once before honouring a deadline already in the past.

    :param project_id: Google Cloud project of the subscription.
    :param subscription: subscription name (not the full path).
    :param game_date: ISO date of the event to wait for.
    :param deadline: ISO timestamp (with offset) after which the trigger gives up.
    :param poke_interval: seconds between pulls that returned nothing useful.
    :param pull_timeout: seconds one long-poll pull may block.
    :param max_messages: messages per pull.
    :param gcp_conn_id: Airflow connection to Google Cloud.
    :param impersonation_chain: optional service account(s) to impersonate.
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
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | list[str] | None = None,
    ) -> None:
        super().__init__()
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
            "nba_phase5.triggers.phase4_event.Phase4EventTrigger",
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
            },
        )

    @cached_property
    def hook(self) -> Any:
        from nba_phase5.hooks.pubsub import Phase5PubSubAsyncHook

        return Phase5PubSubAsyncHook(
            gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain, project_id=self.project_id
        )

    async def _pull(self, timeout: float) -> list[Any]:
        from airflow.providers.google.cloud.hooks.pubsub import PubSubException
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
        from google.api_core.exceptions import NotFound, PermissionDenied

        cause = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], BaseException) else exc
        if isinstance(cause, (NotFound, PermissionDenied)):
            return f"{type(cause).__name__}: {cause}"
        return None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        target = date.fromisoformat(self.game_date)
        deadline = datetime.fromisoformat(self.deadline)
        pulls = 0
        rejected: list[dict[str, str]] = []
        while True:
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            try:
                messages = await self._pull(timeout=max(1.0, min(self.pull_timeout, remaining)))
            except Exception as exc:
                reason = self.unavailable_reason(exc)
                if reason is None:
                    raise
                yield TriggerEvent({"status": "unavailable", "reason": reason, "pulls": pulls, "rejected": rejected})
                return
            pulls += 1
            found: Phase4CompletionEvent | None = None
            found_id = ""
            to_ack: list[str] = []
            to_nack: list[str] = []
            for received in messages:
                kind, detail = classify(received.message.data, target)
                message_id = received.message.message_id
                if kind == "match":
                    to_ack.append(received.ack_id)
                    if found is None:
                        found, found_id = detail, message_id  # type: ignore[assignment]
                    else:
                        self.log.info("Duplicate Phase 4 event %s for %s acked and ignored", message_id, target)
                elif kind == "future":
                    to_nack.append(received.ack_id)
                    self.log.info("Message %s: %s", message_id, detail)
                elif kind == "stale":
                    to_ack.append(received.ack_id)
                    self.log.info("Message %s: %s", message_id, detail)
                else:
                    to_ack.append(received.ack_id)
                    self.log.warning("Dropped unusable message %s: %s", message_id, detail)
                    if len(rejected) < MAX_REPORTED:
                        rejected.append({"message_id": message_id, "reason": str(detail)[:300]})
            if to_ack:
                await self.hook.acknowledge(project_id=self.project_id, subscription=self.subscription, ack_ids=to_ack)
            if to_nack:
                await self.hook.nack(project_id=self.project_id, subscription=self.subscription, ack_ids=to_nack)
            if found is not None:
                yield TriggerEvent(
                    {
                        "status": "event",
                        "event": found.to_dict(),
                        "message_id": found_id,
                        "received_at": datetime.now(UTC).isoformat(),
                        "pulls": pulls,
                        "rejected": rejected,
                    }
                )
                return
            if datetime.now(UTC) >= deadline:
                yield TriggerEvent(
                    {"status": "deadline", "deadline": self.deadline, "pulls": pulls, "rejected": rejected}
                )
                return
            if not messages or to_nack:
                remaining = (deadline - datetime.now(UTC)).total_seconds()
                await asyncio.sleep(max(0.0, min(self.poke_interval, remaining)))
