"""The post-deploy self-check (``dags/nba_phase5_self_check.py``): what it proves, and the probe it uses.

One manual run after a deploy proves that the triggerer imports this package's triggers, that BigQuery answers
in the configured location, and that the DAG's permissions hold; it ends its event wait on its own probe
(:data:`PROBE_DATE`, :data:`PROBE_MESSAGE_ID`, recorded in the inbox) and hands the trigger
:data:`UNUSED_SUBSCRIPTION`, so it never takes a Phase 4 message. Why: docs/architecture.md, *Why each module
is built as it is*.
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
