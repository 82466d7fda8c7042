"""The Phase 4 readiness gate: a definite "not ready" fails at once; "could not ask BigQuery" is retried.

The gate judges one row (``phase4_gate.sql``'s: every column must be true): a missing or falsy row raises
:class:`Phase4NotReady` (no retries, the critical alert); any other error is retried, and its last failure
raises an ``error`` alert (:class:`Phase4GateNotifier` picks which). A first try judges the readiness wait's
last row without a query. Why not the provider's check operator: docs/architecture.md, *Why each module is
built as it is*.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseNotifier, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from nba_phase5 import config
from nba_phase5.airflow.triggers.bigquery_job import BigQueryJobTrigger
from nba_phase5.bigquery.bq import QUERY_TIMEOUT_S, job_outcome
from nba_phase5.core.states import TriggerStatus

#: The columns of ``phase4_gate.sql``'s row, which the readiness wait's row (``phase4_readiness.sql``) has too.
GATE_COLUMNS = ("phase4_ran", "can_proceed")
#: The ``error`` alert when BigQuery could not be asked; the notifier appends the last exception.
UNAVAILABLE_MESSAGE = "could not ask BigQuery whether Phase 4 is ready"


class Phase4NotReady(AirflowFailException):
    """BigQuery answered, and the answer is no: Phase 4 has not run or too few players are ready."""


def is_not_ready(exception: object) -> bool:
    """Whether a gate failure is a definite "not ready" (as opposed to BigQuery not answering)."""
    return isinstance(exception, Phase4NotReady)


def verdict(outcome: dict[str, Any]) -> dict[str, Any]:
    """The gate's answer from a job's outcome (:func:`nba_phase5.bigquery.bq.job_outcome`): the row when every
    column is true; :class:`Phase4NotReady` when the row is missing or a column is falsy; a retryable
    ``AirflowException`` when the job failed."""
    if outcome.get("status") != TriggerStatus.SUCCESS:
        raise AirflowException(str(outcome.get("message") or outcome))
    row = outcome.get("row")
    if not row:
        raise Phase4NotReady("The readiness gate returned no row")
    if not all(row.values()):
        raise Phase4NotReady(f"The readiness gate said no: {row}")
    return dict(row)


class Phase4GateOperator(BaseOperator):
    """Judges the readiness gate's row, which must be all true: the wait's on a first try, else its own query's
    (see the module docstring).

    Deferrable: the job is inserted in the task, then the triggerer waits for it
    (:class:`~nba_phase5.airflow.triggers.bigquery_job.BigQueryJobTrigger`, which looks it up in its location),
    so no worker slot is held while it runs; a job already done at insert is judged at once. Give the task
    ``retries`` and ``retry_exponential_backoff``: BigQuery errors are retried, a "no" never is. Pair it
    with :class:`Phase4GateNotifier` as ``on_failure_callback``.

    :param sql: standard SQL or a ``.sql`` template returning one row of booleans (templated).
    :param query_params: name → value or ``{"type": T, "value": v}`` query parameters (templated).
    :param readiness: the readiness wait's last row, as an XComArg (templated): on the first try its
        :data:`GATE_COLUMNS` are judged without a query; ``None`` (or a row without them) always queries.
    :param location: where the job runs and is looked up; ``None`` is the package's setting
        (:func:`nba_phase5.config.bigquery_location`) (templated).
    :param poll_interval: seconds between the trigger's looks at a running job.
    :param deferrable: wait in the triggerer (the default) or in the task.
    :param always_defer: defer even on a job done at insert, so the run proves that the triggerer imports
        and runs the trigger (the self-check and the system test; bqemulator finishes every job at insert).
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    template_fields: Sequence[str] = ("sql", "query_params", "readiness", "location")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "query_params": "json"}
    ui_color = "#f0eee4"

    def __init__(
        self,
        *,
        sql: str,
        query_params: dict[str, Any] | None = None,
        readiness: Any = None,
        location: str | None = None,
        poll_interval: float = 4.0,
        deferrable: bool = True,
        always_defer: bool = False,
        gcp_conn_id: str = config.GCP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.query_params = query_params
        self.readiness = readiness
        self.location = location
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.always_defer = always_defer
        self.gcp_conn_id = gcp_conn_id

    @cached_property
    def hook(self) -> Any:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

        return Phase5BigQueryHook(gcp_conn_id=self.gcp_conn_id, location=self.location or None)

    def reused_row(self, context: Any) -> dict[str, Any] | None:
        """The wait's row to judge instead of a query: only on the first try, and only with every gate column."""
        row = self.readiness
        if not isinstance(row, dict) or not all(column in row for column in GATE_COLUMNS):
            return None
        if int(context["ti"].try_number) > 1:
            return None
        return {column: row[column] for column in GATE_COLUMNS}

    def execute(self, context: Any) -> dict[str, Any]:
        reused = self.reused_row(context)
        if reused is not None:
            self.log.info("Readiness gate: judging the readiness wait's last row, no query: %s", reused)
            return verdict({"status": str(TriggerStatus.SUCCESS), "row": reused})
        job = self.hook.start_query(self.sql, self.query_params)
        # Created in the hook's location (its client's default), so looked up there too.
        self.log.info("Readiness gate: job %s in %s", job.job_id, self.hook.location)
        if self.deferrable and (self.always_defer or job.state != "DONE"):
            self.defer(
                trigger=BigQueryJobTrigger(
                    job_id=job.job_id,
                    project_id=job.project,
                    location=self.hook.location,
                    poll_interval=self.poll_interval,
                    gcp_conn_id=self.gcp_conn_id,
                ),
                method_name="execute_complete",
            )
        # Done at insert, or not deferrable: wait here (result() raises a failed job's error, retryable).
        job.result(timeout=QUERY_TIMEOUT_S)
        return verdict(job_outcome(job) or {})

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resumed after the trigger: judge the job's outcome."""
        return verdict(event)


class Phase4GateNotifier(BaseNotifier):
    """The gate's failure callback: the not-ready alert for a definite no, the other one for anything else.

    Airflow calls it once, when the task has failed for good: after a :class:`Phase4NotReady` (which is
    never retried) or after the last retry of any other error. A failure without an exception (a task
    killed from outside) counts as "could not ask".

    :param not_ready: notifier for :class:`Phase4NotReady`: the critical alert that says why in words.
    :param unavailable: notifier for every other failure: BigQuery could not be asked.
    """

    def __init__(self, *, not_ready: BaseNotifier, unavailable: BaseNotifier) -> None:
        super().__init__()
        self.not_ready = not_ready
        self.unavailable = unavailable

    def notify(self, context: Any) -> None:
        chosen = self.not_ready if is_not_ready(context.get("exception")) else self.unavailable
        chosen(context)
