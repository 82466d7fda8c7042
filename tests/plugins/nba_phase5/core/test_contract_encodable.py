"""Issue 23, item 3: every event the contract accepts is encodable wherever it travels.

(a) The trigger event, in msgpack frames from the triggerer's runner subprocess to its supervisor:
``TriggerCommsDecoder.asend`` (``airflow.jobs.triggerer_job_runner``) sends ``_RequestFrame(id,
body=TriggerStateChanges(events=[TriggerEventEntry]).model_dump()).as_bytes()``, encoded by
``airflow.sdk.execution_time.comms._new_encoder()`` (msgspec's msgpack ``Encoder``); the supervisor reads it
with ``msgspec.msgpack.Decoder(_RequestFrame)`` and ``TriggerRunnerSupervisor.decoder``, and
``handle_event_submit`` (``airflow.models.trigger``) stores it in ``next_kwargs`` with serde (JSONB on
PostgreSQL). (b) XCom: ``BaseXCom.serialize_value`` (serde, JSONB again). (c) Strict JSON. (d) BigQuery: the
inbox row and the run history's ``trigger_message_data``, read by ``PARSE_JSON`` in its default exact mode.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nba_phase5.airflow.operators.phase4_event_wait import Phase4EventWaitOperator
from nba_phase5.airflow.tasks.run_history import production_row
from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger
from nba_phase5.bigquery.inbox import InboxEntry
from nba_phase5.core import json_safe
from nba_phase5.core.contract import MAX_EVENT_BYTES, InvalidEventError, Phase4CompletionEvent
from nba_phase5_local.phase4_publisher import build_envelope, build_event

TODAY = date(2025, 11, 28)
RECEIVED = datetime(2025, 11, 28, 9, tzinfo=UTC)
# PARSE_JSON stores 64-bit signed/unsigned integers and FLOAT64 exactly, and in its default `exact` mode
# fails on any other number: https://cloud.google.com/bigquery/docs/reference/standard-sql/json_functions#parse_json
# (the GoogleSQL text, google/zetasql docs/json_functions.md, `PARSE_JSON`).
BIGQUERY_INTEGERS = range(-(2**63), 2**64)

# The accepted shapes (docs/platform.md §1.2, §1.5), as the package's own publisher builds them
# (test_phase4_envelope_contract.py writes the same from the platform's code): the feature store's envelope,
# a partial one, another processor's, a failed one, the plan's and the scripts' shapes.
STAMP = datetime(2025, 11, 28, 11, 17, 3, 123456, tzinfo=UTC)
ENVELOPE = build_envelope(TODAY, record_count=450, execution_id="3f9c1a2b", timestamp=STAMP).to_dict()
OTHER = build_envelope(TODAY, record_count=30, processor="PlayerDailyCacheProcessor", timestamp=STAMP).to_dict()
FAILED = {**ENVELOPE, "status": "failed", "error_message": "boom", "error_type": "ValueError"}
PLAN = build_event(TODAY, 418, 450, players_failed=2, run_id="ml_feature_store_v2_20251128_071700").to_dict()
SCRIPT = {"event_type": "phase4_complete", "game_date": "2025-11-28", "players_ready": 418}
SHAPES = [ENVELOPE, {**ENVELOPE, "status": "partial"}, OTHER, FAILED, PLAN, SCRIPT, {**SCRIPT, "players_total": 450}]
# Every field name the contract reads: an extra field is any other name (one of these would change the event).
KNOWN = set().union(*SHAPES) | {"parent_processor", "trigger_message_id", "completed_at", "correlation_id"}


# ---- the hops ---------------------------------------------------------------------------------------------


def through_the_triggerer(payload: dict[str, Any]) -> dict[str, Any]:
    """(a) The runner → supervisor frame, exactly as Airflow's triggerer builds, sends and reads it."""
    from airflow.jobs.triggerer_job_runner import TriggerEventEntry, TriggerRunnerSupervisor, messages
    from airflow.sdk.execution_time.comms import _RequestFrame
    from airflow.triggers.base import TriggerEvent

    changes = messages.TriggerStateChanges(events=[TriggerEventEntry(7, TriggerEvent(payload), None)])
    frame = _RequestFrame(id=1, body=changes.model_dump()).as_bytes()
    request = msgspec.msgpack.Decoder(_RequestFrame).decode(frame[4:])
    received = TriggerRunnerSupervisor.decoder.validate_python(request.body)
    assert isinstance(received, messages.TriggerStateChanges)
    assert received.events
    return received.events[0].event.payload


