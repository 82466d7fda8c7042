"""Provisioning creates every resource once and changes nothing the second time."""

from __future__ import annotations

import pytest

from nba_phase5 import config
from nba_phase5.provisioning import SUBSCRIPTIONS, TOPICS, build_table, provision, table_specs

pytestmark = pytest.mark.integration


def test_second_run_creates_nothing(stack) -> None:  # type: ignore[no-untyped-def]
    # The session fixture already provisioned once; run twice more to be sure it is stable.
    first = provision(stack.project)
    second = provision(stack.project)
    assert first.created == []
    assert second.created == []
    assert len(second.existing) == len(TOPICS) + len(SUBSCRIPTIONS) + 3 + 5
    assert second.summary().startswith("Nothing to create")


def test_a_new_project_gets_everything_once(stack) -> None:  # type: ignore[no-untyped-def]
    first = provision("fresh-project")
    assert len(first.created) == 12
    assert first.existing == []
    assert provision("fresh-project").created == []


def test_every_named_resource_exists_with_its_layout(stack, bq) -> None:  # type: ignore[no-untyped-def]
    from nba_phase5.clients import publisher_client, subscriber_client

    publisher = publisher_client()
    for topic in (config.PHASE4_COMPLETE_TOPIC, config.PREDICTION_REQUESTS_TOPIC):
        assert publisher.get_topic(topic=publisher.topic_path(stack.project, topic)).name.endswith(topic)
    with subscriber_client() as subscriber:
        sub = subscriber.get_subscription(
            subscription=subscriber.subscription_path(stack.project, config.PHASE5_TRIGGER_SUBSCRIPTION)
        )
        assert sub.topic.endswith(config.PHASE4_COMPLETE_TOPIC)
        assert sub.ack_deadline_seconds == 60

    expected = {
        config.RUN_HISTORY_TABLE: ("data_date", ["processor_name"]),
        config.ALERTS_TABLE: ("game_date", ["severity"]),
        config.FEATURE_STORE_TABLE: ("game_date", ["player_lookup"]),
        config.PREDICTIONS_TABLE: ("game_date", ["player_lookup"]),
        config.SCHEDULE_TABLE: ("game_date", ["game_id"]),
    }
    for name, (partition, clustering) in expected.items():
        table = bq.get_table(f"{stack.project}.{name}")
        assert table.time_partitioning.field == partition
        assert table.clustering_fields == clustering


def test_real_gcp_tables_require_a_partition_filter() -> None:
    specs = table_specs()
    assert len(specs) == 5
    for name, spec in specs.items():
        assert build_table("p", name, spec, real_gcp=True).require_partition_filter is True
        assert not build_table("p", name, spec, real_gcp=False).require_partition_filter
