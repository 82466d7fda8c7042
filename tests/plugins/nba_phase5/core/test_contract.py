"""The Phase 4 event contract: what is accepted, and every way a payload is refused."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from nba_phase5.core.contract import MAX_EVENT_BYTES, InvalidEventError, Phase4CompletionEvent

TODAY = date(2025, 11, 28)
# The seed's manual test shape.
VALID = {"event_type": "phase4_complete", "game_date": "2025-11-28", "players_ready": 420, "players_total": 450}
# The planning guide's shape (docs/platform.md §1.5); the platform's real envelope is tested in
# test_phase4_envelope_contract.py.
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


def parse(payload: object) -> Phase4CompletionEvent:
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return Phase4CompletionEvent.from_json(body, today=TODAY)


def test_valid_event_round_trips() -> None:
    event = parse(VALID)
    assert event == Phase4CompletionEvent(date(2025, 11, 28), 420, 450)
    assert event.ready_pct == pytest.approx(93.333, abs=0.001)
    assert parse(event.to_json()) == event


def test_the_plans_event_is_accepted() -> None:
    event = parse(PLAN)
    assert (event.players_ready, event.players_processed, event.players_failed) == (418, 450, 2)
    assert event.total_players == 450  # no players_total: players_processed is the total
    assert event.timestamp == datetime(2025, 11, 28, 7, 17, tzinfo=UTC)
    assert event.run_id == "ml_feature_store_v2_20251128_071700"
    assert event.processor == "ml_feature_store_v2"
    assert (event.shape, event.is_feature_store, event.is_ready) == ("plan", True, True)
    assert event.correlation_id == event.run_id  # the plan's run id is what traces the pipeline
    assert json.loads(event.to_json()) == PLAN


def test_the_infrastructure_scripts_event_without_a_total_is_accepted() -> None:
    event = parse({"event_type": "phase4_complete", "game_date": "2025-11-28", "players_ready": 418})
    assert event.total_players is None
    assert event.ready_pct is None
    assert event.shape == "script"


def test_a_plan_shape_from_another_processor_is_not_the_feature_store() -> None:
    assert not parse({**PLAN, "processor": "player_daily_cache"}).is_feature_store


def test_unknown_fields_are_ignored_but_kept() -> None:
    event = parse({**PLAN, "feature_version": "v2_enhanced_47", "shards": [1, 2]})
    assert event == parse(PLAN)
    assert event.extras == {"feature_version": "v2_enhanced_47", "shards": [1, 2]}
    assert json.loads(event.to_json())["feature_version"] == "v2_enhanced_47"


def test_unknown_fields_are_kept_in_a_form_every_hop_encodes() -> None:
    # Issue 23 (test_contract_encodable.py): past 64 bits, NaN and lone surrogates are repaired, not refused.
    event = parse({**PLAN, "big": 2**64, "ratio": float("nan"), "note": "a\ud800", "__type": [float("-inf")]})
    assert event == parse(PLAN)
    assert event.extras == {"big": "18446744073709551616", "ratio": "NaN", "note": "a\ufffd", "___type": ["-Infinity"]}
    assert parse(event.to_json()).extras == event.extras


def test_older_field_names_still_read() -> None:
    event = parse({**VALID, "completed_at": "2025-11-28T07:12:00Z", "correlation_id": "abc-123"})
    assert event.timestamp == datetime(2025, 11, 28, 7, 12, tzinfo=UTC)
    assert (event.run_id, event.correlation_id) == ("abc-123", "abc-123")
    with pytest.raises(InvalidEventError, match="differ"):
        parse({**PLAN, "correlation_id": "other"})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b"null", "JSON object"),
        (b'"phase4_complete"', "JSON object"),
        (b"x" * (MAX_EVENT_BYTES + 1), "limit"),
    ],
)
def test_unreadable_bodies_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidEventError, match=reason):
        parse(body)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"game_date": None}, "must be a string"),
        ({"game_date": 20251128}, "must be a string"),
        ({"game_date": "2025-02-30"}, "not a calendar date"),
        ({"game_date": "2025-13-01"}, "not a calendar date"),
        ({"game_date": "28/11/2025"}, "YYYY-MM-DD"),
        ({"game_date": "2025-11-28T00:00:00"}, "YYYY-MM-DD"),
        ({"game_date": "2025-11-28'; DROP TABLE x; --"}, "YYYY-MM-DD"),
        ({"game_date": "2099-01-01"}, "days ahead"),
        ({"game_date": "1900-01-01"}, "before the NBA"),
        ({"event_type": "phase3_complete"}, "event_type"),
        ({"event_type": None}, "event_type"),
        ({"players_ready": "420"}, "must be an integer"),
        ({"players_ready": 420.0}, "must be an integer"),
        ({"players_ready": True}, "must be an integer"),
        ({"players_ready": -1}, "between 0"),
        ({"players_total": 10**9}, "between 0"),
        ({"players_ready": 451}, "exceeds the total"),
        ({"players_processed": -3}, "between 0"),
        ({"players_failed": "2"}, "must be an integer"),
        ({"processor": ""}, "non-empty string"),
        ({"processor": 7}, "non-empty string"),
        ({"run_id": "x" * 500}, "at most"),
        ({"processor": "x'; DROP TABLE t; --"}, "identifier"),
        ({"run_id": "a b"}, "identifier"),
        ({"run_id": "r\ud800"}, "lone surrogate"),  # test_contract_encodable.py: no UTF-8 encoder writes it
        ({"players_ready": 2**70}, "between 0"),
        ({"timestamp": "yesterday"}, "ISO 8601"),
        ({"timestamp": "2025-11-28T07:12:00"}, "UTC offset"),
        ({"timestamp": "9999-12-31T23:59:59-23:59"}, "out of range"),
        ({"timestamp": 1732777020}, "ISO 8601"),
    ],
)
def test_bad_fields_are_refused_with_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidEventError, match=reason) as info:
        parse({**VALID, **change})
    assert reason.split(":")[0] in info.value.reason


@pytest.mark.parametrize("missing", ["event_type", "game_date", "players_ready"])
def test_missing_required_field_is_named(missing: str) -> None:
    payload = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(InvalidEventError, match=f"missing {missing}"):
        parse(payload)


def test_constructor_validates_too() -> None:
    with pytest.raises(InvalidEventError, match="exceeds"):
        Phase4CompletionEvent(date(2025, 11, 28), 10, 5)
    with pytest.raises(InvalidEventError, match="UTC offset"):
        Phase4CompletionEvent(date(2025, 11, 28), 1, 5, timestamp=datetime(2025, 11, 28))
    with pytest.raises(InvalidEventError, match="players_ready must be an integer"):
        Phase4CompletionEvent(date(2025, 11, 28))  # the plan's shapes need players_ready
    with pytest.raises(InvalidEventError, match="belongs to the envelope"):
        Phase4CompletionEvent(date(2025, 11, 28), 1, status="success")  # no processor_name: not an envelope
    stamp = datetime(2025, 11, 28, 7, tzinfo=UTC)
    envelope = {"processor_name": "MLFeatureStoreProcessor", "phase": "phase_4_precompute", "timestamp": stamp}
    with pytest.raises(InvalidEventError, match="missing execution_id, correlation_id, status"):
        Phase4CompletionEvent(date(2025, 11, 28), **envelope)
    ids = {"execution_id": "a1b2c3d4", "correlation_id": "a1b2c3d4", "status": "success"}
    with pytest.raises(InvalidEventError, match="belongs to the plan"):
        Phase4CompletionEvent(date(2025, 11, 28), 5, **envelope, **ids)
    assert Phase4CompletionEvent(date(2025, 11, 28), **envelope, **ids).players_ready is None


def test_zero_total_is_valid_and_reports_zero_pct() -> None:
    assert parse({**VALID, "players_ready": 0, "players_total": 0}).ready_pct == 0.0


@pytest.mark.parametrize(
    "body",
    [b"[" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"1" + b"0" * 5000, b'"\\ud800"'],
    ids=["deep-array", "deep-object", "huge-number", "lone-surrogate"],
)
def test_bodies_that_break_the_parser_are_refused_not_raised(body: bytes) -> None:
    # 5,000 nested brackets make json.loads raise RecursionError: it must be a reason, not a crash.
    with pytest.raises(InvalidEventError) as info:
        parse(body)
    assert info.value.reason
