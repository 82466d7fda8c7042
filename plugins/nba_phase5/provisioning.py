"""Idempotent provisioning of every topic, subscription, dataset and table this package uses.

Replaces the plan's ``deploy_pubsub_infrastructure.sh``: the same code runs against the emulators and
against real GCP. A resource that already exists is left exactly as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.clients import bigquery_client, publisher_client, subscriber_client, using_emulators

if TYPE_CHECKING:
    from google.cloud import bigquery

# Push-free pull subscriptions; the trigger's ack deadline covers validate-then-ack in the triggerer.
SUBSCRIPTIONS = {
    config.PHASE5_TRIGGER_SUBSCRIPTION: (config.PHASE4_COMPLETE_TOPIC, 60),
    config.PREDICTION_REQUESTS_SUBSCRIPTION: (config.PREDICTION_REQUESTS_TOPIC, 120),
}
TOPICS = (config.PHASE4_COMPLETE_TOPIC, config.PREDICTION_REQUESTS_TOPIC)
MESSAGE_RETENTION_SECONDS = 7 * 24 * 3600


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.created:
            return f"Nothing to create: all {len(self.existing)} resources already exist."
        return f"Created {len(self.created)}: " + ", ".join(self.created) + f" ({len(self.existing)} already existed)."

    def ensure(self, label: str, get: Callable[[], object], create: Callable[[], object]) -> None:
        """Create the resource unless ``get`` finds it; losing a create race counts as existing."""
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
    """``dataset.table`` → spec, read from ``include/schemas/*.json``."""
    schema_dir = config.include_dir() / "schemas"
    return {path.stem: json.loads(path.read_text()) for path in sorted(schema_dir.glob("*.json"))}


def build_table(project: str, table_name: str, spec: dict[str, Any], *, real_gcp: bool) -> bigquery.Table:
    from google.cloud import bigquery

    table = bigquery.Table(
        f"{project}.{table_name}",
        schema=[bigquery.SchemaField.from_api_repr(f) for f in spec["schema"]],
    )
    table.description = spec.get("description")
    partitioning = spec.get("time_partitioning")
    if partitioning:
        table.time_partitioning = bigquery.TimePartitioning(
            type_=partitioning.get("type", "DAY"), field=partitioning["field"]
        )
        # Full scans of these day-partitioned tables are a cost bug; the emulator does not model it.
        if real_gcp:
            table.require_partition_filter = True
    if spec.get("clustering"):
        table.clustering_fields = spec["clustering"]
    return table


def provision_bigquery(project: str, report: ProvisionReport, *, location: str = "US") -> None:
    from google.cloud import bigquery

    client = bigquery_client(project)
    specs = table_specs()
    for dataset_id in sorted({name.split(".")[0] for name in specs}):
        dataset = bigquery.Dataset(f"{project}.{dataset_id}")
        dataset.location = location
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
        for subscription, (topic, ack_deadline) in SUBSCRIPTIONS.items():
            request = {
                "name": subscriber.subscription_path(project, subscription),
                "topic": publisher.topic_path(project, topic),
                "ack_deadline_seconds": ack_deadline,
                "message_retention_duration": Duration(seconds=MESSAGE_RETENTION_SECONDS),
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
