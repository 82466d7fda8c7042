"""The stand-in worker against the platform worker's contract (docs/platform.md §7.2-§7.7).

The fixtures are built from the platform's code as docs/platform.md reports it, each citing the file and
lines (WK = predictions/worker/worker.py, BSW = predictions/shared/batch_staging_writer.py, PL =
predictions/coordinator/player_loader.py, CO = predictions/coordinator/coordinator.py). The acceptance
rules are table-driven through the pure answer function; the integration tests run the real worker loop
on the Pub/Sub emulator and bqemulator.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from nba_phase5 import config
from nba_phase5.bigquery.bq import run_query, table_schema
from nba_phase5.core.staging import InvalidBatchIdError, new_worker_id, staging_prefix, staging_table_id
from nba_phase5_local.seeding import FEATURE_NAMES
from nba_phase5_local.worker_answers import PERMANENT_SKIP_REASONS, answer, skipped
from nba_phase5_local.worker_requests import ACK, RETRY, Answer, WorkerRequest, parse_request

TODAY = date(2025, 11, 28)
NOW = datetime(2025, 11, 28, 9, 30, 15, 123456, tzinfo=UTC)
BATCH = "batch_2025-11-28_1764318615"  # CO 1089: batch_{date}_{epoch}
FEATURES = {name: 10.0 for name in FEATURE_NAMES} | {
    "points_avg_last_5": 30.0,
    "points_avg_last_10": 20.0,
    "points_avg_season": 10.0,
    "opponent_def_rating": 112.0,
}
# The model's prediction for FEATURES: 0.5·30 + 0.3·20 + 0.2·10 = 23.0 (nba_phase5_local.local_model).
PREDICTED = Decimal("23.0")


def feature_row(quality: float | None = 92.5, **overrides: float) -> dict[str, Any]:
    values = FEATURES | overrides
    return {
        "universal_player_id": "aaronadams_001",
        "feature_names": list(values),
        "features": list(values.values()),
        "feature_quality_score": None if quality is None else Decimal(str(quality)),
    }


def body(**changes: Any) -> dict[str, Any]:
    """A request as the coordinator publishes it: the 29 fields always present (PL 438-482, CO 3582-3599)."""
    request = {
        "player_lookup": "aaronadams",
        "game_date": TODAY.isoformat(),
        "game_id": "20251128_LAL_BOS",
        "line_values": [25.5],  # PL 602-605: [round(line, 1)]
        "team_abbr": "LAL",
        "opponent_team_abbr": "BOS",
        "is_home": False,
        "projected_minutes": 31.5,
        "has_prop_line": True,  # PL 453: line_source == 'ACTUAL_PROP'
        "actual_prop_line": 25.5,
        "line_source": "ACTUAL_PROP",
        "estimated_line_value": 24.2,
        "estimation_method": "points_avg_last_5",
        "line_source_api": "ODDS_API",
        "sportsbook": "DRAFTKINGS",
        "was_line_fallback": False,
        "line_minutes_before_game": 95,
        "needs_bootstrap": False,
        "kalshi_available": False,
        "kalshi_line": None,
        "kalshi_yes_price": None,
        "kalshi_no_price": None,
        "kalshi_liquidity": None,
        "kalshi_market_ticker": None,
        "line_discrepancy": None,
        "batch_id": BATCH,
        "timestamp": "2025-11-28T04:30:15.123456",  # CO 3585: naive isoformat
        "correlation_id": "corr-1",
        "prediction_run_mode": "OVERNIGHT",
    }
    request.update(changes)
    for key in [k for k, v in changes.items() if v is DROP]:
        del request[key]
    return request


DROP = object()  # body(field=DROP) leaves the field out
NO_LINE = {  # PL 542-556: no line, DISABLE_ESTIMATED_LINES (the default)
    "line_values": [None],
    "line_source": "NO_PROP_LINE",
    "has_prop_line": False,
    "actual_prop_line": None,
    "line_source_api": None,
    "sportsbook": None,
}
ESTIMATED = {  # PL 558-586: no line, estimation enabled
    "line_values": [24.5],
    "line_source": "ESTIMATED_AVG",
    "line_source_api": "ESTIMATED",
    "has_prop_line": False,
    "actual_prop_line": None,
}


def ask(
    request: dict[str, Any] | bytes, *, today: date = TODAY, features: dict[Any, Any] | None = None, **kw: Any
) -> Answer:
    """The stand-in's answer to ``request`` on ``today`` (default: the player's feature row exists)."""
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    known: dict[Any, Any] = {("2025-11-28", "aaronadams"): feature_row()} if features is None else features
    return answer(data, today=today, features=known, now=NOW, **kw)


# --- §7.4: every row of the acceptance table ------------------------------------------------------------

PAST, YESTERDAY, TOMORROW = TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY + timedelta(days=1)


@pytest.mark.parametrize(
    ("data", "status", "why"),
    [
        # WK 750-761, 764, 993-1012: no body / no message.data (pulled: empty data) → KeyError → 204
        (b"", ACK, "no message data"),
        # WK 764-765, 1013-1059: data not base64 JSON → 500
        (b"garbage", RETRY, "body is not JSON"),
        (b"\xff\xfe", RETRY, "body is not JSON: UnicodeDecodeError"),
        (b"[" * 5000, RETRY, "body is not JSON: RecursionError"),
        # WK 767: request_data.get on a list → AttributeError → catch-all → 500
        (b"[]", RETRY, "body is not a JSON object"),
        # WK 774-779: player_lookup, game_date or game_id missing → KeyError → 204
        (json.dumps(body(player_lookup=DROP)).encode(), ACK, "missing field player_lookup"),
        (json.dumps(body(game_date=DROP)).encode(), ACK, "missing field game_date"),
        (json.dumps(body(game_id=DROP)).encode(), ACK, "missing field game_id"),
        # WK 837: game_date not %Y-%m-%d → 500
        (json.dumps(body(game_date="20251128")).encode(), RETRY, "game_date '20251128' is not YYYY-MM-DD"),
        (json.dumps(body(game_date="2025-02-30")).encode(), RETRY, "is not YYYY-MM-DD"),
        (json.dumps(body(game_date=20251128)).encode(), RETRY, "is not YYYY-MM-DD (TypeError)"),
        (json.dumps(body(game_date=None)).encode(), RETRY, "is not YYYY-MM-DD (TypeError)"),
    ],
)
def test_what_the_bytes_alone_decide(data: bytes, status: int, why: str) -> None:
    got = ask(data)
    assert (got.status, got.ready, got.rows) == (status, None, ())
    assert why in got.reason


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"actual_prop_line": 20.0}, "line 20.0 is a placeholder"),  # WK 647-714 check 1
        ({"line_values": [20.04], "has_prop_line": False, "line_source": "ESTIMATED_AVG"}, "placeholder"),
        ({"line_source": None}, "invalid line_source None"),  # check 2
        ({"line_source": "NEEDS_BOOTSTRAP"}, "invalid line_source NEEDS_BOOTSTRAP"),
        # check 3 (a NULL line with has_prop_line TRUE) cannot be reached with has_prop_line truthy: round(None)
        # raises first (WK 1949-1953), see test_null_line_with_a_prop_line_claim_is_an_error.
        ({"line_source_api": "ESTIMATED"}, "ACTUAL_PROP with ESTIMATED api"),  # check 4
        ({"has_prop_line": False}, "ACTUAL_PROP with has_prop_line FALSE"),  # check 5
        ({**ESTIMATED, "line_source_api": "ODDS_API"}, "ESTIMATED_AVG with ODDS_API api"),  # check 6
        ({**ESTIMATED, "line_source_api": "BETTINGPROS"}, "ESTIMATED_AVG with BETTINGPROS api"),
        # One failing row fails the whole request (WK 864-878): the second line is the placeholder.
        ({**ESTIMATED, "line_values": [24.5, 20.0]}, "line 20.0 is a placeholder"),
        # PL 602-605 nudges a real 20.0 line to 20.5, but actual_prop_line stays 20.0 and wins (WK 1952).
        ({"line_values": [20.5], "actual_prop_line": 20.0}, "line 20.0 is a placeholder"),
    ],
)
@pytest.mark.parametrize(("today", "status"), [(TODAY, RETRY), (YESTERDAY, RETRY), (TOMORROW, ACK)])
def test_line_validation_fails_the_request(changes: dict[str, Any], problem: str, today: date, status: int) -> None:
    # WK 864-878: 500 while game_date >= today (Pub/Sub retries, then the DLQ); 204 once it is past. No event.
    got = ask(body(**changes), today=today)
    assert (got.status, got.ready, got.rows) == (status, None, ())
    assert got.reason.startswith("line validation failed")
    assert problem in got.reason


def test_the_coordinators_valid_shapes_pass_validation() -> None:
    for changes in ({}, NO_LINE, ESTIMATED, {"line_values": [23.5, 24.5, 25.5, 26.5, 27.5]}):  # PL 589-600
        got = ask(body(**changes))
        assert (got.status, got.reason) == (ACK, "staged"), changes


@pytest.mark.parametrize(
    ("features", "reason"),
    [
        ({}, "no_features"),  # WK 903-919: no feature row
        ({("2025-11-28", "aaronadams"): feature_row(points_avg_season=float("nan"))}, "invalid_features"),
        ({("2025-11-28", "aaronadams"): {**feature_row(), "feature_names": ["a"]}}, "invalid_features"),
        ({("2025-11-28", "aaronadams"): feature_row(quality=49.9)}, "quality_too_low"),
        ({("2025-11-28", "aaronadams"): feature_row(quality=None)}, "quality_too_low"),
    ],
)
@pytest.mark.parametrize("today", [TODAY, PAST, TOMORROW])
def test_permanent_skips_are_acked_with_a_ready_event_of_zero(
    features: dict[Any, Any], reason: str, today: date
) -> None:
    # WK 186-196, 903-919: 204 and a ready event with predictions_generated 0, whatever the date.
    got = ask(body(), features=features, today=today)
    assert (got.status, got.reason, got.rows) == (ACK, f"no predictions ({reason})", ())
    assert got.ready is not None
    assert got.ready["predictions_generated"] == 0
    # ... only if the request has a batch_id.
    assert ask(body(batch_id=DROP), features=features, today=today).ready is None
    assert ask(body(batch_id=None), features=features, today=today).status == ACK


def test_every_permanent_reason_is_acked() -> None:
    # The stand-in produces three of them; the rule holds for all nine (WK 186-196).
    assert len(PERMANENT_SKIP_REASONS) == 9
    request = parse_request(json.dumps(body()).encode())
    assert isinstance(request, WorkerRequest)
    for reason in PERMANENT_SKIP_REASONS:
        got = skipped(request, reason=reason, today=TODAY, now=NOW, worker_instance="w")
        assert got.status == ACK, reason
        assert got.ready is not None, reason
    for reason in ("features_not_production_ready", "bigquery_timeout", "unknown"):  # WK 920-941
        assert skipped(request, reason=reason, today=TODAY, now=NOW, worker_instance="w").status == RETRY


@pytest.mark.parametrize("line_values", [[], None, DROP])
def test_no_line_values_is_no_rows_and_retried_for_today(line_values: Any) -> None:
    # WK 790: null/absent → []; WK 1566: the per-line loop does nothing; skip_reason 'unknown' (WK 899-941).
    for today in (TODAY, YESTERDAY):  # the game is today, or in the future: 500
        got = ask(body(line_values=line_values), today=today)
        assert (got.status, got.reason, got.ready) == (RETRY, "no predictions (unknown)", None)
    past = ask(body(line_values=line_values), today=TOMORROW)  # a past game: 204 and the ready event
    assert (past.status, past.rows) == (ACK, ())
    assert past.ready is not None
    assert past.ready["predictions_generated"] == 0
    assert ask(body(line_values=line_values, batch_id=None), today=TOMORROW).ready is None  # only with a batch


@pytest.mark.parametrize("line_values", ["25.5", ["25.5"], {"25.5": 1}, [[25.5]]])
def test_a_line_that_is_no_number_makes_no_row(line_values: Any) -> None:
    # WK 1566-1833: every system fails on it (each failure caught): no rows, skip_reason unknown.
    got = ask(body(line_values=line_values))
    assert (got.status, got.reason, got.ready) == (RETRY, "no predictions (unknown)", None)
    assert ask(body(line_values=line_values), today=TOMORROW).status == ACK


def test_null_line_with_a_prop_line_claim_is_an_error() -> None:
    # WK 1949-1953: [null] with has_prop_line true (or absent: default true, WK 810) and no actual_prop_line:
    # round(None) raises TypeError → the catch-all (WK 1013-1059): 500, but 204 for a game before yesterday.
    for changes in ({**NO_LINE, "has_prop_line": True}, {**NO_LINE, "has_prop_line": DROP, "line_source": DROP}):
        got = ask(body(**changes))
        assert (got.status, got.ready) == (RETRY, None)
        assert "TypeError" in got.reason
        assert ask(body(**changes), today=TODAY + timedelta(days=1)).status == RETRY  # yesterday's game: still 500
        assert ask(body(**changes), today=TODAY + timedelta(days=2)).status == ACK


@pytest.mark.parametrize(
    "changes",
    [
        {"line_values": 25.5},  # not iterable: TypeError
        {"actual_prop_line": "25.5"},
        {"player_lookup": "\ud800x"},  # no query can carry a lone surrogate
        {"player_lookup": 7},
        {"dataset_prefix": "test.x"},  # names no dataset: the worker's query fails
    ],
)
def test_any_other_error_is_retried_unless_the_game_is_older_than_yesterday(changes: dict[str, Any]) -> None:
    got = ask(body(**changes))
    assert (got.status, got.ready, got.reason[:6]) == (RETRY, None, "error:")
    assert ask(body(**changes), today=TODAY + timedelta(days=2)).status == ACK  # WK 1013-1059


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        # BSW 234-252: only letters, digits and _ make a table name (after - → _): the load fails, 500, DLQ.
        ({"batch_id": "2025-11-28:manual__2025"}, "batch id"),
        ({"batch_id": "a.b"}, "batch id"),
        ({"batch_id": 17}, "batch id"),
        # NUMERIC holds 29 integer digits: the load refuses a bigger line (or NaN).
        ({**ESTIMATED, "line_values": [1e300]}, "does not fit NUMERIC"),
        ({**ESTIMATED, "line_values": [float("nan")]}, "does not fit NUMERIC"),
        # The load refuses a non-boolean in the BOOL column (bqemulator would not: checked before the load).
        ({"has_prop_line": "yes"}, "is not a BOOL"),
        ({"prediction_run_mode": 3}, "STRING column refuses it"),
    ],
)
def test_a_staging_write_that_would_fail_is_retried_without_an_event(changes: dict[str, Any], why: str) -> None:
    got = ask(body(**changes))  # WK 944-956: staging write fails → 500, no event
    assert (got.status, got.ready, got.rows) == (RETRY, None, ())
    assert got.reason.startswith("staging write failed")
    assert why in got.reason


# --- §7.5 rows, §7.2 fields ----------------------------------------------------------------------------


def test_success_stages_one_row_per_line_and_system_and_sends_the_count() -> None:
    got = ask(body(line_values=[23.5, 24.5, 25.5], line_source_api="BETTINGPROS"))  # WK 958-991
    assert (got.status, got.reason, got.staging_batch) == (ACK, "staged", BATCH)
    assert len(got.rows) == 3  # one per line value × the one active system (WK 1566-1833)
    assert got.ready is not None
    assert got.ready["predictions_generated"] == 3
    columns = [f["name"] for f in table_schema(config.PREDICTIONS_TABLE)]
    for row in got.rows:
        assert list(row) == columns  # every column of the schema file, and no other
        assert (row["system_id"], row["prediction_version"], row["is_active"]) == (config.LOCAL_SYSTEM_ID, 1, True)
        assert (row["game_date"], row["game_id"], row["player_lookup"]) == (
            "2025-11-28",
            "20251128_LAL_BOS",
            "aaronadams",
        )
        assert (row["created_at"], row["updated_at"], row["superseded_by"]) == (NOW, None, None)
        assert (row["prediction_run_mode"], row["universal_player_id"]) == ("OVERNIGHT", "aaronadams_001")
        # WK 1945-1971: has_prop_line true → actual_prop_line, whatever the line value
        assert (row["current_points_line"], row["has_prop_line"], row["line_source"]) == (
            Decimal("25.5"),
            True,
            "ACTUAL_PROP",
        )
        assert row["line_margin"] == PREDICTED - Decimal("25.5")
    # A redelivery is staged again with fresh ids (consolidation keeps the newest created_at, BSW 558-566).
    again = ask(body(line_values=[23.5, 24.5, 25.5]))
    assert not {r["prediction_id"] for r in got.rows} & {r["prediction_id"] for r in again.rows}
    assert len({r["prediction_id"] for r in got.rows}) == 3


@pytest.mark.parametrize(
    ("changes", "line", "recommendation"),
    [
        ({"line_values": [21.5], "actual_prop_line": None}, "21.5", "OVER"),  # true, no actual → the line value
        ({"line_values": [21.5], "actual_prop_line": 0}, "21.5", "OVER"),  # `actual if actual else line`
        ({**ESTIMATED, "line_values": [24.5]}, "24.5", "UNDER"),  # false with a value: recomputed
        ({**ESTIMATED, "line_values": [23.0]}, "23.0", "PASS"),  # predicted == line
        ({**ESTIMATED, "line_values": [22.96]}, "23.0", "PASS"),  # round(line, 1) first
        (NO_LINE, None, "NO_LINE"),  # false without a value: NULL line
    ],
)
def test_a_rows_line(changes: dict[str, Any], line: str | None, recommendation: str) -> None:
    got = ask(body(**changes))
    assert got.status == ACK, got.reason
    (row,) = got.rows
    assert row["current_points_line"] == (None if line is None else Decimal(line))
    assert row["recommendation"] == recommendation
    assert row["line_margin"] == (None if line is None else PREDICTED - Decimal(line))
    assert row["has_prop_line"] is changes.get("has_prop_line", True)


def test_defaults_and_ignored_fields() -> None:
    # WK 792, 810, 812: prediction_run_mode OVERNIGHT, has_prop_line true, line_source ACTUAL_PROP.
    bare = {"player_lookup": "aaronadams", "game_date": "2025-11-28", "game_id": "g", "line_values": [25.5]}
    (row,) = ask(bare).rows
    assert (row["prediction_run_mode"], row["has_prop_line"], row["line_source"]) == ("OVERNIGHT", True, "ACTUAL_PROP")
    (early,) = ask(body(prediction_run_mode="EARLY")).rows
    assert early["prediction_run_mode"] == "EARLY"
    # §7.2 "—" fields change nothing, nor do unknown ones or attributes (force is not a platform field).
    ignored: dict[str, Any] = {"is_home": True, "projected_minutes": None, "needs_bootstrap": True, "timestamp": "x"}
    ignored |= {"forced_prediction": True, "feature_quality_score": 1, "prediction_attempt": 3, "force": True}
    plain, changed = ask(body()), ask(body(**ignored))
    assert (plain.status, plain.reason, len(plain.rows)) == (changed.status, changed.reason, len(changed.rows))
    assert [r["recommendation"] for r in plain.rows] == [r["recommendation"] for r in changed.rows]
    parsed = parse_request(json.dumps(body()).encode(), attributes={"request_id": "r-1", "force": "true"})
    assert isinstance(parsed, WorkerRequest)
    assert parsed.request_id == "r-1"


# --- §7.6 staging names, §7.7 the ready message --------------------------------------------------------


def test_staging_names() -> None:
    # BSW 234-252: - → _ in both parts; BSW 1253-1272: {K_REVISION}_{8 hex}, else worker_{12 hex}.
    assert staging_table_id(BATCH, "prediction-worker-00042-abc_0a1b2c3d") == (
        "_staging_batch_2025_11_28_1764318615_prediction_worker_00042_abc_0a1b2c3d"
    )
    assert re.fullmatch(r"rev-7_[0-9a-f]{8}", new_worker_id("rev-7"))
    assert re.fullmatch(r"worker_[0-9a-f]{12}", new_worker_id())
    assert staging_table_id("a-b", "w").startswith(staging_prefix("a_b"))  # a-b and a_b: the same tables
    with pytest.raises(InvalidBatchIdError):
        staging_table_id("a.b", "w")
    # WK 2407-2411: no batch_id → _staging_fallback_{epoch_ms}_{worker}, which no consolidation finds.
    got = ask(body(batch_id=DROP))
    assert (got.status, got.staging_batch) == (ACK, f"fallback_{int(NOW.timestamp() * 1000)}")
    assert staging_table_id(str(got.staging_batch), "w") == f"_staging_fallback_{int(NOW.timestamp() * 1000)}_w"


def test_the_ready_message() -> None:
    # WK 2482-2529: every field, game_date and batch_id as sent, timestamp utcnow().isoformat() (no offset).
    sent = body(game_date="2025-11-8", correlation_id="corr-9")  # strptime takes an unpadded date (WK 837)
    got = ask(sent, features={("2025-11-08", "aaronadams"): feature_row()}, today=date(2025, 11, 8))
    assert got.status == ACK
    assert got.rows[0]["game_date"] == "2025-11-08"
    assert got.ready == {
        "player_lookup": "aaronadams",
        "game_date": "2025-11-8",
        "predictions_generated": 1,
        "batch_id": BATCH,
        "correlation_id": "corr-9",
        "timestamp": "2025-11-28T09:30:15.123456",
        "worker_instance": "unknown",
    }
    # Sent even when batch_id is null (WK 961), with batch_id null; worker_instance is K_REVISION.
    bare = ask(body(batch_id=DROP, correlation_id=DROP), worker_instance="prediction-worker-00042-abc")
    assert bare.ready is not None
    assert (bare.ready["batch_id"], bare.ready["correlation_id"]) == (None, None)
    assert bare.ready["worker_instance"] == "prediction-worker-00042-abc"


# --- against the emulators -----------------------------------------------------------------------------


def _ready_subscription(project: str) -> None:
    """The ready topic and its local pull subscription (provisioning may not create them yet)."""
    from google.api_core.exceptions import AlreadyExists

    from nba_phase5.bigquery.clients import publisher_client, subscriber_client

    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PREDICTION_READY_TOPIC)
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=topic)
    with subscriber_client() as subscriber:
        path = subscriber.subscription_path(project, config.PREDICTION_READY_LOCAL_SUBSCRIPTION)
        with contextlib.suppress(AlreadyExists):
            subscriber.create_subscription(request={"name": path, "topic": topic})


def _publish(project: str, bodies: list[dict[str, Any]]) -> None:
    from nba_phase5.bigquery.clients import publisher_client

    publisher = publisher_client()
    topic = publisher.topic_path(project, config.PREDICTION_REQUESTS_TOPIC)
    for future in [publisher.publish(topic, json.dumps(b).encode()) for b in bodies]:  # no attributes (§7.1)
        future.result(timeout=30)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _staged(bq, batch_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The batch's staging tables (as consolidation finds them, BSW 455-478) and their rows."""
    tables = sorted(
        t.table_id
        for t in bq.list_tables(f"{bq.project}.nba_predictions")
        if t.table_id.startswith(staging_prefix(batch_id))
    )
    rows: list[dict[str, Any]] = []
    for table in tables:  # names from list_tables, checked against staging_prefix above
        rows += run_query(bq, f"SELECT * FROM `{bq.project}.nba_predictions.{table}`")
    return tables, rows


