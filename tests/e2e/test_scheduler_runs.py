"""A game day through the real scheduler and triggerer, then cleared and rerun from the REST API.

The run is triggered through the API; Phase 4's event is published only once the sensor is deferred
in the triggerer. Afterwards the retry group and then the fan-out are cleared (`clearTaskInstances`,
dry_run=false, only_failed=false, downstream included, as the UI's Clear does) and rerun by the
scheduler. A tap subscription on the requests topic counts every request ever published.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from airflow_api import AirflowAPIError
from e2e.scheduler import (
    DAG_ID,
    WORKER_DROP_RATE,
    WORKER_SEED,
    task_states,
    trigger,
    wait_deferred,
    wait_finished,
)
from helpers import prediction_count, ready_players, request_ids, run_history
from nba_phase5 import config
from nba_phase5.bigquery.bq import run_query
from nba_phase5.bigquery.clients import bigquery_client, publisher_client
from nba_phase5_local.phase4_publisher import build_envelope, count_production_ready, publish_completion_event
from nba_phase5_local.seeding import seed_day
from nba_phase5_local.worker import PredictionWorker, WorkerOptions

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAY = date(2025, 3, 4)
RUN_ID = "e2e_event_2025-03-04"


@pytest.fixture(scope="module")
def client(stack):
    return bigquery_client(stack.project)


@pytest.fixture(scope="module")
def event_run(stack, api, client, request_tap) -> dict[str, Any]:
    """The day's run: waits deferred for the event, which Phase 4 publishes while it waits."""
    seed_day(client, DAY, players=120, ready_pct=90)
    request_tap()
    trigger(api, RUN_ID, DAY, event_wait_seconds=600)
    wait_deferred(api, RUN_ID)
    event = build_envelope(DAY, record_count=count_production_ready(client, DAY)[1])  # as Phase 4 does
    publish_completion_event(publisher_client(), stack.project, event)
    run = wait_finished(api, RUN_ID)
    return {
        "run": run,
        "tasks": task_states(api, RUN_ID),
        "ready": ready_players(client, DAY),
        "requests": request_tap(),
    }


def test_event_published_while_the_sensor_is_deferred_completes_the_batch(event_run, client) -> None:
    assert event_run["run"]["state"] == "success", event_run["tasks"]
    assert event_run["tasks"]["skip_already_complete"] == "skipped"
    ready = event_run["ready"]
    requests: Counter[str] = event_run["requests"]
    assert set(requests) == request_ids(DAY, ready)
    republished = {rid for rid, n in requests.items() if n > 1}
    # The worker (drop rate 5 %, seed 11) drops these once; the straggler round sends exactly those again.
    dropper = PredictionWorker(WorkerOptions(project="-", drop_rate=WORKER_DROP_RATE, seed=WORKER_SEED))
    dropped = {rid for rid in request_ids(DAY, ready) if dropper.should_drop(rid)}
    assert dropped, "the seed should make the worker drop a few requests"
    assert republished == dropped
    assert max(requests.values()) == 2
    [row] = run_history(client, DAY)
    assert (row["status"], row["triggered_by"], row["run_id"]) == ("success", "pubsub", RUN_ID)
    assert len(ready) == 108
    assert row["summary"]["requests_published"] == sum(requests.values())  # what run history says Pub/Sub saw
    assert row["records_processed"] == len(ready)  # the coordinator's count: the players predicted
    assert sum(row["summary"]["straggler_requests"]) == len(republished)
    assert prediction_count(client, DAY) == len(ready)


def _clear(api, task_ids: list[str]) -> list[str]:
    body = {
        "dry_run": False,
        "only_failed": False,
        "dag_run_id": RUN_ID,
        "task_ids": task_ids,
        "include_downstream": True,
        "reset_dag_runs": True,
    }
    cleared = api.post(f"/dags/{DAG_ID}/clearTaskInstances", body)["task_instances"]
    return sorted(ti["task_id"] for ti in cleared)


