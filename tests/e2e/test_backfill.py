"""`airflow backfill create` over three seeded dates, one of them an off day, through the real scheduler."""

from __future__ import annotations

from datetime import date

import pytest

from e2e.scheduler import DAG_ID, FINISHED, airflow_cli, conf_json, run_path, task_state, wait_for
from helpers import alerts, prediction_count, ready_players, run_history
from nba_phase5.bigquery.clients import bigquery_client
from nba_phase5_local.seeding import seed_day

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

GAME_DAYS = (date(2025, 3, 10), date(2025, 3, 12))
OFF_DAY = date(2025, 3, 11)


def test_backfill_over_three_dates_records_one_backfill_row_per_date(stack, airflow, api) -> None:
    client = bigquery_client(stack.project)
    for day in GAME_DAYS:
        seed_day(client, day, players=70, ready_pct=90)
    seed_day(client, OFF_DAY, games=False)
    # No game_date in the conf: each run's game date comes from its 00:00 Eastern tick, as in production.
    # The README's form: --to-date is an exclusive UTC time and the 12th ticks at 04:00 UTC, so T12:00.
    airflow_cli(
        airflow,
        stack,
        "backfill", "create", "--dag-id", DAG_ID,
        "--from-date", "2025-03-10", "--to-date", "2025-03-12T12:00:00",
        "--dag-run-conf", conf_json(),
    )  # fmt: skip

    def backfill_runs() -> list[dict] | None:
        runs = api.get(f"/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=50")["dag_runs"]
        done = [r for r in runs if r["state"] in FINISHED]
        return runs if len(runs) == 3 and len(done) == 3 else None

    runs = wait_for("the three backfill runs to finish", backfill_runs, timeout=600, every=3)
    assert sorted(r["state"] for r in runs) == ["success"] * 3, runs
    sensor_states = {}
    for run in runs:
        game_day = date.fromisoformat(run["logical_date"][:10])
        sensor_states[game_day] = task_state(api, run["dag_run_id"], "wait_for_phase4_event")
        # the platform starts no downstream phase from a backfill: no Phase 6 message, no asset event
        assert task_state(api, run["dag_run_id"], "hand_off_to_phase6") == "skipped"
        if game_day != OFF_DAY:
            sensor = api.get(
                f"{run_path(run['dag_run_id'])}/taskInstances/wait_for_phase4_event/xcomEntries/return_value"
            )
            assert sensor["value"]["triggered_by"] == "backfill"  # returned at once: no event wait
    assert sensor_states == {GAME_DAYS[0]: "success", OFF_DAY: "skipped", GAME_DAYS[1]: "success"}
    for day in GAME_DAYS:
        [row] = run_history(client, day)
        assert (row["status"], row["triggered_by"]) == ("success", "backfill")
        assert prediction_count(client, day) == len(ready_players(client, day)) == 63
    [off] = run_history(client, OFF_DAY)
    assert (off["status"], off["skip_reason"], off["records_processed"]) == ("skipped", "no_data", 0)
    # The off day never reached the event wait: its trigger comes from the run type (an enum in Airflow 3).
    assert (off["triggered_by"], off["backfill_mode"]) == ("backfill", True)
    assert [alerts(client, d) for d in (*GAME_DAYS, OFF_DAY)] == [[], [], []]
