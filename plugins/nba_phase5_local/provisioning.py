"""Idempotent provisioning of every topic, subscription, dataset and table this package uses.

Replaces the plan's ``deploy_pubsub_infrastructure.sh`` with the same code for the emulators and real GCP. A
resource that already exists is left exactly as it is (in production the platform owns most of them,
docs/platform.md); ``check`` is the read-only counterpart, listing what the DAG needs and the project lacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
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

# Spellings BigQuery uses for the same type: the API answers with the legacy names (INTEGER, FLOAT,
# BOOLEAN, RECORD) whatever the table was created with.
TYPE_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


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


def _type(field_repr: dict[str, Any]) -> str:
    name = str(field_repr.get("type", "")).upper()
    return TYPE_ALIASES.get(name, name)


def _mode(field_repr: dict[str, Any]) -> str:
    return str(field_repr.get("mode") or "NULLABLE").upper()


def compare_columns(table_name: str, needed: Iterable[dict[str, Any]], live: Iterable[dict[str, Any]]) -> list[str]:
    """What keeps the DAG from using ``live`` columns (API representations) as ``needed`` describes.

    Every needed column must exist with the same type (aliases are equal) and the same repeatedness.
    A column the DAG may leave NULL must not be REQUIRED live: the DAG's inserts would be refused.
    Extra live columns are fine: the schema files are the subset of the production tables the DAG uses.
    """
    by_name = {str(f["name"]).lower(): f for f in live}
    problems = []
    for want in needed:
        name, want_type, want_mode = want["name"], _type(want), _mode(want)
        have = by_name.get(name.lower())
        where = f"{table_name}: column {name}"
        if have is None:
            problems.append(f"{where} ({want['type']}) is missing")
        elif _type(have) != want_type:
            problems.append(f"{where} is {have.get('type')}, the DAG needs {want['type']}")
        elif (_mode(have) == "REPEATED") != (want_mode == "REPEATED"):
            problems.append(f"{where} is {_mode(have)}, the DAG needs {want_mode}")
        elif _mode(have) == "REQUIRED" and want_mode == "NULLABLE":
            problems.append(f"{where} is REQUIRED, the DAG needs NULLABLE (it may leave it empty)")
        elif want_type == "RECORD":
            problems += compare_columns(f"{where}", want.get("fields", []), have.get("fields", []))
    return problems


def check_bigquery(project: str) -> list[str]:
    # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
    from google.api_core.exceptions import NotFound

    client = bigquery_client(project)
    problems = []
    for table_name, spec in table_specs().items():
        try:
            table = client.get_table(f"{project}.{table_name}")
        except NotFound:
            problems.append(f"{table_name}: table is missing")
            continue
        problems += compare_columns(table_name, spec["schema"], [f.to_api_repr() for f in table.schema])
        problems += compare_layout(table_name, spec, table, emulators=using_emulators())
    return problems


def compare_layout(table_name: str, spec: dict[str, Any], table: Any, *, emulators: bool) -> list[str]:
    """Where ``table``'s partitioning, clustering or partition-filter rule differs from ``spec``.

    These are the production definitions (docs/platform.md §4-§6): a table partitioned on another
    column, or clustered otherwise, makes every partition-filtered query of the DAG a full scan; a
    ``require_partition_filter`` that differs means the DAG was tested against rules production does
    not have. The emulator does not model ``require_partition_filter``, so it is compared on real GCP only.
    """
    problems = []
    want_field = (spec.get("time_partitioning") or {}).get("field")
    have_field = table.time_partitioning.field if table.time_partitioning else None
    if want_field != have_field:
        problems.append(f"{table_name}: partitioned by {have_field or 'nothing'}, production by {want_field}")
    want_days = (spec.get("time_partitioning") or {}).get("expiration_days")
    have_ms = table.time_partitioning.expiration_ms if table.time_partitioning else None
    if (want_days * DAY_MS if want_days else None) != have_ms:
        have = f"{int(have_ms) // DAY_MS} days" if have_ms else "never"
        problems.append(f"{table_name}: partitions expire after {have}, production's after {want_days or 'never'}")
    want_clustering = [c.lower() for c in spec.get("clustering") or []]
    have_clustering = [c.lower() for c in table.clustering_fields or []]
    if want_clustering != have_clustering:
        problems.append(
            f"{table_name}: clustered by {', '.join(have_clustering) or 'nothing'}, "
            f"production by {', '.join(want_clustering) or 'nothing'}"
        )
    want_filter = bool(spec.get("require_partition_filter", True)) if want_field else False
    if not emulators and bool(table.require_partition_filter) != want_filter:
        problems.append(
            f"{table_name}: require_partition_filter is {bool(table.require_partition_filter)}, "
            f"production's is {want_filter}"
        )
    return problems


def check_pubsub(project: str) -> list[str]:
    # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
    from google.api_core.exceptions import NotFound

    publisher = publisher_client()
    problems = []
    for topic in TOPICS:
        try:
            publisher.get_topic(topic=publisher.topic_path(project, topic))
        except NotFound:
            problems.append(f"topic {topic} is missing")
    with subscriber_client() as subscriber:
        for name, (topic, _) in subscriptions(emulators=using_emulators()).items():
            try:
                live = subscriber.get_subscription(subscription=subscriber.subscription_path(project, name))
            except NotFound:
                problems.append(f"subscription {name} is missing")
                continue
            if live.topic != publisher.topic_path(project, topic):
                problems.append(f"subscription {name} reads {live.topic}, the DAG needs topic {topic}")
            # The DAG pulls; Pub/Sub refuses pulls on a push subscription.
            if live.push_config.push_endpoint:
                problems.append(f"subscription {name} pushes to {live.push_config.push_endpoint}; the DAG pulls")
            # provision never adds a policy to an existing subscription: without one a request that keeps
            # failing is redelivered for the whole retention period.
            dead_letter = DEAD_LETTER_TOPICS.get(name)
            if dead_letter and live.dead_letter_policy.dead_letter_topic != publisher.topic_path(project, dead_letter):
                problems.append(
                    f"subscription {name} does not dead-letter to topic {dead_letter}; "
                    "delete it and run provision again"
                )
    return problems


def check(project: str) -> list[str]:
    """Every way ``project`` falls short of what the DAG reads and writes; empty when it is ready.

    Read-only: nothing is created or changed.
    """
    return check_pubsub(project) + check_bigquery(project)