def test_clearing_the_retry_group_republishes_only_the_still_missing(event_run, api, client, request_tap) -> None:
    ready = event_run["ready"]
    lost = ready[10:17]  # predictions lost after the run: the group's rerun must fill exactly these
    run_query(
        client,
        f"DELETE FROM `{client.project}.{config.PREDICTIONS_TABLE}` "
        "WHERE game_date = @d AND player_lookup IN UNNEST(@players)",
        {"d": DAY, "players": {"type": "ARRAY<STRING>", "value": ",".join(lost)}},
    )
    group = sorted(
        t["task_id"] for t in api.get(f"/dags/{DAG_ID}/tasks")["tasks"] if t["task_id"].startswith("retry_stragglers.")
    )
    cleared = _clear(api, group)
    assert set(group) <= set(cleared)
    assert "record_batch_run" in cleared
    run = wait_finished(api, RUN_ID)
    assert run["state"] == "success", task_states(api, RUN_ID)
    assert request_tap() == Counter(request_ids(DAY, lost))  # each lost one once, nothing else
    assert prediction_count(client, DAY) == len(ready)
    [row] = run_history(client, DAY)  # record_batch_run ran again: still one row for (date, run)
    assert (row["status"], row["run_id"], row["summary"]["completion_pct"]) == ("success", RUN_ID, 100.0)


def test_clearing_the_fan_out_after_success_publishes_nothing(event_run, api, client, request_tap) -> None:
    cleared = _clear(api, ["fan_out_requests"])
    assert {"fan_out_requests", "retry_stragglers.verify_completion", "record_batch_run"} <= set(cleared)
    run = wait_finished(api, RUN_ID)
    assert run["state"] == "success", task_states(api, RUN_ID)
    assert request_tap() == Counter()
    assert prediction_count(client, DAY) == len(event_run["ready"])
    [row] = run_history(client, DAY)
    assert (row["status"], row["triggered_by"]) == ("success", "pubsub")


def test_phase6_ran_once_on_the_asset_however_often_the_run_was_cleared(event_run, api, airflow) -> None:
    """After the batch and the two clears above (each reran record_batch_run and the hand-off), Phase 6
    ran once for this date (other tests' batches start runs of their own)."""

    def consumer_runs_for_day() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        found = []
        for run in api.get("/dags/phase6_consumer/dagRuns?limit=100")["dag_runs"]:
            if run["state"] not in ("success", "failed"):
                return []  # one still running: look again
            path = f"/dags/phase6_consumer/dagRuns/{run['dag_run_id']}/taskInstances/read_the_hand_off"
            returned = api.get(f"{path}/xcomEntries/return_value")["value"]
            if any(event["game_date"] == DAY.isoformat() for event in returned["events"]):
                found.append((run, returned))
        return found

    deadline = time.monotonic() + 180
    runs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    while time.monotonic() < deadline and not runs:
        with contextlib.suppress(AirflowAPIError):  # 404 until the DAG processor has parsed it
            runs = consumer_runs_for_day()
        time.sleep(2)
    time.sleep(10)  # a second run, if the clears had announced again, would be queued by now
    runs = consumer_runs_for_day()
    assert [(r["run_type"], r["state"]) for r, _ in runs] == [("asset_triggered", "success")]
    [(_, returned)] = runs
    # A consumer scheduled on the alias sees the event under the alias and under the asset it resolved to:
    # one announcement, so one Pub/Sub message id.
    announced = {e["message_id"]: e for e in returned["events"] if e["game_date"] == DAY.isoformat()}
    [extra] = announced.values()
    assert extra["status"] == "success"
    assert extra["message_id"]
    # the task process imported the package (and found include/) in the bundle, not in the checkout
    bundle_dags = Path(airflow.composer) / "dags"
    assert Path(returned["package"]).is_relative_to(bundle_dags), returned["package"]
    assert Path(returned["include"]) == bundle_dags / "nba_phase5" / "include"
    assert task_states(api, RUN_ID)["hand_off_to_phase6"] == "skipped"  # the clears' reruns: already announced
