"""Pub/Sub hooks: batched asynchronous publishing, and a nack the provider's async hook lacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from airflow.providers.google.cloud.hooks.pubsub import PubSubAsyncHook, PubSubHook

from nba_phase5.bigquery.clients import check_emulators


@dataclass
class PublishResult:
    """What a batched publish achieved.

    ``accepted`` holds ``(index, message_id, accepted_at)`` of every message Pub/Sub accepted;
    ``failed`` the indexes of messages not known to be accepted: refused on every attempt, or (listed
    in ``unconfirmed`` too) still unanswered at the timeout, which may yet be accepted.
    """

    published: int = 0
    failed: list[int] = field(default_factory=list)
    accepted: list[tuple[int, str, float]] = field(default_factory=list)
    unconfirmed: list[int] = field(default_factory=list)
    attempts: int = 0
    retried: int = 0
    first_published_at: float | None = None
    errors: list[str] = field(default_factory=list)

    def absorb(self, part: PublishResult, *, offset: int) -> None:
        """Fold one chunk's result into this one (the chunk's indexes shifted by ``offset``)."""
        self.published += part.published
        self.retried += part.retried
        self.attempts = max(self.attempts, part.attempts)
        self.accepted.extend((offset + i, message_id, at) for i, message_id, at in part.accepted)
        self.failed.extend(offset + i for i in part.failed)
        self.unconfirmed.extend(offset + i for i in part.unconfirmed)
        self.errors.extend(part.errors)
        if self.first_published_at is None:
            self.first_published_at = part.first_published_at


class BatchPublishHook(PubSubHook):
    """Publishes many messages at once through the client's batching and flow control.

    The stock ``PubSubHook.publish`` waits on each future in turn; here every message is handed to the
    client first and the futures are awaited together, so batches fly concurrently. Messages whose
    publish failed are retried (only those) up to ``max_attempts`` times.

    :param max_batch_messages: messages per publish RPC.
    :param max_batch_latency: seconds the client may hold a batch open to fill it.
    :param max_outstanding_messages: flow-control bound on unacknowledged publishes (memory bound).
    """

    def __init__(
        self,
        *,
        max_batch_messages: int = 500,
        max_batch_latency: float = 0.02,
        max_outstanding_messages: int = 10_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_batch_messages = max_batch_messages
        self.max_batch_latency = max_batch_latency
        self.max_outstanding_messages = max_outstanding_messages

    def get_batch_publisher(self) -> Any:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from google.cloud.pubsub_v1 import PublisherClient, types

        check_emulators()  # a stopped local stack fails the task now, not after minutes of retries

        return PublisherClient(
            credentials=self.get_credentials(),
            batch_settings=types.BatchSettings(
                max_messages=self.max_batch_messages,
                max_bytes=9 * 1024 * 1024,
                max_latency=self.max_batch_latency,
            ),
            publisher_options=types.PublisherOptions(
                flow_control=types.PublishFlowControl(
                    message_limit=self.max_outstanding_messages,
                    byte_limit=64 * 1024 * 1024,
                    limit_exceeded_behavior=types.LimitExceededBehavior.BLOCK,
                )
            ),
        )

    def publish_batch(
        self,
        *,
        project_id: str,
        topic: str,
        messages: Sequence[tuple[bytes, dict[str, str]]],
        max_attempts: int = 3,
        timeout: float = 120.0,
        publisher: Any | None = None,
    ) -> PublishResult:
        """Publish ``messages`` (body, attributes); returns what happened, never raises for a failed message.

        Only messages Pub/Sub refused are sent again. A message still unanswered after ``timeout`` is
        never resubmitted (it may be accepted yet, and a second copy would be a duplicate request): it
        is reported ``unconfirmed``.
        """
        client = publisher or self.get_batch_publisher()
        topic_path = client.topic_path(project_id, topic)
        result = PublishResult()
        lock = threading.Lock()

        def first_answer(_: futures.Future[str]) -> None:
            with lock:
                if result.first_published_at is None:
                    result.first_published_at = time.time()

        pending = list(range(len(messages)))
        while pending and result.attempts < max_attempts:
            result.attempts += 1
            if result.attempts > 1:
                result.retried += len(pending)
                time.sleep(min(2.0, 0.25 * 2**result.attempts))
            submitted: dict[futures.Future[str], int] = {}
            for index in pending:
                data, attributes = messages[index]
                future = client.publish(topic_path, data, **attributes)
                if not submitted:
                    future.add_done_callback(first_answer)  # one callback: a timestamp per message costs 10 %
                submitted[future] = index
            done, not_done = futures.wait(submitted, timeout=timeout)
            # Accepted by now: later than the real acceptance by at most this wait, which only makes
            # the in-flight window a little longer (the safe side).
            answered_at = time.time()
            result.unconfirmed.extend(submitted[f] for f in not_done)
            refused = []
            for future in done:
                error = future.exception()
                if error is None:
                    index = submitted[future]
                    result.accepted.append((index, future.result(), answered_at))
                    result.published += 1
                else:
                    refused.append(submitted[future])
                    if len(result.errors) < 5:
                        result.errors.append(f"{type(error).__name__}: {error}")
            pending = sorted(refused)
        result.failed = sorted(pending + result.unconfirmed)
        if result.unconfirmed:
            result.errors.append(f"{len(result.unconfirmed)} publishes unanswered after {timeout:.0f}s (not resent)")
        return result


class Phase5PubSubAsyncHook(PubSubAsyncHook):
    """The provider's async hook plus ``nack``, to hand a message straight back to the subscription."""

    async def nack(self, *, project_id: str, subscription: str, ack_ids: list[str]) -> None:
        client = await self._get_subscriber_client()
        await client.modify_ack_deadline(
            request={
                "subscription": f"projects/{project_id}/subscriptions/{subscription}",
                "ack_ids": ack_ids,
                "ack_deadline_seconds": 0,
            }
        )
