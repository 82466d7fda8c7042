"""The fan-out against the emulators: the coordinator's request body, lines from the line table, and a
player whose rows wait in the batch's staging table never requested again (docs/platform.md §7, §8)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from helpers import ready_players, stage_rows
from nba_phase5 import config
from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator
from nba_phase5.core.prediction_requests import BODY_FIELDS
from nba_phase5_local.seeding import seed_day

pytestmark = pytest.mark.integration
LINE_TABLE = "nba_reference.test_points_lines"


def _lines(bq: Any, day: date, lines: dict[str, float]) -> None:
    from google.cloud import bigquery

    schema = [
        bigquery.SchemaField("game_date", "DATE"),
        bigquery.SchemaField("player_lookup", "STRING"),
        bigquery.SchemaField("points_line", "FLOAT64"),
    ]
    table = bigquery.Table(f"{bq.project}.{LINE_TABLE}", schema=schema)
    bq.create_table(table, exists_ok=True)
    rows = [{"game_date": day.isoformat(), "player_lookup": p, "points_line": v} for p, v in lines.items()]
    bq.load_table_from_json(rows, table, job_config=bigquery.LoadJobConfig(schema=schema)).result()


def _fan_out(day: date, batch: str, **kwargs: Any) -> PredictionFanOutOperator:
    return PredictionFanOutOperator(
        task_id="fan_out_requests",
        game_date=day.isoformat(),
        batch_id=batch,
        **kwargs,
    )


def test_requests_carry_the_coordinators_body_with_each_players_line(stack, bq, drain) -> None:
    day, batch = date(2025, 7, 1), "batch_2025-07-01_1751328000"
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=20, ready_pct=100)
    first, second, third = ready_players(bq, day)[:3]
    _lines(bq, day, {first: 24.46, second: 20.0})
    event = {
        "triggered_by": "pubsub",
        "event": {"correlation_id": "4f2a9c1e", "game_date": day.isoformat()},
        "correlation_id": "4f2a9c1e",  # as Phase4EventWaitOperator returns it
    }
    operator = _fan_out(day, batch, line_table=LINE_TABLE, phase4_event=event)
    assert operator.execute({"run_id": "manual__lines", "ti": None})["published"] == 20
    bodies = {
        b["player_lookup"]: b for b in (json.loads(m.data) for m in drain(config.PREDICTION_REQUESTS_SUBSCRIPTION))
    }
    assert len(bodies) == 20
    assert all(list(body) == list(BODY_FIELDS) for body in bodies.values())
    assert {(b["batch_id"], b["correlation_id"], b["prediction_run_mode"]) for b in bodies.values()} == {
        (batch, "4f2a9c1e", "OVERNIGHT")
    }
    assert (bodies[first]["line_values"], bodies[first]["line_source"]) == ([24.5], "ACTUAL_PROP")
    assert (bodies[second]["line_values"], bodies[second]["actual_prop_line"]) == ([20.5], 20.5)
    assert (bodies[third]["line_values"], bodies[third]["has_prop_line"]) == ([None], False)
    assert bodies[third]["line_source"] == "NO_PROP_LINE"


def test_a_staged_player_is_not_requested_again(stack, bq, drain) -> None:
    day, batch = date(2025, 7, 2), "batch_2025-07-02_1751414400"
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=10, ready_pct=100)
    ready = ready_players(bq, day)
    staged = [
        {
            "prediction_id": f"pred-{player}",
            "system_id": "catboost_v8",
            "player_lookup": player,
            "game_date": day.isoformat(),
            "game_id": "g",
            "prediction_version": 1,
            "predicted_points": "20.5",
            "confidence_score": "0.7",
            "recommendation": "NO_LINE",
            "is_active": True,
            "created_at": "2025-07-02T06:00:00+00:00",
        }
        for player in ready[:4]
    ]
    stage_rows(bq, batch, "w_1", staged)  # the workers answered 4, not yet consolidated
    # A cleared fan-out after the in-flight window: only the 6 with nothing staged are requested.
    operator = _fan_out(day, batch, in_flight_minutes=0)
    assert operator.execute({"run_id": "manual__staged", "ti": None})["published"] == 6
    requested = sorted(json.loads(m.data)["player_lookup"] for m in drain(config.PREDICTION_REQUESTS_SUBSCRIPTION))
    assert requested == ready[4:]
    # Another batch's staging tables are not this batch's: its fan-out requests all 10.
    other = _fan_out(day, "batch_2025-07-02_1751418000", in_flight_minutes=0)
    assert other.execute({"run_id": "manual__other", "ti": None})["published"] == 10
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)


class LeaseTI:
    """What the fan-out's guard asks of Airflow: this run claimed in this life; which runs are live."""

    def __init__(self, live: set[str]) -> None:
        self.live = live
        self.pushed: dict[str, Any] = {}

    def xcom_pull(self, task_ids: Any = None, dag_id: Any = None, key: str = "", run_id: Any = None) -> Any:
        from nba_phase5.airflow.batch_claims import CLAIM_KEY

        return [{"claimed_at": "t", "clear_number": 0}] if key == CLAIM_KEY else None

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def get_dr_count(self, dag_id: str, run_ids: list[str], states: list[str]) -> int:
        return sum(1 for run in run_ids if run in self.live and "running" in states)


def test_the_first_fan_out_judges_the_claims_it_read_with_the_players_in_one_query(
    stack, bq, drain, monkeypatch
) -> None:
    """The fan-out's one-batch guard (nba_phase5.airflow.batch_claims) reads the date's claims in the players'
    query: one job. A live run that claimed first holds the batch, so this run publishes nothing."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSkipException

    from nba_phase5.airflow import batch_claims
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

    day, batch = date(2025, 7, 3), "batch_2025-07-03_1751500800"
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=10, ready_pct=100)
    batch_claims.claim(bq, day.isoformat(), "scheduled__holder", "2025-07-03T04:00:00+00:00")
    batch_claims.claim(bq, day.isoformat(), "manual__mine", "2025-07-03T04:01:00+00:00")
    queries: list[str] = []
    real = Phase5BigQueryHook.query_rows

    def counted(self: Phase5BigQueryHook, query: str, params: Any = None) -> list[dict[str, Any]]:
        queries.append(query)
        return real(self, query, params)

    monkeypatch.setattr(Phase5BigQueryHook, "query_rows", counted)

    def context(live: set[str]) -> dict[str, Any]:
        ti = LeaseTI(live)
        return {"run_id": "manual__mine", "ti": ti, "dag": SimpleNamespace(dag_id="d"), "dag_run": None}

    held = context({"scheduled__holder", "manual__mine"})
    with pytest.raises(AirflowSkipException, match="scheduled__holder"):
        _fan_out(day, batch, check_holder=True).execute(held)
    assert held["ti"].pushed[batch_claims.HELD_BY_KEY]["run_id"] == "scheduled__holder"
    assert drain(config.PREDICTION_REQUESTS_SUBSCRIPTION) == []
    assert len(queries) == 1
    # The holder's run is over: this run holds the date and publishes, from the same one query.
    queries.clear()
    assert _fan_out(day, batch, check_holder=True).execute(context({"manual__mine"}))["published"] == 10
    assert len(queries) == 1
    assert len(drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)) == 10
