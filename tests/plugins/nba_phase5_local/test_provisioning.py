"""Provisioning creates every resource once, never alters one, and ``--check`` names what a project lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nba_phase5 import config
from nba_phase5_local.provisioning import TOPICS, build_table, provision, subscriptions, table_specs
from nba_phase5_local.provisioning_check import check

PLUGINS = str(Path(__file__).resolve().parents[3] / "plugins")
integration = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": PLUGINS}
    return subprocess.run(
        [sys.executable, "-m", "nba_phase5_local", *args], capture_output=True, text=True, env=env, timeout=120
    )


def bigquery_resources() -> int:
    """Datasets + tables the schema files describe."""
    specs = table_specs()
    return len({name.split(".")[0] for name in specs}) + len(specs)


def recreate_table(bq: Any, project: str, table_name: str, change: Any) -> None:
    """Drop ``table_name`` and create it again from its spec with ``change(schema)`` applied."""
    spec = table_specs()[table_name]
    schema = change([dict(f) for f in spec["schema"]])
    bq.delete_table(f"{project}.{table_name}")
    bq.create_table(build_table(project, table_name, {**spec, "schema": schema}, real_gcp=False))


# --- provision ---------------------------------------------------------------------------------------


@integration
def test_second_run_creates_nothing(stack) -> None:
    # The session fixture already provisioned once; run twice more to be sure it is stable.
    first = provision(stack.project)
    second = provision(stack.project)
    assert first.created == []
    assert second.created == []
    assert len(second.existing) == len(TOPICS) + len(subscriptions(emulators=True)) + bigquery_resources()
    assert second.summary().startswith("Nothing to create")


@integration
def test_a_new_project_gets_everything_once(stack) -> None:
    first = provision("fresh-project")
    # 5 topics (Phase 4's, the requests, their dead letters, Phase 5's completion, the workers' ready
    # messages), 5 subscriptions (the trigger's and, on the emulators, the local worker's, the dead
    # letters', Phase 6's stand-in and the ready messages')
    assert len(first.created) == 5 + 5 + bigquery_resources()
    assert first.existing == []
    assert provision("fresh-project").created == []


@integration
def test_every_named_resource_exists_with_its_layout(stack, bq) -> None:
    from nba_phase5.bigquery.clients import publisher_client, subscriber_client

    publisher = publisher_client()
    for topic in (
        "nba-phase4-precompute-complete",
        "prediction-request-prod",
        "prediction-request-dlq",
        "nba-phase5-predictions-complete",
    ):
        assert publisher.get_topic(topic=publisher.topic_path(stack.project, topic)).name.endswith(topic)
    with subscriber_client() as subscriber:
        for name, topic, deadline in (
            ("nba-phase5-trigger-sub", "nba-phase4-precompute-complete", 60),
            (config.PREDICTION_REQUESTS_SUBSCRIPTION, "prediction-request-prod", 120),
            ("prediction-request-dlq-local", "prediction-request-dlq", 60),
        ):
            sub = subscriber.get_subscription(subscription=subscriber.subscription_path(stack.project, name))
            assert sub.topic.endswith(f"/topics/{topic}")
            assert sub.ack_deadline_seconds == deadline
            # Only the worker's subscription dead-letters (docs/platform.md §7.1: 5 delivery attempts).
            policy = sub.dead_letter_policy
            if name == config.PREDICTION_REQUESTS_SUBSCRIPTION:
                assert policy.dead_letter_topic == publisher.topic_path(stack.project, "prediction-request-dlq")
                assert policy.max_delivery_attempts == 5
            else:
                assert not policy.dead_letter_topic

    for name, spec in table_specs().items():
        table = bq.get_table(f"{stack.project}.{name}")
        assert table.time_partitioning.field == spec["time_partitioning"]["field"]
        assert table.clustering_fields == spec["clustering"]
        assert [f.name for f in table.schema] == [f["name"] for f in spec["schema"]]
        days = spec["time_partitioning"].get("expiration_days")
        assert table.time_partitioning.expiration_ms == (days * 24 * 3600 * 1000 if days else None)
    clustered = bq.get_table(f"{stack.project}.{config.PREDICTIONS_TABLE}").clustering_fields
    assert clustered == ["system_id", "player_lookup", "confidence_score", "game_date"]


def test_the_local_worker_subscription_exists_only_on_the_emulators() -> None:
    # On real GCP production pushes to its workers: a pull subscription nobody reads piles up copies.
    assert set(subscriptions(emulators=True)) == {
        "nba-phase5-trigger-sub",
        config.PREDICTION_REQUESTS_SUBSCRIPTION,
        config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION,
        config.PHASE5_COMPLETE_LOCAL_SUBSCRIPTION,  # stands in for the Phase 5→6 orchestrator
        config.PREDICTION_READY_LOCAL_SUBSCRIPTION,  # what the stand-in worker reported
    }
    assert set(subscriptions(emulators=False)) == {"nba-phase5-trigger-sub"}
    assert subscriptions(emulators=False)["nba-phase5-trigger-sub"] == ("nba-phase4-precompute-complete", 60)


def test_real_gcp_tables_require_a_partition_filter_and_keep_the_spec_layout() -> None:
    specs = table_specs()
    assert len(specs) >= 5
    for name, spec in specs.items():
        real = build_table("p", name, spec, real_gcp=True)
        # Production's run history has no require_partition_filter (schemas/bigquery/nba_reference/
        # processor_run_history.sql 176-182); every other table requires one.
        assert real.require_partition_filter is (name != config.RUN_HISTORY_TABLE), name
        assert real.clustering_fields == spec["clustering"]
        assert not build_table("p", name, spec, real_gcp=False).require_partition_filter
    # As production defines them (docs/platform.md §5, §5b, §6).
    for table in (config.SCHEDULE_TABLE, config.FEATURE_STORE_TABLE, config.PREDICTIONS_TABLE):
        assert specs[table]["require_partition_filter"] is True, table
    assert specs[config.FEATURE_STORE_TABLE]["clustering"] == ["player_lookup", "feature_version", "game_date"]


def test_the_spec_flag_wins_over_the_real_gcp_default() -> None:
    spec = {**table_specs()[config.ALERTS_TABLE], "require_partition_filter": False}
    assert build_table("p", config.ALERTS_TABLE, spec, real_gcp=True).require_partition_filter is False


def test_partition_expiration_comes_from_the_spec() -> None:
    specs = table_specs()
    predictions = build_table("p", config.PREDICTIONS_TABLE, specs[config.PREDICTIONS_TABLE], real_gcp=True)
    assert predictions.time_partitioning.expiration_ms == 365 * 24 * 3600 * 1000
    run_history = build_table("p", config.RUN_HISTORY_TABLE, specs[config.RUN_HISTORY_TABLE], real_gcp=True)
    assert run_history.time_partitioning.expiration_ms is None


@integration
def test_an_existing_table_is_never_altered(stack) -> None:
    # Production's run history belongs to the platform: whatever its shape, provision leaves it as it is.
    from google.cloud import bigquery

    from nba_phase5.bigquery.clients import bigquery_client

    project = "keep-nba-props"
    client = bigquery_client(project)
    client.create_dataset(f"{project}.nba_reference")
    foreign = bigquery.Table(
        f"{project}.{config.RUN_HISTORY_TABLE}",
        schema=[bigquery.SchemaField("processor_name", "STRING"), bigquery.SchemaField("legacy_flag", "INT64")],
    )
    foreign.description = "the platform's own table"
    client.create_table(foreign)
    client.query(
        f"INSERT INTO `{project}.{config.RUN_HISTORY_TABLE}` (processor_name, legacy_flag) VALUES ('x', 7)"
    ).result()
    before = json.dumps(client.get_table(foreign.reference).to_api_repr(), sort_keys=True)

    report = provision(project)

    assert f"table {config.RUN_HISTORY_TABLE}" in report.existing
    assert "dataset nba_reference" in report.existing
    assert json.dumps(client.get_table(foreign.reference).to_api_repr(), sort_keys=True) == before
    rows = client.query(f"SELECT processor_name, legacy_flag FROM `{project}.{config.RUN_HISTORY_TABLE}`").result()
    assert [tuple(r.values()) for r in rows] == [("x", 7)]
    # ... and check says why the DAG cannot use it.
    assert "nba_reference.processor_run_history: column run_id (STRING) is missing" in check(project)


# --- check: against the emulator ---------------------------------------------------------------------


@integration
def test_a_fully_provisioned_project_has_no_problems(stack) -> None:
    assert check(stack.project) == []
    done = cli("provision", "--check", "--project", stack.project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == (
        f"OK: project {stack.project} has every topic, subscription, table and column the DAG uses."
    )


@integration
def test_check_names_a_missing_and_a_mistyped_column(stack) -> None:
    from nba_phase5.bigquery.clients import bigquery_client

    project = "check-nba-props"
    provision(project)
    client = bigquery_client(project)
    recreate_table(client, project, config.RUN_HISTORY_TABLE, lambda s: [f for f in s if f["name"] != "summary"])

    def mistype(schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for f in schema:
            if f["name"] == "is_production_ready":
                f["type"] = "STRING"
        return schema

    recreate_table(client, project, config.FEATURE_STORE_TABLE, mistype)

    assert check(project) == [
        "nba_predictions.ml_feature_store_v2: column is_production_ready is STRING, the DAG needs BOOL",
        "nba_reference.processor_run_history: column summary (JSON) is missing",
    ]
    done = cli("--project", project, "provision", "--check")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "problem: nba_reference.processor_run_history: column summary (JSON) is missing" in done.stderr
    assert "problem: nba_predictions.ml_feature_store_v2: column is_production_ready is STRING" in done.stderr
    assert f"2 problem(s): project {project} is not ready" in done.stderr
    # --check changed nothing, and provision does not repair a table it did not create.
    assert provision(project).created == []
    assert len(check(project)) == 2


@integration
def test_check_names_missing_tables_topics_and_subscriptions(stack) -> None:
    from nba_phase5.bigquery.clients import bigquery_client, publisher_client, subscriber_client

    project = "check-missing-nba-props"
    provision(project)
    bigquery_client(project).delete_table(f"{project}.{config.SCHEDULE_TABLE}")
    with subscriber_client() as subscriber:
        subscriber.delete_subscription(subscription=subscriber.subscription_path(project, "nba-phase5-trigger-sub"))
    publisher = publisher_client()
    publisher.delete_topic(topic=publisher.topic_path(project, "nba-phase4-precompute-complete"))

    assert check(project) == [
        "topic nba-phase4-precompute-complete is missing",
        "subscription nba-phase5-trigger-sub is missing",
        "nba_raw.nbac_schedule: table is missing",
    ]
    # A new project's missing resources are what provision is for.
    assert sorted(provision(project).created) == [
        "subscription nba-phase5-trigger-sub",
        "table nba_raw.nbac_schedule",
        "topic nba-phase4-precompute-complete",
    ]
    assert check(project) == []


# --- the requests' dead-letter topic -----------------------------------------------------------------


def _pull(subscriber: Any, path: str) -> list[Any]:
    response = subscriber.pull(
        request={"subscription": path, "max_messages": 10, "return_immediately": False}, timeout=5
    )
    return list(response.received_messages)


@integration
def test_the_emulator_moves_a_request_nacked_five_times_to_the_dlq(stack) -> None:
    # The policy provision sets is honoured by the emulator, as by Pub/Sub: delivery 6 never comes.
    import time

    from nba_phase5.bigquery.clients import publisher_client, subscriber_client

    project = "dlq-nba-props"
    provision(project)
    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PREDICTION_REQUESTS_TOPIC)
    publisher.publish(topic, b'{"player_lookup": "x"}', request_id="r-1").result(timeout=30)
    with subscriber_client() as subscriber:
        source = subscriber.subscription_path(project, config.PREDICTION_REQUESTS_SUBSCRIPTION)
        attempts: list[int] = []
        for _ in range(5):
            received = _pull(subscriber, source)
            attempts += [m.delivery_attempt for m in received]
            if received:  # nack: redeliver now
                subscriber.modify_ack_deadline(
                    request={"subscription": source, "ack_ids": [m.ack_id for m in received], "ack_deadline_seconds": 0}
                )
        attempts += [m.delivery_attempt for m in _pull(subscriber, source)]  # no sixth delivery
        assert attempts == [1, 2, 3, 4, 5]
        dlq = subscriber.subscription_path(project, config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
        deadline, dead = time.monotonic() + 20, []
        while not dead and time.monotonic() < deadline:
            dead = _pull(subscriber, dlq)
    assert [m.message.data for m in dead] == [b'{"player_lookup": "x"}']
    attributes = dict(dead[0].message.attributes)
    assert attributes["request_id"] == "r-1"
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == config.PREDICTION_REQUESTS_SUBSCRIPTION


@integration
def test_an_existing_worker_subscription_without_a_dead_letter_policy_is_left_alone_and_reported(stack) -> None:
    from nba_phase5.bigquery.clients import publisher_client, subscriber_client

    project = "legacy-dlq-nba-props"
    publisher = publisher_client()
    publisher.create_topic(name=publisher.topic_path(project, config.PREDICTION_REQUESTS_TOPIC))
    with subscriber_client() as subscriber:
        path = subscriber.subscription_path(project, config.PREDICTION_REQUESTS_SUBSCRIPTION)
        subscriber.create_subscription(
            name=path, topic=publisher.topic_path(project, config.PREDICTION_REQUESTS_TOPIC), ack_deadline_seconds=120
        )
        report = provision(project)
        assert f"subscription {config.PREDICTION_REQUESTS_SUBSCRIPTION}" in report.existing
        assert "topic prediction-request-dlq" in report.created
        assert not subscriber.get_subscription(subscription=path).dead_letter_policy.dead_letter_topic  # unchanged
    assert check(project) == [
        f"subscription {config.PREDICTION_REQUESTS_SUBSCRIPTION} does not dead-letter to topic prediction-request-dlq; "
        "delete it and run provision again"
    ]
