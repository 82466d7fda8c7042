"""Poll a BigQuery query until it says ``done``, deferring between polls so no worker slot is held.

An operator, not a sensor: a sensor's ``timeout`` fails (or with ``soft_fail`` skips) the task and
everything after it, but here the end of the wait is an answer. The readiness gate and the straggler
rounds downstream judge the last row, so the wait returns it, and its length comes from the run's
params (``max_wait_minutes``, templated), which a sensor's numeric ``timeout`` cannot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator

from nba_phase5 import config
from nba_phase5.core.coverage import covered, plain_row
from nba_phase5.core.states import parse_flag

DEADLINE_KEY = "poll_deadline"
# Polls at least this far apart defer (no worker slot held); shorter ones sleep in the task.
MIN_DEFERRAL_S = 30.0
PROGRESS_KEY = "poll_progress"


class BigQueryWaitOperator(BaseOperator):
    """Runs ``sql`` until its first row has ``done = TRUE``, progress stalls, or ``max_wait_minutes`` pass (see the
    module docstring for why this is not a ``BaseSensorOperator``).

    Between polls 30 s or more apart it defers on a timer (no worker slot held). It never fails for waiting:
    it returns the last row with ``timed_out`` or ``settled`` set and leaves the verdict downstream. The
    optional arguments end or skip polls: ``settle_polls`` (progress stalled), ``earlier_result`` and
    ``first_poll`` (a ``done`` poll already made), ``delay_first_poll``. Why each: docs/architecture.md, *Why
    each module is built as it is*.

    :param sql: standard SQL or a ``.sql`` template returning a ``done`` column (templated).
    :param query_params: name → value or ``{"type": T, "value": v}`` query parameters (templated).
    :param max_wait_minutes: how long to keep polling (templated).
    :param poll_interval_seconds: pause between polls (templated).
    :param progress_column: a column that grows while work is being done, for ``settle_polls``.
    :param settle_polls: stop after this many polls without progress; 0 waits for done or timeout (templated).
    :param settle_blocked_by: a count column; while it is above 0, polls without progress do not count.
    :param earlier_result: the result of an earlier poll of the same query, as an XComArg (templated):
        when it was ``done``, it is returned again without a query.
    :param staged_batches: batches whose staging tables count too (templated: an XComArg, the run's own
        batch first): ``sql`` must then name a template over ``_prediction_state.sql``, which each poll
        renders anew with the batches' staging tables as they are then, so the staged players are read
        in the poll's own job.
    :param delay_first_poll: wait one ``poll_interval_seconds`` before the first poll.
    :param first_poll: a row of ``sql`` (same columns) read upstream, as an XComArg (templated): on the first
        try, when it is ``done``, it is this task's result (``reused``), no query; ``None`` or ``{}`` polls.
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    template_fields: Sequence[str] = (
        "sql",
        "query_params",
        "max_wait_minutes",
        "poll_interval_seconds",
        "settle_polls",
        "earlier_result",
        "staged_batches",
        "first_poll",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "query_params": "json"}
    ui_color = "#f0eee4"

    def __init__(
        self,
        *,
        sql: str,
        query_params: dict[str, Any] | None = None,
        max_wait_minutes: str | float = 30,
        poll_interval_seconds: str | float = 60,
        progress_column: str | None = None,
        settle_polls: str | int = 0,
        settle_blocked_by: str | None = None,
        earlier_result: Any = None,
        staged_batches: Any = None,
        delay_first_poll: bool = False,
        first_poll: Any = None,
        gcp_conn_id: str = config.GCP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        # Airflow renders `sql` in place; with staged batches each poll renders the template itself.
        self.sql_template = sql
        self.query_params = query_params
        self.max_wait_minutes = max_wait_minutes
        self.poll_interval_seconds = poll_interval_seconds
        self.progress_column = progress_column
        self.settle_polls = settle_polls
        self.settle_blocked_by = settle_blocked_by
        self.earlier_result = earlier_result
        self.staged_batches = staged_batches
        self.delay_first_poll = delay_first_poll
        self.first_poll = first_poll
        self.gcp_conn_id = gcp_conn_id

    @cached_property
    def hook(self) -> Any:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

        return Phase5BigQueryHook(gcp_conn_id=self.gcp_conn_id)

    def poll_query(self) -> str:
        """This poll's SQL: with a batch, the template rendered with the staging tables that exist now."""
        if not self.staged_batches:
            return str(self.sql)
        force = parse_flag(((self.query_params or {}).get("force") or {}).get("value"))
        query: str = self.hook.prediction_state_sql(self.sql_template, list(self.staged_batches), force=force)
        return query

    def poll(self) -> dict[str, Any]:
        rows = self.hook.query_rows(self.poll_query(), self.query_params)
        if not rows or "done" not in rows[0]:
            raise ValueError("the poll query must return one row with a `done` column")
        row: dict[str, Any] = rows[0]
        return row

    def execute(self, context: Any) -> dict[str, Any] | None:
        ti = context["ti"]
        if covered(self.earlier_result):
            self.log.info("An earlier poll already found the work complete: reusing its result")
            return {**self.earlier_result, "reused": True}
        # A retry or a clear polls: the upstream row may be what it is retrying, or hours old by now.
        if covered(self.first_poll) and int(ti.try_number) == 1:
            self.log.info("The poll made upstream already found the work complete: reusing it, no query")
            return {**plain_row(self.first_poll), "timed_out": False, "settled": False, "reused": True}
        deadline = (datetime.now(UTC) + timedelta(minutes=float(self.max_wait_minutes))).isoformat()
        # The deadline lives in XCom, not in defer kwargs: `dags test` drops those when it resumes a
        # task, and a cleared task (XCom wiped) must start a fresh wait anyway.
        ti.xcom_push(key=DEADLINE_KEY, value=deadline)
        ti.xcom_push(key=PROGRESS_KEY, value=None)
        if self.delay_first_poll:
            self._pause(float(self.poll_interval_seconds))
        return self._poll_or_defer(ti, deadline)

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any] | None:
        ti = context["ti"]
        return self._poll_or_defer(ti, ti.xcom_pull(task_ids=ti.task_id, key=DEADLINE_KEY))

    def _stalled(self, ti: Any, row: dict[str, Any]) -> bool:
        limit = int(self.settle_polls or 0)
        if not self.progress_column or limit <= 0:
            return False
        previous = ti.xcom_pull(task_ids=ti.task_id, key=PROGRESS_KEY) or {}
        value = row[self.progress_column]
        blocked = bool(self.settle_blocked_by and int(row[self.settle_blocked_by] or 0) > 0)
        quiet = bool(previous) and previous.get("value") == value and not blocked
        unchanged = previous.get("unchanged", 0) + 1 if quiet else 0
        ti.xcom_push(key=PROGRESS_KEY, value={"value": value, "unchanged": unchanged})
        return unchanged >= limit

    def _poll_or_defer(self, ti: Any, deadline: str) -> dict[str, Any]:
        interval = float(self.poll_interval_seconds)
        while True:
            row = self.poll()
            result = plain_row(row)
            if row["done"]:
                self.log.info("Done: %s", result)
                return {**result, "timed_out": False, "settled": False}
            if self._stalled(ti, row):
                self.log.warning("No progress in %s polls: stopping the wait: %s", self.settle_polls, result)
                return {**result, "timed_out": False, "settled": True}
            if datetime.now(UTC) >= datetime.fromisoformat(deadline):
                self.log.warning("Still not done at %s: %s", deadline, result)
                return {**result, "timed_out": True, "settled": False}
            self.log.info("Not done yet (%s); polling again in %ss", result, interval)
            self._pause(interval)

    def _pause(self, interval: float) -> None:
        """Wait ``interval`` seconds before the next poll: deferred (``execute_complete`` polls next) when long."""
        if interval >= MIN_DEFERRAL_S:
            self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=interval)), method_name="execute_complete")
        # A deferral shorter than a task's own start-up and teardown races the scheduler (the trigger
        # fires before the deferring process has exited); short polls simply wait in the task.
        time.sleep(interval)