def holds_nul(value: object) -> bool:
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    return "\x00" in value if isinstance(value, str) else isinstance(value, list) and any(map(holds_nul, value))


def jsonb(value: object) -> Any:
    """JSON text as PostgreSQL's JSONB takes it (no NaN, no lone surrogate, no NUL), read back."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    loaded = json.loads(text.encode("utf-8"))
    assert not holds_nul(loaded), "JSONB refuses \\u0000"
    return loaded


def through_next_kwargs(payload: dict[str, Any]) -> dict[str, Any]:
    """The supervisor stores the payload in next_kwargs (handle_event_submit), the task reads it back."""
    from airflow.sdk.serde import deserialize, serialize

    return deserialize(jsonb(serialize({"event": payload})))["event"]


def through_xcom(value: dict[str, Any]) -> object:
    """(b) The task's return value as XCom: serde, then JSON into the xcom table, then read back."""
    from airflow.sdk.bases.xcom import BaseXCom

    return BaseXCom.deserialize_value(SimpleNamespace(value=jsonb(BaseXCom.serialize_value(value))))


def strict_json(value: object) -> object:
    """(c) Strict JSON: no NaN/Infinity, and the text encodes as UTF-8 (no lone surrogate)."""
    return json.loads(json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8"))


def assert_bigquery_exact(text: str) -> None:
    """(d) What PARSE_JSON accepts in exact mode: every number an INT64/UINT64 or a FLOAT64 that round-trips."""

    def refuse(token: str) -> None:
        raise AssertionError(f"PARSE_JSON refuses {token}")

    pending = [json.loads(text, parse_constant=refuse)]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            pending += value
        elif isinstance(value, str):
            value.encode("utf-8")  # no lone surrogate
        elif isinstance(value, float):
            assert math.isfinite(value)
            assert float(repr(value)) == value
        elif isinstance(value, int) and not isinstance(value, bool):
            assert value in BIGQUERY_INTEGERS, f"integer {value} is outside INT64/UINT64"


def assert_encodable_everywhere(event: Phase4CompletionEvent) -> None:
    """The event, once recorded and handed on, survives every hop unchanged."""
    trigger = Phase4EventTrigger(project_id="p", subscription="s", game_date="2025-11-28", deadline="2025-11-28")
    payload = trigger._event(InboxEntry("m-1", event, RECEIVED), 1, {"rejected": [], "others": {}, "late": []}).payload
    assert through_the_triggerer(payload) == payload
    assert through_next_kwargs(payload) == payload
    result = Phase4EventWaitOperator(task_id="wait", game_date="2025-11-28").execute_complete({}, payload)
    assert result["event"] == event.to_dict()
    assert through_xcom(result) == result
    assert strict_json(payload) == payload
    # The inbox's STRING (inbox.record), parsed again by the contract (inbox.find), and the run history's JSON.
    stored = json.dumps(event.to_dict(), separators=(",", ":"))
    assert_bigquery_exact(stored)
    again = Phase4CompletionEvent.from_json(stored, today=TODAY)
    assert (again, again.to_dict(), again.extras) == (event, event.to_dict(), event.extras)
    row = production_row(
        run_id="r", day=TODAY, status="running", triggered_by="pubsub", started=RECEIVED, finished=None,
        force=False, figures={}, message_id="m-1", message_data=result["event"],
    )  # fmt: skip
    assert_bigquery_exact(row["trigger_message_data"])


# ---- the property -----------------------------------------------------------------------------------------

# Text with what JSON can carry but not every encoder: lone surrogates (Hypothesis leaves them out by
# default), NUL, astral characters, and the keys Airflow's serde reserves.
any_text = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(
    ["\ud800", "a\udfffb", "\ud83d", "\ud83d\ude00", "\x00", "NaN", "", "é" * 3]
)
keys = any_text | st.sampled_from(sorted(json_safe.SERDE_RESERVED_KEYS))
numbers = (
    st.integers()
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**40, -(10**40)])
    | st.floats(allow_nan=True, allow_infinity=True)
)
json_ish = st.recursive(
    st.none() | st.booleans() | numbers | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)
