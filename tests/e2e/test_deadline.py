"""The SLA under the real scheduler and triggerer: a run still going at its deadline raises one critical
alert (BigQuery row, and Slack and e-mail where configured); a run that finished in time raises none, and
neither does one that had already failed (its failure is the alert).

The probe DAG (tests/e2e/dags/sla_probe.py) carries the package's deadline alerts for a one-minute span
instead of the DAG's ten hours: one at a minute, one at 61 minutes (the night clocks go back), which the
late run's success prunes."""

from __future__ import annotations

import time
import urllib.parse
from datetime import UTC, date, datetime
from typing import Any

import pytest

from e2e.scheduler import wait_finished, wait_for
from helpers import alerts
from nba_phase5.bigquery.clients import bigquery_client

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
LATE, ON_TIME, FAILED = date(2025, 8, 27), date(2025, 8, 28), date(2025, 8, 29)


def _trigger(api, run_id: str, day: date, seconds: int, fail: bool = False) -> None:
    body = {
        "dag_run_id": run_id,
        "logical_date": datetime.now(UTC).isoformat(),
        "conf": {"game_date": day.isoformat(), "seconds": seconds, "fail": fail},
    }
    api.post("/dags/sla_probe/dagRuns", body)


def _critical(client: Any, day: date) -> list[dict[str, Any]]:
    return [a for a in alerts(client, day) if a["severity"] == "critical"]


def _missed(api, run_id: str) -> list[dict[str, Any]]:
    """The run's deadlines the scheduler marked missed (and queued the callback of): the UI's own endpoint,
    /ui/dags/{dag_id}/dagRuns/{run_id}/deadlines, as the public /api/v2 has none."""
    path = f"/ui/dags/sla_probe/dagRuns/{urllib.parse.quote(run_id, safe='')}/deadlines?missed=true"
    return api._request("GET", path, auth=True)["deadlines"]


def test_a_run_past_its_deadline_alerts_once_and_one_in_time_or_failed_does_not(stack, api) -> None:
    client = bigquery_client(stack.project)
    # The failed run first: its deadline passes before the late run's, so the late run's alert comes after.
    _trigger(api, "sla_failed", FAILED, seconds=0, fail=True)
    _trigger(api, "sla_late", LATE, seconds=100)
    _trigger(api, "sla_on_time", ON_TIME, seconds=1)
    assert wait_finished(api, "sla_failed", dag_id="sla_probe", timeout=120)["state"] == "failed"
    assert wait_finished(api, "sla_on_time", dag_id="sla_probe", timeout=120)["state"] == "success"
    assert wait_finished(api, "sla_late", dag_id="sla_probe", timeout=300)["state"] == "success"
    deadline = time.monotonic() + 120  # the triggerer runs the callback a scheduler loop after the miss
    while time.monotonic() < deadline and not _critical(client, LATE):
        time.sleep(3)
    [late] = _critical(client, LATE)
    assert "sla_late" in late["message"]
    assert "has not finished by its deadline" in late["message"]
    assert (late["dag_id"], late["run_id"]) == ("sla_probe", "sla_late")
    assert [d["alert_name"] for d in _missed(api, "sla_late")] == ["predictions_within_60s_et"]
    assert alerts(client, ON_TIME) == []  # finished in ~5 s: its deadlines were pruned, nothing fired
    # The failed run's one-minute deadline was missed too (Airflow keeps a failed run's deadlines), and its
    # callback, queued no later than the late run's, found the run failed: no page.
    wait_for("the failed run's deadline to be missed", lambda: _missed(api, "sla_failed"), timeout=60)
    time.sleep(10)
    assert _critical(client, FAILED) == []
