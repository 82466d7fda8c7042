"""The Phase 4 completion message as the platform really publishes it, against the contract and the trigger.

Every fixture is written here from the platform's code as docs/platform.md §1 reports it (repository
najicham/nba-stats-scraper at commit 18f6ecfe); the comments cite the file and lines each value comes from.
Aliases: UPP = shared/publishers/unified_pubsub_publisher.py, PCB = data_processors/precompute/base/
precompute_base.py, P45 = orchestration/cloud_functions/phase4_to_phase5/main.py, MLFS = data_processors/
precompute/ml_feature_store/ml_feature_store_processor.py, TPB = shared/processors/base/transform_processor_base.py,
MPS = data_processors/precompute/main_precompute_service.py, GUIDE = the planning guide (IMPLEMENTATION-FULL.md).
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import pytest
from google.pubsub_v1.types import PubsubMessage, ReceivedMessage

from nba_phase5.airflow.triggers.phase4_event import classify
from nba_phase5.airflow.triggers.phase4_messages import sort_messages
from nba_phase5.core.contract import InvalidEventError, Phase4CompletionEvent

DAY = date(2025, 11, 28)
TODAY = DAY
LOG = logging.getLogger(__name__)

# The five Phase 4 processors that publish on nba-phase4-precompute-complete (the base class publishes,
# PCB 640), with (processor_name, output_table, output_dataset) as docs/platform.md §1.3 lists them.
FEATURE_STORE = ("MLFeatureStoreProcessor", "ml_feature_store_v2", "nba_predictions")  # MLFS 439, 466-467
OTHER_PROCESSORS = [
    # player_daily_cache_processor.py 73, 140
    ("PlayerDailyCacheProcessor", "player_daily_cache", "nba_precompute"),
    # player_composite_factors_processor.py 71, 87-88
    ("PlayerCompositeFactorsProcessor", "player_composite_factors", "nba_precompute"),
    # player_shot_zone_analysis_processor.py 393, 447
    ("PlayerShotZoneAnalysisProcessor", "player_shot_zone_analysis", "nba_precompute"),
    # team_defense_zone_analysis_processor.py 63, 89-90
    ("TeamDefenseZoneAnalysisProcessor", "team_defense_zone_analysis", "nba_precompute"),
]


def envelope(processor: tuple[str, str, str] = FEATURE_STORE, **changes: Any) -> dict[str, Any]:
    """One processor's success envelope on the live path: built UPP 188-223, values PCB 636-663.

    ``parent_processor`` and ``trigger_message_id`` are absent, as on the live path: UPP 222-223 removes
    None values, and PCB 651, 653 pass None unless the run's opts set them. error_message/error_type are
    None on the only live path (PCB 655-656), so absent too. ``changes`` with a None value drop a field.
    """
    name, table, dataset = processor
    body: dict[str, Any] = {
        "processor_name": name,  # PCB 641: the class name
        "phase": "phase_4_precompute",  # PCB 642
        "execution_id": "3f9c1a2b",  # PCB 643; TPB 135: the processor's 8-char run id
        "correlation_id": "3f9c1a2b",  # PCB 237, 644: opts correlation_id, else the run id
        "game_date": "2025-11-28",  # PCB 623-625, 645: opts analysis_date, YYYY-MM-DD
        "output_table": table,  # PCB 646
        "output_dataset": dataset,  # PCB 647; MLFS 466-467; PCB 194-197
        "status": "success",  # PCB 384-385: the only call site is success=True
        "record_count": 450,  # PCB 649: stats rows_processed
        "records_failed": 0,  # PCB 650
        "timestamp": "2025-11-28T11:17:03.123456+00:00",  # UPP 206: datetime.now(timezone.utc).isoformat()
        "duration_seconds": 2820.5,  # PCB 636, 654: stats total_runtime
        "trigger_source": "manual",  # PCB 652: opts trigger_source, default manual
        "metadata": {"total_runtime": 2820.5, "rows_processed": 450, "rows_skipped": 0},  # PCB 657-661; UPP 219
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


# GUIDE 85-94: the plan's shape, which no production code publishes.
PLAN = {
    "event_type": "phase4_complete",
    "processor": "ml_feature_store_v2",
    "game_date": "2025-11-28",
    "players_processed": 450,
    "players_ready": 418,
    "players_failed": 2,
    "timestamp": "2025-11-28T07:17:00+00:00",
    "run_id": "ml_feature_store_v2_20251128_071700",
}
# GUIDE 1150: the infrastructure script's manual test; GUIDE 1244 adds players_total.
SCRIPT = {"event_type": "phase4_complete", "game_date": "2025-11-28", "players_ready": 418}
SCRIPT_WITH_TOTAL = {**SCRIPT, "players_total": 450}


def parse(body: dict[str, Any]) -> Phase4CompletionEvent:
    return Phase4CompletionEvent.from_json(json.dumps(body), today=TODAY)


def kind(body: dict[str, Any], awaited: date = DAY) -> str:
    return classify(json.dumps(body).encode(), awaited, today=TODAY)[0]


def received(*bodies: dict[str, Any] | bytes) -> list[ReceivedMessage]:
    """Pulled messages as the Pub/Sub client returns them: JSON bodies, no attributes (UPP 283-284, 302)."""
    return [
        ReceivedMessage(
            ack_id=f"ack-{n}",
            message=PubsubMessage(data=b if isinstance(b, bytes) else json.dumps(b).encode(), message_id=str(n)),
        )
        for n, b in enumerate(bodies, start=1)
    ]


def test_the_feature_stores_success_envelope_is_the_match() -> None:
    event = parse(envelope())
    assert (event.shape, event.is_feature_store, event.is_ready) == ("envelope", True, True)
    assert (event.players_ready, event.total_players, event.record_count) == (None, 450, 450)
    assert (event.correlation_id, event.execution_id, event.status) == ("3f9c1a2b", "3f9c1a2b", "success")
    assert event.metadata == {"total_runtime": 2820.5, "rows_processed": 450, "rows_skipped": 0}
    assert kind(envelope()) == "match"


@pytest.mark.parametrize("processor", OTHER_PROCESSORS, ids=[p[0] for p in OTHER_PROCESSORS])
def test_the_other_processors_success_envelopes_are_valid_but_not_ours(processor: tuple[str, str, str]) -> None:
    event = parse(envelope(processor))
    assert (event.is_feature_store, event.is_ready, event.source) == (False, True, processor[0])
    assert kind(envelope(processor)) == "ignored"


@pytest.mark.parametrize("status", ["failed", "no_data"])
def test_the_feature_stores_non_ready_envelopes_are_valid_but_not_a_match(status: str) -> None:
    # PCB 627-633: the failed/no_data branches (no caller today); P45 1100-1102 counts only success/partial.
    body = envelope(status=status, record_count=0, error_message="boom" if status == "failed" else None)
    event = parse(body)
    assert (event.is_feature_store, event.is_ready, event.source) == (True, False, f"MLFeatureStoreProcessor:{status}")
    assert kind(body) == "ignored"


def test_a_partial_envelope_is_ready() -> None:
    # UPP 225-256 allows partial; P45 1100-1102 counts it as ready.
    assert kind(envelope(status="partial")) == "match"


def test_optional_fields_may_be_absent_or_present() -> None:
    live = envelope()
    assert not {"parent_processor", "trigger_message_id", "error_message", "error_type"} & set(live)
    # Only the seven fields UPP 225-256 checks are required: the rest may be missing.
    bare = envelope(output_table=None, output_dataset=None, record_count=None, records_failed=None)
    bare = {k: v for k, v in bare.items() if k not in ("duration_seconds", "trigger_source", "metadata")}
    event = parse(bare)
    assert (event.record_count, event.duration_seconds, event.metadata, event.is_feature_store) == (
        None,
        None,
        None,
        True,
    )
    assert json.loads(event.to_json()) == bare
    # When a run's opts set them (PCB 238, 651, 653; MPS 139-140 for /process), they are read and kept.
    traced = envelope(
        parent_processor="PlayerCompositeFactorsProcessor", trigger_message_id="16549873215", trigger_source="pubsub"
    )
    assert parse(traced).trigger_message_id == "16549873215"
    assert json.loads(parse(traced).to_json()) == traced


def test_a_past_dates_envelope_is_valid_stale_for_a_later_run_and_a_match_for_its_own() -> None:
    # Backfills publish (backfill_mode alone does not suppress it: PCB 610-618, BFM 50-66, MPS 275, 326-336).
    past = envelope(game_date="2025-11-20")
    assert parse(past).game_date == date(2025, 11, 20)
    assert kind(past, awaited=DAY) == "stale"
    assert kind(past, awaited=date(2025, 11, 20)) == "match"


def test_the_feature_store_is_recognised_by_output_table_alone() -> None:
    # P45 121-136, 173-206: the consumer accepts the class name or the output table.
    renamed = envelope(processor_name="FeatureStoreV3Processor")
    assert parse(renamed).is_feature_store
    assert kind(renamed) == "match"
    assert not parse(
        envelope(processor_name="FeatureStoreV3Processor", output_table="feature_store_v3")
    ).is_feature_store


@pytest.mark.parametrize("body", [PLAN, SCRIPT, SCRIPT_WITH_TOTAL], ids=["plan", "script", "script-total"])
def test_the_plans_shapes_are_still_accepted(body: dict[str, Any]) -> None:
    event = parse(body)
    assert (event.is_feature_store, event.is_ready, event.players_ready) == (True, True, 418)
    assert event.shape == ("plan" if body is PLAN else "script")
    assert kind(body) == "match"


def test_the_plans_run_id_is_its_correlation_id() -> None:
    assert parse(PLAN).correlation_id == "ml_feature_store_v2_20251128_071700"
    assert parse(SCRIPT).correlation_id is None


@pytest.mark.parametrize(
    "body",
    [
        envelope(),
        envelope(OTHER_PROCESSORS[0]),
        envelope(status="failed", error_message="x" * 800, error_type="ValueError"),
        envelope(extra_field={"nested": [1, 2]}),
        PLAN,
        SCRIPT,
        SCRIPT_WITH_TOTAL,
    ],
    ids=["envelope", "other-processor", "failed-long-error", "unknown-field", "plan", "script", "script-total"],
)
def test_every_shape_round_trips_exactly(body: dict[str, Any]) -> None:
    event = parse(body)
    again = Phase4CompletionEvent.from_json(event.to_json(), today=TODAY)
    assert again == event
    assert again.to_dict() == event.to_dict()
    if "error_message" not in body:
        assert json.loads(event.to_json()) == body  # the shape it was parsed from, field for field
    else:
        assert len(event.error_message or "") == 500  # free text, cut to its bound (once)


@pytest.mark.parametrize(
    "missing", ["processor_name", "phase", "execution_id", "correlation_id", "game_date", "status", "timestamp"]
)
def test_an_envelope_missing_a_field_the_publisher_checks_is_invalid(missing: str) -> None:
    # UPP 225-256: the publisher refuses to send a message without these.
    body = envelope(**{missing: None})
    with pytest.raises(InvalidEventError, match=f"missing {missing}"):
        parse(body)
    assert kind(body) == "invalid"
    with pytest.raises(InvalidEventError, match=f"missing {missing}"):
        parse({**envelope(), missing: None})  # an explicit null is missing too (UPP 222-223 drops them)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "done"}, "status must be one of"),
        ({"status": None, "event_type": "x"}, "missing status"),
        ({"record_count": -1}, "between 0"),
        ({"record_count": "450"}, "must be an integer"),
        ({"duration_seconds": "long"}, "must be a number"),
        ({"timestamp": "2025-11-28T11:17:03"}, "UTC offset"),
        ({"correlation_id": "x'; DROP TABLE t; --"}, "identifier"),
        ({"metadata": [1, 2]}, "JSON object"),
        ({"processor_name": "MLFeatureStoreProcessor", "correlation_id": "x y"}, "identifier"),
        ({"players_ready": 3, "run_id": "r"}, None),  # plan-only fields in an envelope are unknown fields, kept
    ],
)
def test_bad_envelope_fields_are_refused_with_a_reason(change: dict[str, Any], reason: str | None) -> None:
    body = envelope(**change)
    if reason is None:
        assert parse(body).extras == {"players_ready": 3, "run_id": "r"}
        return
    with pytest.raises(InvalidEventError, match=reason):
        parse(body)


def test_sorting_acks_and_counts_the_other_processors_and_records_only_ours() -> None:
    rejected: list[dict[str, str]] = []
    others: dict[str, int] = {}
    bodies = [envelope(p) for p in OTHER_PROCESSORS] + [envelope(OTHER_PROCESSORS[0])]
    bodies += [envelope(status="failed"), envelope(status="no_data"), envelope(), b"not json"]
    result = sort_messages(LOG, received(*bodies), DAY, rejected, others)
    assert others == {
        "PlayerDailyCacheProcessor": 2,
        "PlayerCompositeFactorsProcessor": 1,
        "PlayerShotZoneAnalysisProcessor": 1,
        "TeamDefenseZoneAnalysisProcessor": 1,
        "MLFeatureStoreProcessor:failed": 1,
        "MLFeatureStoreProcessor:no_data": 1,
    }
    assert [r["message_id"] for r in rejected] == ["9"]  # only the unusable one raises the warning
    assert [e.message_id for e in result.entries] == ["8"]  # the feature store's ready event, recorded
    assert result.ack_after_record == ["ack-8"]
    assert result.ack_now == [f"ack-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 9)]
    assert json.dumps(others)  # it travels in the trigger's event


def test_invalid_envelopes_are_rejected_with_their_reason() -> None:
    rejected: list[dict[str, str]] = []
    sort_messages(LOG, received(envelope(correlation_id=None), envelope(status="done")), DAY, rejected, {})
    assert [r["reason"] for r in rejected] == [
        "envelope is missing correlation_id",
        "status must be one of success, partial, no_data, failed, got 'done'",
    ]


@pytest.mark.integration
def test_the_trigger_waits_through_the_other_processors_for_the_feature_store(stack, drain) -> None:
    """Real Pub/Sub and inbox: all five processors publish on one topic (PCB 640); only ours ends the wait."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from nba_phase5 import config
    from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger
    from nba_phase5.bigquery.clients import publisher_client

    day = date(2025, 9, 3)  # a date no other test of the session waits for
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, config.PHASE4_COMPLETE_TOPIC)

    def publish(*bodies: dict[str, Any]) -> None:
        for body in bodies:  # JSON, no attributes (UPP 283-284, 302)
            publisher.publish(topic, json.dumps(body).encode()).result(timeout=30)

    def wait(seconds: float) -> dict[str, Any]:
        trigger = Phase4EventTrigger(
            project_id=stack.project,
            subscription=config.PHASE5_TRIGGER_SUBSCRIPTION,
            game_date=day.isoformat(),
            deadline=(datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(),
            poke_interval=0.5,
            pull_timeout=2,
        )

        async def first() -> dict[str, Any]:
            async for event in trigger.run():
                return event.payload
            raise AssertionError("trigger ended without an event")

        return asyncio.run(first())

    publish(*[envelope(p, game_date=day.isoformat()) for p in OTHER_PROCESSORS])
    publish(envelope(status="failed", game_date=day.isoformat()))
    ended = wait(6)
    assert (ended["status"], ended["rejected"]) == ("deadline", [])  # none of them ends the wait or warns
    assert ended["others"] == {p[0]: 1 for p in OTHER_PROCESSORS} | {"MLFeatureStoreProcessor:failed": 1}
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []  # all acked

    publish(envelope(OTHER_PROCESSORS[0], game_date=day.isoformat()), envelope(game_date=day.isoformat()))
    found = wait(20)
    assert found["status"] == "event"
    assert found["event"] == envelope(game_date=day.isoformat())  # recorded and handed on in its own shape