def _seed(bq, drain, day: date, players: int) -> dict[str, str]:
    from nba_phase5_local.seeding import build_day, seed_day

    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
    drain(config.PREDICTION_READY_LOCAL_SUBSCRIPTION)
    seed_day(bq, day, players=players, ready_pct=100)
    return {row["player_lookup"]: row["game_id"] for row in build_day(day, players=players, ready_pct=100)[1]}


def _dead_letters(drain, expected: int, timeout: float = 60.0) -> list[Any]:
    """The dead-letter subscription's messages, once ``expected`` arrived (the policy forwards asynchronously)."""
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        messages += drain(config.PREDICTION_REQUESTS_DLQ_SUBSCRIPTION)
        time.sleep(0.2)
    return messages


def _predictions(bq, day: date) -> int:
    sql = f"SELECT COUNT(*) AS n FROM `{bq.project}.{config.PREDICTIONS_TABLE}` WHERE game_date = @d"
    return int(run_query(bq, sql, {"d": day})[0]["n"])


@pytest.mark.integration
def test_a_good_request_is_staged_and_announced(stack, bq, drain) -> None:
    from helpers import running_worker

    _ready_subscription(stack.project)
    day = date(2025, 10, 21)
    games = _seed(bq, drain, day, 4)
    batch = "batch_2025-10-21_1761000000"
    requests = [
        body(player_lookup=p, game_id=g, game_date=day.isoformat(), batch_id=batch, line_values=[15.5, 16.5])
        for p, g in games.items()
    ]
    with running_worker(stack.project, today=lambda: day, revision="stand-in-00001") as worker:
        _publish(stack.project, requests)
        _wait_for(lambda: worker.stats.acked == 4)
    tables, rows = _staged(bq, batch)
    assert len(tables) == 1  # one pull, one batch: one load into one table
    assert re.fullmatch(r"_staging_batch_2025_10_21_1761000000_stand_in_00001_[0-9a-f]{8}", tables[0])
    assert len(rows) == 8  # 2 lines × 4 players
    assert {r["current_points_line"] for r in rows} == {Decimal("25.5")}  # has_prop_line true: actual_prop_line
    assert {(r["game_id"], r["player_lookup"]) for r in rows} == {(g, p) for p, g in games.items()}
    assert {(r["system_id"], r["is_active"], r["prediction_run_mode"]) for r in rows} == {
        (config.LOCAL_SYSTEM_ID, True, "OVERNIGHT")
    }
    ready = [json.loads(m.data) for m in drain(config.PREDICTION_READY_LOCAL_SUBSCRIPTION)]
    assert sorted(m["player_lookup"] for m in ready) == sorted(games)
    assert {(m["predictions_generated"], m["batch_id"], m["worker_instance"]) for m in ready} == {
        (2, batch, "stand-in-00001")
    }
    assert _predictions(bq, day) == 0  # workers never write player_prop_predictions
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []  # everything acked