deep = st.integers(1, 500).map(lambda n: json.loads("[" * n + "1" + "]" * n))
extra_fields = st.dictionaries(keys.filter(lambda k: k not in KNOWN), json_ish | deep, max_size=25)


@st.composite
def accepted_bodies(draw: st.DrawFn) -> bytes:
    """One of the accepted shapes with arbitrary extra fields (and metadata, error text), as Phase 4 writes it."""
    body = {**draw(st.sampled_from(SHAPES)), **draw(extra_fields)}
    if "processor_name" in body and draw(st.booleans()):
        body["metadata"] = draw(st.dictionaries(keys, json_ish | deep, max_size=25))
    if body.get("status") == "failed":
        body["error_message"] = draw(st.text(max_size=600))  # free text: NUL and all (no lone surrogate)
    # Phase 4's json.dumps (docs/platform.md §1.1) writes NaN, Infinity, big integers and \ud800 escapes.
    return json.dumps(body).encode("utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(accepted_bodies())
def test_every_accepted_event_encodes_through_every_hop_and_round_trips(body: bytes) -> None:
    assume(len(body) <= MAX_EVENT_BYTES)
    event = Phase4CompletionEvent.from_json(body, today=TODAY)  # extra fields never make an event invalid
    assert_encodable_everywhere(event)


# ---- the three defects, and the known fields ----------------------------------------------------------------


def parse(body: dict[str, Any] | str) -> Phase4CompletionEvent:
    return Phase4CompletionEvent.from_json(body if isinstance(body, str) else json.dumps(body), today=TODAY)


def test_an_integer_past_64_bits_in_an_extra_field_is_kept_as_its_digits() -> None:
    event = parse({**ENVELOPE, "shard_key": 2**70, "ids": [2**64, -(2**63) - 1, 2**63 - 1]})
    assert event.extras == {"shard_key": str(2**70), "ids": [str(2**64), str(-(2**63) - 1), 2**63 - 1]}
    assert_encodable_everywhere(event)


def test_a_lone_surrogate_in_an_extra_field_becomes_the_replacement_character() -> None:
    body = json.dumps({**ENVELOPE, "note": "a\ud800b", "pair": "\ud83d\ude00", "k\udc00": {"\ud800": "x"}})
    assert '"a\\ud800b"' in body  # the escape Phase 4's json.dumps writes, valid JSON that json.loads reads
    event = parse(body)
    assert event.extras == {"note": "a\ufffdb", "pair": "\U0001f600", "k\ufffd": {"\ufffd": "x"}}
    assert_encodable_everywhere(event)


def test_nan_and_infinity_in_extra_fields_and_metadata_become_strings() -> None:
    body = '{"processor_name": "MLFeatureStoreProcessor", "phase": "p", "execution_id": "a1", "correlation_id": "a1",'
    body += ' "game_date": "2025-11-28", "status": "success", "timestamp": "2025-11-28T11:17:03+00:00",'
    body += ' "metadata": {"total_runtime": NaN, "rows": [Infinity, 1]}, "ratio": -Infinity, "far": 1e400}'
    event = parse(body)
    assert event.metadata == {"total_runtime": "NaN", "rows": ["Infinity", 1]}
    assert event.extras == {"ratio": "-Infinity", "far": "Infinity"}
    assert_encodable_everywhere(event)
    # An event built in code is held to the same rule.
    coded = Phase4CompletionEvent(
        TODAY, processor_name="MLFeatureStoreProcessor", phase="p", execution_id="a", correlation_id="a",
        status="success", timestamp=RECEIVED, metadata={"total_runtime": math.nan}, extras={"x": math.inf},
    )  # fmt: skip
    assert (coded.metadata, coded.extras) == ({"total_runtime": "NaN"}, {"x": "Infinity"})
    assert_encodable_everywhere(coded)


def test_keys_airflow_reserves_and_nul_are_made_safe() -> None:
    # serde refuses a dict with __classname__ and reads {"__type", "__var"} back as something else; JSONB
    # (next_kwargs, XCom on PostgreSQL) refuses NUL.
    event = parse({**ENVELOPE, "__classname__": "os.system", "x": {"__type": "dict", "__var": {}}, "z": "a\x00"})
    assert event.extras == {"___classname__": "os.system", "x": {"___type": "dict", "___var": {}}, "z": "a\ufffd"}
    assert_encodable_everywhere(event)


def test_deep_nesting_in_an_extra_field_is_cut_not_refused() -> None:
    event = parse(json.dumps({**ENVELOPE, "deep": None}).replace('"deep": null', '"deep": ' + "[" * 600 + "]" * 600))
    assert isinstance(event.extras["deep"], str)
    assert len(event.extras["deep"]) == 200
    assert_encodable_everywhere(event)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "failed", "error_message": "boom \ud800"}, "error_message holds a lone surrogate"),
        ({"correlation_id": "a\ud800"}, "correlation_id holds a lone surrogate"),
        ({"record_count": 2**70}, "record_count must be between 0"),
        ({"records_failed": -(2**64)}, "records_failed must be between 0"),
        ({"duration_seconds": math.nan}, "duration_seconds must be between 0"),
        ({"duration_seconds": math.inf}, "duration_seconds must be between 0"),
        ({"duration_seconds": 10**400}, "duration_seconds must be between 0"),
    ],
)
def test_a_known_field_no_encoder_writes_is_refused_with_its_reason(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEventError, match=reason):
        parse({**ENVELOPE, **change})


