"""The SLA under the real scheduler and triggerer: a run still going at its deadline raises one critical
alert (BigQuery row, and Slack and e-mail where configured); a run that finished in time raises none.

The probe DAG (tests/e2e/dags/sla_probe.py) carries the package's deadline alert with a one-minute
deadline instead of the DAG's ten hours."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import pytest

from e2e.scheduler import wait_finished
from helpers import alerts
from nba_phase5.clients import bigquery_client

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
LATE, ON_TIME = date(2025, 8, 27), date(2025, 8, 28)


def _trigger(api, run_id: str, day: date, seconds: int) -> None:  # type: ignore[no-untyped-def]
    body = {
        "dag_run_id": run_id,
        "logical_date": datetime.now(UTC).isoformat(),
        "conf": {"game_date": day.isoformat(), "seconds": seconds},
    }
    api.post("/dags/sla_probe/dagRuns", body)


def _critical(client: Any, day: date) -> list[dict[str, Any]]:
    return [a for a in alerts(client, day) if a["severity"] == "critical"]


def test_a_run_past_its_deadline_alerts_once_and_one_in_time_does_not(stack, api) -> None:  # type: ignore[no-untyped-def]
    client = bigquery_client(stack.project)
    _trigger(api, "sla_late", LATE, seconds=100)
    _trigger(api, "sla_on_time", ON_TIME, seconds=1)
    assert wait_finished(api, "sla_on_time", dag_id="sla_probe", timeout=120)["state"] == "success"
    assert wait_finished(api, "sla_late", dag_id="sla_probe", timeout=300)["state"] == "success"
    deadline = time.monotonic() + 120  # the triggerer runs the callback a scheduler loop after the miss
    while time.monotonic() < deadline and not _critical(client, LATE):
        time.sleep(3)
    [late] = _critical(client, LATE)
    assert "sla_late" in late["message"]
    assert "has not finished by its deadline" in late["message"]
    assert (late["dag_id"], late["run_id"]) == ("sla_probe", "sla_late")
    assert alerts(client, ON_TIME) == []  # finished in ~5 s: its deadline was pruned, nothing fired
