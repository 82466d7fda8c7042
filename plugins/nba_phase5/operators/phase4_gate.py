"""The Phase 4 readiness gate: a definite "not ready" fails at once; "could not ask BigQuery" is retried.

The provider's ``BigQueryCheckOperator`` fails the same way whether the gate query said no or BigQuery
could not answer (a 5xx or a dropped connection while the triggerer polls the job, an error at insert,
a job that ends in ``backendError``). Here the two are told apart by exception type:

* the check's row is missing or has a falsy value → :class:`Phase4NotReady`, an ``AirflowFailException``:
  no retries, and the failure callback raises the critical not-ready alert;
* anything else is an ordinary failure, retried with the task's (exponential, jittered) retries; if the
  last try still fails, the callback raises an ``error`` alert, never the critical one.

:class:`Phase4GateNotifier` is the one place that picks the alert from the exception.
"""

from __future__ import annotations

from typing import Any, NoReturn

from airflow.providers.google.cloud.operators.bigquery import BigQueryCheckOperator
from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowFailException

from nba_phase5.job_labels import labels_for

#: The ``error`` alert when BigQuery could not be asked; the notifier appends the last exception.
UNAVAILABLE_MESSAGE = "could not ask BigQuery whether Phase 4 is ready"


class Phase4NotReady(AirflowFailException):
    """BigQuery answered, and the answer is no: Phase 4 has not run or too few players are ready."""


def is_not_ready(exception: object) -> bool:
    """Whether a gate failure is a definite "not ready" (as opposed to BigQuery not answering)."""
    return isinstance(exception, Phase4NotReady)


class Phase4GateOperator(BigQueryCheckOperator):
    """``BigQueryCheckOperator`` whose failed check is final and whose BigQuery errors are retryable.

    It takes the provider operator's arguments unchanged (``sql``, ``query_params``, ``use_legacy_sql``,
    ``deferrable``, ``poll_interval``, ``gcp_conn_id``, ``location``, …) and keeps its
    ``template_fields``. Only the verdict differs: when the query's single row is missing or has a falsy
    value, the task raises :class:`Phase4NotReady` (an ``AirflowFailException``, so no retries). Errors
    from BigQuery, at insert, while the triggerer polls the job or in the job itself, stay ordinary
    exceptions: give the task ``retries`` and ``retry_exponential_backoff`` and they are retried.
    Pair it with :class:`Phase4GateNotifier` as ``on_failure_callback``.
    """

    def execute(self, context: Any) -> Any:
        # The provider's own ``labels`` (its DB hook uses them when not deferrable); the deferrable
        # path's job gets them in _submit_job.
        self.labels = labels_for(context)
        return super().execute(context)

    def _submit_job(self, hook: Any, job_id: str) -> Any:
        """The provider's job (query, parameters, encryption), labelled: it builds its configuration inline."""
        configuration: dict[str, Any] = {"query": {"query": self.sql, "useLegacySql": self.use_legacy_sql}}
        if self.query_params:
            configuration["query"]["queryParameters"] = self.query_params
        self.include_encryption_configuration(configuration, "query")
        configuration["labels"] = self.labels
        return hook.insert_job(
            configuration=configuration, project_id=self.project_id, location=self.location, job_id=job_id, nowait=True
        )

    def _raise_exception(self, exception_string: str) -> NoReturn:
        # The provider's (and common.sql's) single exit for "the check ran and failed".
        raise Phase4NotReady(exception_string)

    def _validate_records(self, records: Any) -> None:
        # The provider raises a plain (retryable) AirflowException for zero rows; the gate query always
        # returns one row, so none is as much a "no" as a false column.
        if not records:
            self._raise_exception(f"The readiness gate returned no row:\n{self.sql}")
        super()._validate_records(records)


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
