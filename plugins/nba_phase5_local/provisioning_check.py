"""The read-only counterpart of provisioning: every way a project falls short of what the DAG reads and writes.

Compares the live topics, subscriptions and tables with what :mod:`nba_phase5_local.provisioning` would create
(the schema files, the production partitioning and clustering, the dead-letter policy); nothing is created or
changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nba_phase5.bigquery.clients import bigquery_client, publisher_client, subscriber_client, using_emulators
from nba_phase5_local.provisioning import DAY_MS, DEAD_LETTER_TOPICS, TOPICS, subscriptions, table_specs

# Spellings BigQuery uses for the same type: the API answers with the legacy names (INTEGER, FLOAT,
# BOOLEAN, RECORD) whatever the table was created with.
TYPE_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


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
