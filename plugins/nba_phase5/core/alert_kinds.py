"""Every kind of alert the package raises: its severity and its section of the runbook.

One table, every name written once: a kind's name is the heading of its section in ``docs/runbook.md``,
so the section's anchor is the name (GitHub-style anchors keep ``_``): ``docs/runbook.md#phase4_not_ready``.
Each alert carries its kind to Slack and e-mail (:mod:`nba_phase5.airflow.alert_channels`), which name the section;
``tests/plugins/nba_phase5/test_notifications.py`` fails when a kind has no section. The ``pipeline_alerts``
row keeps its shape (the platform's table has no column for the kind): it stores the kind's severity.
"""

from __future__ import annotations

import os
from enum import Enum

from nba_phase5.core.states import Severity

#: Where the runbook lives, relative to the repository's root.
RUNBOOK_PATH = "docs/runbook.md"
#: Optional, per environment: where the repository can be browsed, e.g. ``https://<git host>/<org>/<repo>/blob/main``.
#: Set, alerts link ``<it>/docs/runbook.md#<kind>``; unset, they name the section repo-relative.
RUNBOOK_BASE_URL_ENV = "NBA_PHASE5_RUNBOOK_BASE_URL"
SEVERITIES = tuple(str(severity) for severity in Severity)


class AlertKind(Enum):
    """An alert's kind: ``(severity, what it means)``.

    The meaning also keeps every value distinct: two kinds of one severity would otherwise be aliases.
    """

    task_failed = ("error", "A task failed for good (after its retries): the default for every task.")
    phase4_not_ready = ("critical", "The gate's definite no: Phase 4 has not run, or too few players are ready.")
    gate_unavailable = ("error", "The readiness gate could not ask BigQuery (after its retries).")
    batch_incomplete = ("critical", "After the straggler rounds: no prediction at all, or under the critical %.")
    run_died = ("critical", "A run died without recording itself (timed out, killed).")
    deadline_missed = ("critical", "A run not finished by its SLA deadline, 10:00 ET on its game date.")
    batch_orphaned = ("critical", "A run yielded the date's batch to a run that neither finished nor holds it.")
    schedule_outage = ("warning", "No game in the schedule within 14 days of the date: the gates decide.")
    phase4_degraded = ("warning", "Phase 4 not fully ready after the wait: the batch goes on with the ready.")
    stragglers_remaining = ("warning", "After the rounds, too many players lack a prediction: the run is partial.")
    phase4_events_unreadable = ("warning", "The trigger subscription cannot be read: backup path at the deadline.")
    phase4_events_rejected = ("warning", "Unusable Phase 4 messages were acked and ignored.")
    phase4_event_late = ("warning", "Phase 4 published again for a date whose batch had finished.")
    handoff_refused = ("warning", "A finished batch Phase 6 would drop: not announced to Phase 6.")

    def __init__(self, severity: str, meaning: str) -> None:
        self.severity = str(Severity(severity))
        self.meaning = meaning

    @property
    def anchor(self) -> str:
        """The runbook section's anchor: the kind's name, which is the section's heading."""
        return self.name

    def runbook_ref(self) -> str:
        """Where the section is: ``docs/runbook.md#<kind>``, behind ``$NBA_PHASE5_RUNBOOK_BASE_URL`` when set."""
        return runbook_url(self.anchor)


def runbook_url(anchor: str = "") -> str:
    """``docs/runbook.md`` (``#anchor``), prefixed with ``$NBA_PHASE5_RUNBOOK_BASE_URL`` when it is set.

    :param anchor: a section's anchor; empty for the whole runbook.
    """
    reference = f"{RUNBOOK_PATH}#{anchor}" if anchor else RUNBOOK_PATH
    base = os.environ.get(RUNBOOK_BASE_URL_ENV, "").strip().rstrip("/")
    return f"{base}/{reference}" if base else reference


def with_runbook_link(doc_md: str | None) -> str:
    """The DAG's ``doc_md`` followed by a link to the runbook.

    :param doc_md: the DAG's own documentation (its module docstring).
    """
    url = runbook_url()
    return (
        f"{doc_md or ''}\n**Runbook**: [{RUNBOOK_PATH}]({url}): one section per alert kind. Every alert's Slack "
        "message and e-mail name their section and link this run's grid and the raising task's log.\n"
    )
