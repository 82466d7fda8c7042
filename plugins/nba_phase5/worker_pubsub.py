"""The local stand-in worker's Pub/Sub side: pull, ack, nack, and publish to the dead-letter topic.

A message the worker cannot use is published to ``prediction-request-dlq`` as it came (data and
attributes) plus ``dlq_reason``, ``dlq_source_subscription`` and ``dlq_source_message_id``, and only then
acked. A message whose dead-letter publish fails is nacked: it comes back, and the subscription's own
dead-letter policy (5 attempts) takes it if that keeps failing.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
# Pub/Sub caps an attribute value at 1,024 bytes.
MAX_REASON_BYTES = 900
PULL_TIMEOUT_S = 2.0
DEAD_LETTER_PUBLISH_TIMEOUT_S = 30.0


def clip(text: str) -> str:
    """``text`` cut to fit an attribute value (at most :data:`MAX_REASON_BYTES` bytes of UTF-8)."""
    return text.encode("utf-8", "replace")[:MAX_REASON_BYTES].decode("utf-8", "ignore")


def dead_letter_attributes(message: Any, reason: str, subscription: str) -> dict[str, str]:
    """The original attributes plus ``dlq_reason``, ``dlq_source_subscription`` and ``dlq_source_message_id``."""
    return {
        **dict(message.attributes),
        "dlq_reason": clip(reason),
        "dlq_source_subscription": subscription,
        "dlq_source_message_id": message.message_id,
    }


class RequestSubscription:
    """The worker's Pub/Sub side: pull, ack, nack and dead-letter received messages of one subscription."""

    def __init__(self, project: str, subscription: str, dead_letter_topic: str) -> None:
        from nba_phase5.clients import publisher_client, subscriber_client

        self.subscriber = subscriber_client()
        self.publisher = publisher_client()
        self.subscription = subscription
        self.path = self.subscriber.subscription_path(project, subscription)
        self.dead_letter_topic = self.publisher.topic_path(project, dead_letter_topic)

    def __enter__(self) -> RequestSubscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.subscriber.close()

    def pull(self, limit: int) -> list[Any]:
        from google.api_core.exceptions import DeadlineExceeded

        try:
            response = self.subscriber.pull(
                request={"subscription": self.path, "max_messages": limit, "return_immediately": False},
                timeout=PULL_TIMEOUT_S,
            )
        except DeadlineExceeded:
            return []
        return list(response.received_messages)

    def ack(self, received: list[Any]) -> None:
        if received:
            self.subscriber.acknowledge(request={"subscription": self.path, "ack_ids": [m.ack_id for m in received]})

    def nack(self, received: list[Any]) -> None:
        """Redeliver now; the subscription's dead-letter policy counts the attempt."""
        if received:
            self.subscriber.modify_ack_deadline(
                request={"subscription": self.path, "ack_ids": [m.ack_id for m in received], "ack_deadline_seconds": 0}
            )

    def dead_letter(self, unusable: list[tuple[Any, str]]) -> tuple[list[Any], list[Any]]:
        """Publish each (received message, reason) to the dead-letter topic; returns (published, failed)."""
        pending, failed = [], []
        for received, reason in unusable:
            message = received.message
            try:
                attributes = dead_letter_attributes(message, reason, self.subscription)
                future = self.publisher.publish(self.dead_letter_topic, message.data, **attributes)
                pending.append((received, reason, future))
            except Exception as exc:  # refused before sending (size, attribute count): left to redelivery
                failed.append((received, exc))
        published = []
        for received, reason, future in pending:
            try:
                future.result(timeout=DEAD_LETTER_PUBLISH_TIMEOUT_S)
            except Exception as exc:
                failed.append((received, exc))
                continue
            published.append(received)
            log.warning(
                "Dead-lettered message %s to %s: %s", received.message.message_id, self.dead_letter_topic, reason
            )
        for received, error in failed:
            log.error(
                "Could not dead-letter message %s (%s): nacked for redelivery", received.message.message_id, error
            )
        return published, [received for received, _ in failed]
