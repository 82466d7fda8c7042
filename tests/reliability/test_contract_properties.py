"""Property: whatever bytes arrive on the trigger subscription, the contract either returns an event or
raises its own InvalidEventError — never anything else, never a crash of the trigger."""

from __future__ import annotations

import json
from datetime import date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from nba_phase5.core.contract import InvalidEventError, Phase4CompletionEvent

TODAY = date(2025, 11, 28)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)
near_valid = st.fixed_dictionaries(
    {
        "event_type": st.sampled_from(["phase4_complete", "phase3_complete", ""]) | json_values,
        "game_date": st.dates().map(date.isoformat) | st.text(max_size=12) | json_values,
        "players_ready": st.integers(-5, 6000) | json_values,
        "players_total": st.integers(-5, 6000) | json_values,
    },
    optional={
        "processor": json_values,
        "completed_at": st.text(max_size=30) | json_values,
        "correlation_id": json_values,
        "players_processed": st.integers(-5, 6000) | json_values,
        "players_failed": st.integers(-5, 6000) | json_values,
        "timestamp": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | json_values,
        "run_id": json_values,
        "extra": json_values,
    },
)

# The platform's envelope (docs/platform.md §1.2): a valid one, then up to two fields replaced by anything
# and up to two dropped, so that most examples are near the edge rather than plainly broken.
valid_envelope = st.fixed_dictionaries(
    {
        "processor_name": st.sampled_from(["MLFeatureStoreProcessor", "PlayerDailyCacheProcessor", "X"]),
        "phase": st.just("phase_4_precompute"),
        "execution_id": st.text(alphabet="0123456789abcdef", min_size=8, max_size=8),
        "correlation_id": st.uuids().map(str),
        "game_date": st.dates(date(2000, 1, 1), date(2025, 12, 1)).map(date.isoformat),
        "status": st.sampled_from(["success", "partial", "no_data", "failed"]),
        "timestamp": st.datetimes(datetime(2001, 1, 1), datetime(2199, 1, 1), timezones=st.timezones()).map(
            lambda d: d.isoformat()
        ),
    },
    optional={
        "output_table": st.sampled_from(["ml_feature_store_v2", "player_daily_cache"]),
        "output_dataset": st.sampled_from(["nba_predictions", "nba_precompute"]),
        "record_count": st.integers(0, 10**7),
        "records_failed": st.just(0),
        "duration_seconds": st.floats(0, 10**6) | st.integers(0, 10**6),
        "trigger_source": st.sampled_from(["manual", "pubsub"]),
        "parent_processor": st.just("PlayerCompositeFactorsProcessor"),
        "trigger_message_id": st.integers(0, 10**17).map(str),
        "error_message": st.text(max_size=800),
        "error_type": st.just("ValueError"),
        "metadata": st.dictionaries(st.text(max_size=70), json_values, max_size=25),
        "extra": json_values,
    },
)
ENVELOPE_FIELDS = [
    "processor_name", "phase", "execution_id", "correlation_id", "game_date", "status", "timestamp",
    "output_table", "record_count", "duration_seconds", "metadata", "error_message", "event_type",
]  # fmt: skip
near_valid_envelope = st.tuples(
    valid_envelope,
    st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), json_values, max_size=2),
    st.lists(st.sampled_from(ENVELOPE_FIELDS), max_size=2),
).map(lambda t: {k: v for k, v in {**t[0], **t[1]}.items() if k not in t[2]})


def parse_or_refuse(body: bytes) -> None:
    try:
        event = Phase4CompletionEvent.from_json(body, today=TODAY)
    except InvalidEventError as exc:
        reason = exc.reason
    else:
        reason = None
    if reason is not None:
        assert reason.strip()
        return
    # Anything accepted is a real, consistent event that round-trips exactly, in the shape it came in.
    if event.players_ready is not None:
        assert 0 <= event.players_ready <= (event.total_players if event.total_players is not None else 5000)
    else:
        assert event.is_envelope
    again = Phase4CompletionEvent.from_json(event.to_json(), today=TODAY)
    assert again == event
    assert again.to_dict() == event.to_dict()
    assert again.shape == event.shape
    assert isinstance(event.is_feature_store and event.is_ready, bool)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(body: bytes) -> None:
    parse_or_refuse(body)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json(value: object) -> None:
    parse_or_refuse(json.dumps(value).encode())


@settings(max_examples=500, deadline=None)
@given(near_valid)
def test_payloads_close_to_valid(payload: dict[str, object]) -> None:
    parse_or_refuse(json.dumps(payload, default=str).encode())


@settings(max_examples=500, deadline=None)
@given(near_valid_envelope)
def test_envelopes_close_to_valid(payload: dict[str, object]) -> None:
    parse_or_refuse(json.dumps(payload, default=str).encode())


@settings(max_examples=300, deadline=None)
@given(valid_envelope)
def test_valid_envelopes_are_accepted_and_round_trip(payload: dict[str, object]) -> None:
    event = Phase4CompletionEvent.from_json(json.dumps(payload).encode(), today=TODAY)
    assert event.is_ready == (payload["status"] in ("success", "partial"))
    parse_or_refuse(json.dumps(payload).encode())


nested = st.tuples(st.integers(1, 6000), st.sampled_from([b"[", b'{"a":', b"[{" + b'"k":'])).map(
    lambda spec: spec[1] * spec[0]
)
odd_bytes = st.binary(max_size=64).map(lambda b: b'{"game_date":"' + b + b'"}')
huge_numbers = st.integers(300, 6000).map(lambda n: b'{"players_ready":1' + b"0" * n + b"}")
edge_timestamps = st.sampled_from(
    ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "1999-12-31T23:59:59Z", "2200-01-01T00:00:00Z"]
)


@settings(max_examples=200, deadline=None)
@given(nested | odd_bytes | huge_numbers)
def test_deep_nesting_odd_encodings_and_huge_numbers(body: bytes) -> None:
    # Unclosed nesting up to 6,000 deep (json.loads raises RecursionError past ~1,000), broken UTF-8
    # inside a string, integers past Python's 4,300-digit limit: a reason every time, never a crash.
    parse_or_refuse(body)


@settings(max_examples=50, deadline=None)
@given(edge_timestamps)
def test_timestamps_at_the_calendars_edges(stamp: str) -> None:
    body = {"event_type": "phase4_complete", "game_date": "2025-11-28", "players_ready": 1, "timestamp": stamp}
    parse_or_refuse(json.dumps(body).encode())