def test_a_failed_runs_error_text_keeps_its_words_and_loses_nul() -> None:
    event = parse({**FAILED, "error_message": "bad\x00byte"})
    assert event.error_message == "bad\ufffdbyte"
    assert parse(event.to_json().decode()) == event


@pytest.mark.integration
def test_the_real_trigger_hands_on_an_event_with_every_defect(stack, drain) -> None:
    """Published as Phase 4 would, pulled, recorded in the inbox and yielded by the real trigger: encodable."""
    from nba_phase5 import config
    from nba_phase5.bigquery.clients import publisher_client

    day = date(2025, 9, 23)  # a date no other test of the session waits for
    drain(config.PHASE5_TRIGGER_SUBSCRIPTION)
    publisher = publisher_client()
    topic = publisher.topic_path(stack.project, config.PHASE4_COMPLETE_TOPIC)
    body = {**ENVELOPE, "game_date": day.isoformat(), "big": 2**70, "odd": "x\ud800", "ratio": math.nan}
    publisher.publish(topic, json.dumps(body).encode()).result(timeout=30)
    deadline = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    trigger = Phase4EventTrigger(
        project_id=stack.project, subscription=config.PHASE5_TRIGGER_SUBSCRIPTION, game_date=day.isoformat(),
        deadline=deadline, poke_interval=0.5, pull_timeout=2,
    )  # fmt: skip

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    payload = asyncio.run(first())
    assert payload["status"] == "event"
    kept = {key: payload["event"][key] for key in ("big", "odd", "ratio")}
    assert kept == {"big": str(2**70), "odd": "x\ufffd", "ratio": "NaN"}
    assert through_the_triggerer(payload) == payload
    assert through_next_kwargs(payload) == payload
    result = Phase4EventWaitOperator(task_id="wait", game_date=day.isoformat()).execute_complete({}, payload)
    assert through_xcom(result) == result
    assert drain(config.PHASE5_TRIGGER_SUBSCRIPTION) == []  # recorded, then acked
