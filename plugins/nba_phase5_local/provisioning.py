"""Idempotent provisioning of every topic, subscription, dataset and table this package uses.

Replaces the plan's ``deploy_pubsub_infrastructure.sh`` with the same code for the emulators and real GCP. A
resource that already exists is left exactly as it is (in production the platform owns most of them,
docs/platform.md); :mod:`nba_phase5_local.provisioning_check` is the read-only counterpart, listing what the DAG
needs and the project lacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bigquery.clients import bigquery_client, publisher_client, subscriber_client, using_emulators
from nba_phase5.config import bigquery_location

if TYPE_CHECKING:
    from google.cloud import bigquery

TOPICS = (
    config.PHASE4_COMPLETE_TOPIC,
    config.PREDICTION_REQUESTS_TOPIC,
    config.PREDICTION_REQUESTS_DLQ_TOPIC,
    config.PHASE5_COMPLETE_TOPIC,
    config.PREDICTION_READY_TOPIC,
)
# Pull subscriptions: name → (topic, ack deadline). The trigger's deadline covers validate-then-ack in
# the triggerer.
TRIGGER_SUBSCRIPTIONS = {config.PHASE5_TRIGGER_SUBSCRIPTION: (config.PHASE4_COMPLETE_TOPIC, 60)}
# Only the local stand-in worker reads this one. Production pushes the requests to its workers; on real
# GCP a pull subscription nobody reads would keep an unread copy of every request for the whole
# retention period, so it is created (and checked) on the emulators only.
# The dead-letter one lets tests and people read what the worker (or the policy below) dead-lettered.
LOCAL_WORKER_SUBSCRIPTIONS = {
    config.PREDICTION_REQUESTS_SUBSCRIPTION: (config.PREDICTION_REQUESTS_TOPIC, 120),
    config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION: (config.PREDICTION_REQUESTS_DLQ_TOPIC, 60),
    config.PHASE5_COMPLETE_LOCAL_SUBSCRIPTION: (config.PHASE5_COMPLETE_TOPIC, 60),
    config.PREDICTION_READY_LOCAL_SUBSCRIPTION: (config.PREDICTION_READY_TOPIC, 60),
}
# Subscription → dead-letter topic: after PREDICTION_REQUESTS_MAX_DELIVERY_ATTEMPTS deliveries Pub/Sub
# moves a message there (the emulator does too). Set when the subscription is created, never added to an
# existing one. On real GCP the Pub/Sub service agent
# (service-<project number>@gcp-sa-pubsub.iam.gserviceaccount.com) needs roles/pubsub.publisher on the
# dead-letter topic and roles/pubsub.subscriber on the source subscription, or nothing is forwarded.
DEAD_LETTER_TOPICS = {config.PREDICTION_REQUESTS_SUBSCRIPTION: config.PREDICTION_REQUESTS_DLQ_TOPIC}
MESSAGE_RETENTION_SECONDS = 7 * 24 * 3600
DAY_MS = 24 * 3600 * 1000


def subscriptions(*, emulators: bool) -> dict[str, tuple[str, int]]:
    """The pull subscriptions to provision: the worker's stand-in one only against the emulators."""
    return {**TRIGGER_SUBSCRIPTIONS, **(LOCAL_WORKER_SUBSCRIPTIONS if emulators else {})}


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.created:
            return f"Nothing to create: all {len(self.existing)} resources already exist."
        return f"Created {len(self.created)}: " + ", ".join(self.created) + f" ({len(self.existing)} already existed)."

    def ensure(self, label: str, get: Callable[[], object], create: Callable[[], object]) -> None:
        """Create the resource unless ``get`` finds it; losing a create race counts as existing.

        Never an update: an existing resource, whatever its shape, is not touched.
        """
        # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
        from google.api_core.exceptions import AlreadyExists, Conflict, NotFound

        try:
            get()
            self.existing.append(label)
            return
        except NotFound:
            pass
        try:
            create()
            self.created.append(label)
        except (AlreadyExists, Conflict):
            self.existing.append(label)


