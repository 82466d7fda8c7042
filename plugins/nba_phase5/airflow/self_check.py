"""The post-deploy self-check (``dags/nba_phase5_self_check.py``): what it proves, and the probe it uses.

One manual run after a deploy proves, in the environment it runs in (docs/deploy.md, *After a deploy*):

1. **the triggerer imports this package's triggers**: both tasks defer, on ``BigQueryJobTrigger`` and on
   ``Phase4EventTrigger``, even when the job is already done at insert (``always_defer``);
2. **BigQuery answers in the configured location** (:func:`nba_phase5.config.bigquery_location`,
   docs/platform.md §0): ``self_check.sql`` reads one partition of a table in each of the package's
   datasets, so a job created in another location fails ("Not found: Dataset … was not found in location
   …"), and the trigger looks the job up there (a lookup elsewhere is a 404);
3. **the permissions the DAG needs**: a query job (Job User, Data Viewer) and the inbox's MERGE (Data Editor).

**It never takes a Phase 4 message.** ``Phase4EventTrigger`` looks in the durable inbox before it pulls
(:mod:`nba_phase5.bigquery.inbox`) and ends its wait at the first ready feature-store event it finds there. So the
check first records its own probe, a feature-store ready event for :data:`PROBE_DATE`, under the fixed
message id :data:`PROBE_MESSAGE_ID` (the inbox MERGE keeps one row per id, however many checks run), and
the trigger's first look ends the wait with zero pulls. No prediction run ever waits for that date: it is
before the DAG's ``start_date`` (2024-10-01), so neither the schedule nor a backfill reaches it. And the
trigger is handed :data:`UNUSED_SUBSCRIPTION`, which nothing creates, never ``nba-phase5-trigger-sub``:
should it ever pull, it finds no subscription and the check fails, instead of acking a real message.

Pulling the real subscription would keep the feature store's ready events (the trigger records each in
the inbox before it acks it, and their run finds it at its next inbox look, up to 5 minutes later), but
not the rest: the other processors' messages and unusable ones would be acked without the run that
waits reporting them (``phase4_other_messages``, the unusable-event warning).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from nba_phase5 import config
from nba_phase5.bigquery import inbox
from nba_phase5.core.contract import Phase4CompletionEvent

DAG_ID = "nba_phase5_self_check"
#: The task ids (docs/deploy.md names them: a failure says which guarantee broke).
BIGQUERY_TASK = "bigquery_job_in_location"
EVENT_TASK = "phase4_event_trigger"
#: The probe's game date and message id: one inbox row, in a partition no run ever reads.
PROBE_DATE = date(2000, 1, 1)
PROBE_MESSAGE_ID = "nba-phase5-self-check"
#: What the trigger would pull if it ever did: a subscription nothing creates (see the module docstring).
UNUSED_SUBSCRIPTION = "nba-phase5-self-check-unused"
#: The trigger answers at its first look; this only bounds a wait that went wrong.
WAIT_SECONDS = 120
#: The DAG's defaults: a transient BigQuery error is retried, quickly (someone is watching the run).
DEFAULT_ARGS: dict[str, Any] = {"owner": "nba-platform", "retries": 2, "retry_delay": timedelta(seconds=15)}
RUN_TIMEOUT = timedelta(minutes=15)


class SelfCheckError(RuntimeError):
    """The check ran but its answer is wrong: the message says which guarantee is broken."""


def query_params() -> dict[str, dict[str, str]]:
    """``self_check.sql``'s parameters: the probe's date, a partition that is empty or nearly."""
    return {"probe_date": {"type": "DATE", "value": PROBE_DATE.isoformat()}}


def probe_event() -> Phase4CompletionEvent:
    """The probe: the feature store's ready event as the platform's envelope carries it (docs/platform.md §1.2)."""
    return Phase4CompletionEvent(
        game_date=PROBE_DATE,
        processor_name=config.PHASE4_PROCESSOR,
        phase=config.PHASE4_PHASE,
        execution_id=PROBE_MESSAGE_ID,
        correlation_id=PROBE_MESSAGE_ID,
        output_table=config.PHASE4_OUTPUT_TABLE,
        output_dataset=config.FEATURE_STORE_TABLE.split(".")[0],
        status="success",
        record_count=0,
        records_failed=0,
        timestamp=datetime(PROBE_DATE.year, PROBE_DATE.month, PROBE_DATE.day, tzinfo=UTC),
        duration_seconds=0.0,
        trigger_source=DAG_ID,
    )


def record_probe(hook: Any) -> None:
    """MERGE the probe into the inbox (a no-op after the first check, but the job runs: Data Editor)."""
    entry = inbox.InboxEntry(PROBE_MESSAGE_ID, probe_event(), datetime.now(UTC))
    inbox.record(hook, [entry], pulled_for=PROBE_DATE)


def event_verdict(event: dict[str, Any]) -> dict[str, Any]:
    """Pass when the trigger ended on the probe, found in the inbox without a single pull; else say why."""
    if event.get("status") == "event" and event.get("message_id") == PROBE_MESSAGE_ID and event.get("pulls") == 0:
        return {"trigger": "Phase4EventTrigger", "message_id": PROBE_MESSAGE_ID, "pulls": 0}
    shown = {key: event.get(key) for key in ("status", "message_id", "pulls", "reason")}
    raise SelfCheckError(
        f"Phase4EventTrigger did not find the self-check's probe in {config.EVENT_INBOX_TABLE} at its first look "
        f"(it reads the inbox from the triggerer, in {config.bigquery_location()} unless the triggerer's "
        f"{config.BIGQUERY_LOCATION_ENV} differs): {shown}"
    )
