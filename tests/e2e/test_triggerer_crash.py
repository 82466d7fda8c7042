"""A killed triggerer does not lose Phase 4's event.

Under the real scheduler: the run's sensor is deferred in the triggerer; the triggerer is SIGKILLed;
Phase 4 publishes; a trigger in another process pulls the event, records it and acks it, and is itself
SIGKILLed before it can hand the event to any run (the window in which an ack used to lose the event
for good). The triggerer is started again: the run finds the event in the durable inbox and records
`triggered_by='pubsub'`, long before its backup deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

import local_airflow
from e2e.scheduler import trigger, wait_deferred, wait_finished
from helpers import drain_subscription, run_history
from nba_phase5 import config
from nba_phase5.bigquery.clients import bigquery_client, publisher_client
from nba_phase5_local.phase4_publisher import build_envelope, count_production_ready, publish_completion_event
from nba_phase5_local.seeding import seed_day

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAY = date(2025, 3, 18)
RUN_ID = "e2e_triggerer_crash_2025-03-18"
PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")
# Pull until the event comes, record it in the inbox, ack it, then die by SIGKILL before yielding anything.
# One event loop for every pull, as in the triggerer: the hook's async client is bound to the loop that made
# it. The killed triggerer's own pull may have leased the message first, so keep pulling for longer than the
# subscription's 60 s ack deadline, after which Pub/Sub redelivers it.
PULL_ACK_AND_DIE = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time
    from datetime import UTC, date, datetime, timedelta
    from nba_phase5.airflow.triggers.phase4_event import Phase4EventTrigger

    trigger = Phase4EventTrigger(
        project_id=sys.argv[1], subscription=sys.argv[2], game_date=sys.argv[3],
        deadline=(datetime.now(UTC) + timedelta(seconds=150)).isoformat(), pull_timeout=5,
    )

    async def pull_until_acked():
        give_up = time.monotonic() + 100
        while time.monotonic() < give_up:
            pulled = await trigger._pull_and_record(date.fromisoformat(sys.argv[3]), 5, [])
            if pulled.entries:
                print("acked", len(pulled.ack_after_record), flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        return 2

    sys.exit(asyncio.run(pull_until_acked()))
    """
)


def test_event_acked_by_a_killed_trigger_still_drives_the_run(stack, airflow, api) -> None:
    client = bigquery_client(stack.project)
    seed_day(client, DAY, players=60, ready_pct=90)
    drain_subscription(config.PHASE5_TRIGGER_SUBSCRIPTION)
    trigger(api, RUN_ID, DAY, event_wait_seconds=300)
    wait_deferred(api, RUN_ID)
    local_airflow.kill_component(airflow, "triggerer")
    publish_completion_event(
        publisher_client(), stack.project, build_envelope(DAY, record_count=count_production_ready(client, DAY)[1])
    )
    env = {**airflow.env(stack.env()), "PYTHONPATH": PLUGINS}
    doomed = subprocess.run(
        [sys.executable, "-c", PULL_ACK_AND_DIE, stack.project, config.PHASE5_TRIGGER_SUBSCRIPTION, DAY.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert doomed.returncode == -signal.SIGKILL, doomed.stdout + doomed.stderr
    assert "acked 1" in doomed.stdout
    assert drain_subscription(config.PHASE5_TRIGGER_SUBSCRIPTION) == []  # acked: Pub/Sub will never redeliver it

    local_airflow.start_component(airflow, "triggerer", stack.env())
    run = wait_finished(api, RUN_ID, timeout=600)
    assert run["state"] == "success"
    [row] = [r for r in run_history(client, DAY) if r["run_id"] == RUN_ID]
    assert (row["status"], row["triggered_by"]) == ("success", "pubsub")
    assert os.environ.get("PUBSUB_EMULATOR_HOST")  # the whole test ran on the emulators
