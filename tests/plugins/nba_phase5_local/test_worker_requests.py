"""The workers' request body, read as the platform's worker reads it (docs/platform.md §7.2): required keys,
defaults, ignored fields; whatever the bytes, an answer and never an exception."""

from __future__ import annotations

import json
import random
from datetime import date

from nba_phase5.core.prediction_requests import request_id
from nba_phase5_local.seeding import FEATURE_NAMES
from nba_phase5_local.worker_answers import answer
from nba_phase5_local.worker_requests import ACK, RETRY, Answer, WorkerRequest, dataset, parse_request, queryable

BODY = {
    "player_lookup": "aaronadams",
    "game_date": "2025-11-28",
    "game_id": "0022500871",
    "line_values": [25.5],
    "has_prop_line": True,
    "actual_prop_line": 25.5,
    "line_source": "ACTUAL_PROP",
    "line_source_api": "ODDS_API",
    "batch_id": "batch_2025-11-28_1764300000",
    "correlation_id": "c1",
    "prediction_run_mode": "EARLY",
    "dataset_prefix": "test",
}


def test_parse_request_reads_the_fields_the_worker_reads() -> None:
    parsed = parse_request(json.dumps(BODY).encode(), attributes={"request_id": "r-1", "batch_id": "other"})
    assert parsed == WorkerRequest(
        request_id="r-1",
        player_lookup="aaronadams",
        game_date="2025-11-28",
        game_day=date(2025, 11, 28),
        game_id="0022500871",
        line_values=[25.5],
        batch_id="batch_2025-11-28_1764300000",  # from the body: attributes are not read
        correlation_id="c1",
        prediction_run_mode="EARLY",
        has_prop_line=True,
        actual_prop_line=25.5,
        line_source="ACTUAL_PROP",
        line_source_api="ODDS_API",
        dataset_prefix="test",
    )
    assert dataset(parsed, name="nba_predictions") == "test_nba_predictions"


def test_defaults_for_a_bare_body() -> None:
    bare = parse_request(json.dumps({"player_lookup": "x", "game_date": "2025-11-28", "game_id": "g"}).encode())
    assert isinstance(bare, WorkerRequest)
    # The fan-out's id when there is no attribute; WK 790, 810, 812, 792 defaults.
    assert bare.request_id == request_id("2025-11-28", "x")
    assert (bare.line_values, bare.has_prop_line, bare.line_source, bare.prediction_run_mode) == (
        [],
        True,
        "ACTUAL_PROP",
        "OVERNIGHT",
    )
    assert (bare.batch_id, bare.correlation_id, bare.dataset_prefix) == (None, None, "")
    assert dataset(bare, name="nba_predictions") == "nba_predictions"
    explicit_null = parse_request(json.dumps({**BODY, "line_values": None, "line_source": None}).encode())
    assert isinstance(explicit_null, WorkerRequest)
    assert (explicit_null.line_values, explicit_null.line_source) == ([], None)  # `or []`; .get keeps None


def test_what_makes_a_request_unqueryable() -> None:
    def parsed(**changes: object) -> WorkerRequest:
        request = parse_request(json.dumps({**BODY, **changes}).encode())
        assert isinstance(request, WorkerRequest)
        return request

    assert queryable(parsed()) is None
    assert queryable(parsed(player_lookup=None)) == "player_lookup is NoneType, not text"
    assert queryable(parsed(game_id=["g"])) == "game_id is list, not text"
    assert queryable(parsed(player_lookup="\ud800")) == "player_lookup is not valid Unicode text (a lone surrogate)"
    assert queryable(parsed(dataset_prefix="a-b")) == "dataset_prefix 'a-b' names no dataset"
    assert queryable(parsed(dataset_prefix="")) is None


def test_whatever_the_bytes_the_worker_answers() -> None:
    features = {
        ("2025-11-28", "aaronadams"): {
            "universal_player_id": None,
            "feature_names": list(FEATURE_NAMES),
            "features": [20.0] * len(FEATURE_NAMES),
            "feature_quality_score": 90,
        }
    }
    valid = json.dumps({k: v for k, v in BODY.items() if k != "dataset_prefix"}).encode()
    assert answer(valid, today=date(2025, 11, 28), features=features).reason == "staged"
    rng = random.Random(7)
    statuses = set()
    for _ in range(3000):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        body = body[: rng.randint(0, len(body))] if rng.random() < 0.2 else body
        got = answer(bytes(body), today=date(2025, 11, 28), features=features)  # anything raised fails the test
        assert isinstance(got, Answer)
        assert got.status in (ACK, RETRY)
        statuses.add(got.status)
        assert not got.rows or got.status == ACK
    assert statuses == {ACK, RETRY}
