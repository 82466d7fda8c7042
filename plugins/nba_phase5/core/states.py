"""The words a run, its batch and its alerts are judged in, as enums (each value is the string stored).

They are ``StrEnum``: a member is its value wherever it goes (XCom, JSON, a BigQuery column, a
comparison with the string read back), so the platform's vocabulary is written once, here.
"""

from __future__ import annotations

from enum import StrEnum


class BatchState(StrEnum):
    """What ``check_batch_status`` found of the date's batch before any wait."""

    NOT_STARTED = "not_started"
    PARTIALLY_COMPLETE = "partially_complete"
    FULLY_COMPLETE = "fully_complete"
    #: Another live run of the date holds the batch: this run yields.
    HELD = "held"


class RunStatus(StrEnum):
    """A run's ``status`` in ``processor_run_history`` (the platform's words)."""

    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"


#: A batch is finished when its run ended so: its date is done, and Phase 6 hears of it.
FINISHED_STATUSES = (RunStatus.SUCCESS, RunStatus.PARTIAL)


class SkipReason(StrEnum):
    """Why a ``skipped`` run did nothing (the platform's ``skip_reason`` words)."""

    NO_DATA = "no_data"
    ALREADY_PROCESSED = "already_processed"
    #: Another run holds the date's batch; the platform has no word of its own for it.
    EARLY_EXIT = "early_exit"


class TriggeredBy(StrEnum):
    """What started a batch (the run-history row's ``triggered_by``)."""

    PUBSUB = "pubsub"
    SCHEDULER_BACKUP = "scheduler_backup"
    MANUAL = "manual"
    BACKFILL = "backfill"

    @property
    def trigger_source(self) -> str:
        """The platform's coarser ``trigger_source`` word for it."""
        return {"pubsub": "pubsub", "scheduler_backup": "scheduler"}.get(self.value, "manual")


class TriggerStatus(StrEnum):
    """How one of this package's triggers ended: its event's ``status``."""

    #: BigQueryJobTrigger: the job finished, or failed.
    SUCCESS = "success"
    ERROR = "error"
    #: Phase4EventTrigger: the event came, the deadline passed, or the subscription could not be read.
    EVENT = "event"
    DEADLINE = "deadline"
    UNAVAILABLE = "unavailable"


class Severity(StrEnum):
    """An alert's severity, lowest first (the alerts table's ``severity``)."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


def triggered_by_run_type(run_type: object) -> TriggeredBy:
    """What started a run that never reached the event wait, from its Airflow ``run_type``.

    Airflow's ``DagRunType`` is a str enum whose ``str()`` is ``DagRunType.BACKFILL``: its value is compared.
    """
    value = str(getattr(run_type, "value", run_type))
    if value == "backfill":
        return TriggeredBy.BACKFILL
    if value in ("manual", "operator_triggered", "asset_triggered"):
        return TriggeredBy.MANUAL
    return TriggeredBy.SCHEDULER_BACKUP


def triggered_by_of_run(dag_run: object) -> TriggeredBy:
    """:func:`triggered_by_run_type` of a run (Airflow's ``DagRun``, or None outside a run)."""
    return triggered_by_run_type(getattr(dag_run, "run_type", ""))


def parse_flag(value: object) -> bool:
    """A param flag as a bool, whether it came native (``True``) or rendered by Jinja (``"True"``, ``"true"``)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1")


def skipped_wait(run_type: object, skip_wait: object) -> TriggeredBy | None:
    """Why a run does not wait for Phase 4's event (a backfill, or ``skip_event_wait``'s manual run), or None.

    One rule for the event wait and for ``check_batch_status``, which hands Phase 4's readiness to the
    readiness wait only when no event wait comes between them.
    """
    if triggered_by_run_type(run_type) is TriggeredBy.BACKFILL:
        return TriggeredBy.BACKFILL
    if parse_flag(skip_wait):
        return TriggeredBy.MANUAL
    return None