@pytest.mark.integration
def test_a_500_is_redelivered_until_the_dead_letter_policy_takes_it(stack, bq, drain) -> None:
    from helpers import running_worker

    _ready_subscription(stack.project)
    day = date(2025, 10, 22)
    games = _seed(bq, drain, day, 2)
    batch = "batch_2025-10-22_1761100000"
    (player, game), (good, good_game) = games.items()
    # line_values [] for today: no rows, skip_reason unknown → 500 (WK 1566, 899-941); the good one is staged.
    bad = body(player_lookup=player, game_id=game, game_date=day.isoformat(), batch_id=batch, line_values=[])
    fine = body(player_lookup=good, game_id=good_game, game_date=day.isoformat(), batch_id=batch)
    with running_worker(stack.project, today=lambda: day, retry_pause_s=0.1) as worker:
        _publish(stack.project, [bad, fine])
        _wait_for(lambda: worker.stats.nacked == config.PREDICTION_REQUESTS_MAX_DELIVERY_ATTEMPTS)
        dead = _dead_letters(drain, 1)
    assert [json.loads(m.data)["player_lookup"] for m in dead] == [player]
    assert dead[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert worker.stats.reasons["no predictions (unknown)"] == 5
    _, rows = _staged(bq, batch)
    assert {r["player_lookup"] for r in rows} == {good}
    ready = [json.loads(m.data) for m in drain(config.PREDICTION_READY_LOCAL_SUBSCRIPTION)]
    assert [m["player_lookup"] for m in ready] == [good]  # no event for the 500
    assert _predictions(bq, day) == 0
