"""The local stand-in worker's Pub/Sub side: pull, ack, nack, and publish prediction-ready messages.

The platform's worker answers a push: 204 acks, 500 makes Pub/Sub redeliver (docs/platform.md §7.4).
Pulling, the stand-in acks the 204s and nacks the 500s (ack deadline 0: redelivered at once). It never
publishes to the dead-letter topic itself: the subscription's dead-letter policy (provisioning sets 5
attempts) moves a message there after its 5th delivery, and the Pub/Sub emulator honours that policy
(``delivery_attempt`` counts up and the message arrives with ``CloudPubSubDeadLetterSourceDeliveryCount``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from nba_phase5.bigquery import clients

log = logging.getLogger(__name__)
PULL_TIMEOUT_S = 2.0
READY_PUBLISH_TIMEOUT_S = 30.0


class RequestSubscription:
    """The worker's Pub/Sub side: one request subscription and the prediction-ready topic."""

    def __init__(self, project: str, subscription: str, ready_topic: str) -> None:
        """:param project: the GCP project.
        :param subscription: the pull subscription on the request topic.
        :param ready_topic: where prediction-ready messages go.
        """
        self.subscriber = clients.subscriber_client()
        self.publisher = clients.publisher_client()
        self.path = self.subscriber.subscription_path(project, subscription)
        self.ready_topic = self.publisher.topic_path(project, ready_topic)

    def __enter__(self) -> RequestSubscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.subscriber.close()

    def pull(self, limit: int) -> list[Any]:
        """Up to ``limit`` received messages ([] after :data:`PULL_TIMEOUT_S` without any)."""
        # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
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
        """Acknowledge (the 204s)."""
        if received:
            self.subscriber.acknowledge(request={"subscription": self.path, "ack_ids": [m.ack_id for m in received]})

    def nack(self, received: list[Any]) -> None:
        """Redeliver now (the 500s); the subscription's dead-letter policy counts the attempt."""
        if received:
            self.subscriber.modify_ack_deadline(
                request={"subscription": self.path, "ack_ids": [m.ack_id for m in received], "ack_deadline_seconds": 0}
            )

    def publish_ready(self, messages: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Publish prediction-ready messages (JSON, no attributes); returns (published, failed).

        A failure is logged and swallowed, as the worker does (WK 2482-2529): the request keeps its 204,
        so a ready message can be lost.

        :param messages: the messages' bodies.
        """
        futures = []
        failed = 0
        for message in messages:
            try:
                data = json.dumps(message, separators=(",", ":")).encode("utf-8")
                futures.append((message, self.publisher.publish(self.ready_topic, data)))
            except Exception as exc:  # refused before sending (size, an unencodable value): lost, as in the worker
                failed += 1
                log.error("Prediction-ready message for %s not published: %s", message.get("player_lookup"), exc)
        published = 0
        for message, future in futures:
            try:
                future.result(timeout=READY_PUBLISH_TIMEOUT_S)
                published += 1
            except Exception as exc:
                failed += 1
                log.error("Prediction-ready message for %s not published: %s", message.get("player_lookup"), exc)
        return published, failed
