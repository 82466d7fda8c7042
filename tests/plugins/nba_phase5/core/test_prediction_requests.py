"""The request body, field by field as the platform's coordinator sends it (docs/platform.md §7.2, §7.3).

Each expectation cites the platform file and lines it comes from (najicham/nba-stats-scraper):
PL = predictions/coordinator/player_loader.py, CO = predictions/coordinator/coordinator.py,
WK = predictions/worker/worker.py.
"""

from __future__ import annotations

import json

import pytest

from nba_phase5.core import staging
from nba_phase5.core.prediction_requests import BODY_FIELDS, PredictionRequest, request_id

BATCH = "batch_2025-11-28_1764300000"


def _body(**kwargs: object) -> dict[str, object]:
    request = PredictionRequest(
        **{
            "game_date": "2025-11-28",
            "player_lookup": "lebronjames",
            "game_id": "20251128_LAL_BOS",
            "batch_id": BATCH,
            "timestamp": "2025-11-28T06:12:03.123456",
            **kwargs,
        }
    )
    body: dict[str, object] = json.loads(request.body())
    return body


def test_the_29_fields_the_coordinator_always_sends_are_all_there_and_nothing_else() -> None:
    # PL 438-482 (fields 1-25) and CO 3582-3599 (batch_id, timestamp, correlation_id, prediction_run_mode).
    body = _body()
    assert list(body) == list(BODY_FIELDS)
    assert len(BODY_FIELDS) == 29


def test_batch_and_correlation_ids_travel_in_the_body() -> None:
    # WK 791-792: the worker reads batch_id and correlation_id from the body, not from attributes.
    body = _body(correlation_id="4f2a9c1e")
    assert (body["batch_id"], body["correlation_id"]) == (BATCH, "4f2a9c1e")
    # CO 959, 3586: without a correlation id from /start, the batch id is the correlation id.
    assert _body()["correlation_id"] == BATCH
    # The attributes carry only the tracing id: the workers ignore attributes (CO 3580-3611 sends none).
    request = PredictionRequest("2025-11-28", "lebronjames", "g", BATCH)
    assert request.attributes() == {"request_id": request_id("2025-11-28", "lebronjames")}


def test_the_worker_can_name_staging_tables_after_the_batch_id() -> None:
    # BSW 234-252: _staging_{batch_id}_{worker_id} with '-' → '_'; CO 1089: batch_{date}_{epoch}.
    assert staging.MINTED_BATCH_ID_RE.fullmatch(BATCH)
    assert staging.staging_table_id(BATCH, "prediction-worker-00042-abc_1a2b3c4d") == (
        "_staging_batch_2025_11_28_1764300000_prediction_worker_00042_abc_1a2b3c4d"
    )


def test_a_player_without_a_line_is_sent_as_the_coordinator_sends_him() -> None:
    # PL 542-556 (DISABLE_ESTIMATED_LINES, the default, OC 133): [null], NO_PROP_LINE, has_prop_line false.
    body = _body(points_line=None)
    assert body["line_values"] == [None]
    assert (body["line_source"], body["has_prop_line"], body["actual_prop_line"]) == ("NO_PROP_LINE", False, None)
    assert (body["line_source_api"], body["sportsbook"]) == (None, None)
    # Never [] (WK 1566, 899-941: no rows, 500 for today until the DLQ).
    assert body["line_values"] != []


def test_a_real_line_is_rounded_to_one_decimal() -> None:
    # PL 602-605: [round(line, 1)].
    body = _body(points_line=25.46)
    assert body["line_values"] == [25.5]
    assert (body["line_source"], body["has_prop_line"], body["actual_prop_line"]) == ("ACTUAL_PROP", True, 25.5)


@pytest.mark.parametrize(("line", "nudged"), [(20.0, 20.5), (20.04, 20.5), (19.96, 19.5)])
def test_a_line_of_exactly_20_is_nudged_where_the_worker_would_refuse_it(line: float, nudged: float) -> None:
    # PL 602-605 nudges a 20.0 line to 20.5 when the base is 20 or more, else to 19.5; WK 647-714 check 1
    # refuses current_points_line == 20.0, and the worker takes actual_prop_line for it (WK 1952): so
    # actual_prop_line is nudged too.
    body = _body(points_line=line)
    assert body["line_values"] == [nudged]
    assert body["actual_prop_line"] == nudged


def test_the_coordinators_defaults_for_what_the_dag_has_no_source_for() -> None:
    # PL 438-482: Kalshi and line-tracking fields empty when their source has nothing.
    body = _body()
    assert body["kalshi_available"] is False
    assert all(body[f] is None for f in ("kalshi_line", "kalshi_yes_price", "kalshi_no_price", "kalshi_liquidity"))
    assert (body["was_line_fallback"], body["needs_bootstrap"], body["projected_minutes"]) == (False, False, 0.0)
    # CO 952-956: OVERNIGHT unless the run says otherwise.
    assert body["prediction_run_mode"] == "OVERNIGHT"
    assert _body(run_mode="BACKFILL")["prediction_run_mode"] == "BACKFILL"


def test_the_timestamp_is_naive_as_the_coordinator_writes_it() -> None:
    # CO 3585: datetime.now().isoformat(), no offset.
    assert "+" not in str(_body()["timestamp"])


def test_a_forced_batch_is_a_new_generation_of_request_ids() -> None:
    plain = PredictionRequest("2025-11-28", "p", "g", BATCH)
    forced = PredictionRequest("2025-11-28", "p", "g", BATCH, force=True)
    assert plain.request_id != forced.request_id
    assert forced.request_id == request_id("2025-11-28", "p", BATCH)