def table_specs() -> dict[str, dict[str, Any]]:
    """``dataset.table`` → spec, read from ``include/schemas/*.json`` (names as :data:`config.TABLES` spells
    them: in a sandbox, with its dataset suffix)."""
    schema_dir = config.include_dir() / "schemas"
    return {config.sandboxed(path.stem): json.loads(path.read_text()) for path in sorted(schema_dir.glob("*.json"))}


def build_table(project: str, table_name: str, spec: dict[str, Any], *, real_gcp: bool) -> bigquery.Table:
    # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
    from google.cloud import bigquery

    table = bigquery.Table(
        f"{project}.{table_name}",
        schema=[bigquery.SchemaField.from_api_repr(f) for f in spec["schema"]],
    )
    table.description = spec.get("description")
    partitioning = spec.get("time_partitioning")
    if partitioning:
        expiration_days = partitioning.get("expiration_days")
        table.time_partitioning = bigquery.TimePartitioning(
            type_=partitioning.get("type", "DAY"),
            field=partitioning["field"],
            expiration_ms=expiration_days * DAY_MS if expiration_days else None,
        )
        # Full scans of these day-partitioned tables are a cost bug, so real GCP requires the filter on
        # every one unless a spec says otherwise (the spec's flag wins); the emulator does not model it.
        if real_gcp:
            table.require_partition_filter = bool(spec.get("require_partition_filter", True))
    if spec.get("clustering"):
        table.clustering_fields = spec["clustering"]
    return table


def provision_bigquery(project: str, report: ProvisionReport, *, location: str | None = None) -> None:
    """Datasets (in ``location``, by default the package's: docs/platform.md §0) and tables, as specified."""
    # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
    from google.cloud import bigquery

    client = bigquery_client(project)
    specs = table_specs()
    for dataset_id in sorted({name.split(".")[0] for name in specs}):
        dataset = bigquery.Dataset(f"{project}.{dataset_id}")
        dataset.location = location or bigquery_location()
        report.ensure(
            f"dataset {dataset_id}",
            partial(client.get_dataset, dataset.reference),
            partial(client.create_dataset, dataset),
        )
    real_gcp = not using_emulators()
    for table_name, spec in specs.items():
        table = build_table(project, table_name, spec, real_gcp=real_gcp)
        report.ensure(
            f"table {table_name}",
            partial(client.get_table, table.reference),
            partial(client.create_table, table),
        )


def provision_pubsub(project: str, report: ProvisionReport) -> None:
    # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
    from google.protobuf.duration_pb2 import Duration

    publisher = publisher_client()
    for topic in TOPICS:
        path = publisher.topic_path(project, topic)
        report.ensure(
            f"topic {topic}",
            partial(publisher.get_topic, topic=path),
            partial(publisher.create_topic, name=path),
        )

    subscriber = subscriber_client()
    with subscriber:
        for subscription, (topic, ack_deadline) in subscriptions(emulators=using_emulators()).items():
            request = {
                "name": subscriber.subscription_path(project, subscription),
                "topic": publisher.topic_path(project, topic),
                "ack_deadline_seconds": ack_deadline,
                "message_retention_duration": Duration(seconds=MESSAGE_RETENTION_SECONDS),
            }
            if subscription in DEAD_LETTER_TOPICS:
                request["dead_letter_policy"] = {
                    "dead_letter_topic": publisher.topic_path(project, DEAD_LETTER_TOPICS[subscription]),
                    "max_delivery_attempts": config.PREDICTION_REQUESTS_MAX_DELIVERY_ATTEMPTS,
                }
            report.ensure(
                f"subscription {subscription}",
                partial(subscriber.get_subscription, subscription=request["name"]),
                partial(subscriber.create_subscription, request=request),
            )


def provision(project: str) -> ProvisionReport:
    report = ProvisionReport()
    provision_pubsub(project, report)
    provision_bigquery(project, report)
    return report
