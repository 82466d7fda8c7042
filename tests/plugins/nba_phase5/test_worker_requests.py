"""The workers' request message: parsed as the workers read it, and anything unusable refused as ValueError."""

from __future__ import annotations

import contextlib
import json
import random

import pytest

from nba_phase5.prediction_requests import PredictionRequest, request_id
from nba_phase5.worker_requests import WorkerRequest, parse_request


def test_parse_request_reads_the_workers_body_and_attributes() -> None:
    request = PredictionRequest("2025-11-28", "aaronadams", "0022500871", "b1", line_values=[25.5], force=True)
    parsed = parse_request(request.body(), request.attributes())
    assert parsed == WorkerRequest(
        request.request_id, "2025-11-28", "aaronadams", "0022500871", (25.5,), batch_id="b1", force=True
    )
    # A body published by hand, with no attributes: the coordinator's id, not forced.
    bare = parse_request(json.dumps({"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g"}).encode(), {})
    assert (bare.request_id, bare.force, bare.line_values) == (request_id("2025-11-28", "x"), False, ())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"player_lookup": "x", "game_date": "20251128", "game_id": "g"}',
        b'{"player_lookup": "x", "game_date": "2025-02-30", "game_id": "g"}',
        b'{"player_lookup": "", "game_date": "2025-11-28", "game_id": "g"}',
        b'{"player_lookup": "x", "game_date": "2025-11-28"}',
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": [true]}',
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": "25.5"}',
        b"\xff\xfe",
        b"[" * 5000,  # RecursionError inside json
        b'{"player_lookup": "x", "game_date": 20251128, "game_id": "g"}',
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": "abc"}',
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": [1e300]}',
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": [1' + b"0" * 400 + b"]}",
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": [NaN]}',
        b'{"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g", "line_values": [-0.5]}',
        b'{"player_lookup": "\\ud800x", "game_date": "2025-11-28", "game_id": "g"}',  # a lone surrogate
        b'{"player_lookup": "a\\u0000b", "game_date": "2025-11-28", "game_id": "g"}',
        b'{"player_lookup": "' + b"x" * 101 + b'", "game_date": "2025-11-28", "game_id": "g"}',
    ],
)
def test_unusable_requests_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the reasons differ; any ValueError is "invalid"
        parse_request(body, {})


def test_parse_request_raises_only_value_error_whatever_the_bytes() -> None:
    valid = PredictionRequest("2025-11-28", "aaronadams", "0022500871", "b1", line_values=[25.5]).body()
    rng = random.Random(7)
    for _ in range(3000):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        body = body[: rng.randint(0, len(body))] if rng.random() < 0.2 else body
        with contextlib.suppress(ValueError):  # anything else fails the test
            parse_request(bytes(body), {})
