"""Poll a BigQuery query until it says ``done``, deferring between polls so no worker slot is held."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseOperator

from nba_phase5 import config

DEADLINE_KEY = "poll_deadline"


class BigQueryPollSensor(BaseOperator):
    """Runs ``sql`` until its first row has ``done = TRUE`` or ``timeout_minutes`` pass.

    Between polls the task defers on a timer, so a 30-minute wait costs no worker slot. It does not
    fail at the timeout: it returns the last row with ``timed_out: True`` and leaves the verdict to
    the gate or verification downstream. Each rerun (clear) polls at least once.

    :param sql: standard SQL or a ``.sql`` template returning a ``done`` column (templated).
    :param query_params: name → value or ``{"type": T, "value": v}`` query parameters (templated).
    :param timeout_minutes: how long to keep polling (templated).
    :param poll_interval_seconds: pause between polls (templated).
    :param gcp_conn_id: Airflow connection to Google Cloud.
    """

    template_fields: Sequence[str] = ("sql", "query_params", "timeout_minutes", "poll_interval_seconds")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "query_params": "json"}
    ui_color = "#f0eee4"

    def __init__(
        self,
        *,
        sql: str,
        query_params: dict[str, Any] | None = None,
        timeout_minutes: str | float = 30,
        poll_interval_seconds: str | float = 60,
        gcp_conn_id: str = config.GCP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.query_params = query_params
        self.timeout_minutes = timeout_minutes
        self.poll_interval_seconds = poll_interval_seconds
        self.gcp_conn_id = gcp_conn_id

    @cached_property
    def hook(self) -> Any:
        from nba_phase5.hooks.bigquery import Phase5BigQueryHook

        return Phase5BigQueryHook(gcp_conn_id=self.gcp_conn_id)

    def poll(self) -> dict[str, Any]:
        rows = self.hook.query_rows(self.sql, self.query_params)
        if not rows or "done" not in rows[0]:
            raise ValueError("the poll query must return one row with a `done` column")
        row: dict[str, Any] = rows[0]
        return row

    def execute(self, context: Any) -> dict[str, Any] | None:
        deadline = (datetime.now(UTC) + timedelta(minutes=float(self.timeout_minutes))).isoformat()
        # The deadline lives in XCom, not in defer kwargs: `dags test` drops those when it resumes a
        # task, and a cleared task (XCom wiped) must start a fresh wait anyway.
        context["ti"].xcom_push(key=DEADLINE_KEY, value=deadline)
        return self._poll_or_defer(deadline)

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any] | None:
        ti = context["ti"]
        deadline = ti.xcom_pull(task_ids=ti.task_id, key=DEADLINE_KEY)
        return self._poll_or_defer(deadline)

    def _poll_or_defer(self, deadline: str) -> dict[str, Any]:
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

        row = self.poll()
        result = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
        if row["done"]:
            self.log.info("Done: %s", result)
            return {**result, "timed_out": False}
        if datetime.now(UTC) >= datetime.fromisoformat(deadline):
            self.log.warning("Still not done at %s: %s", deadline, result)
            return {**result, "timed_out": True}
        self.log.info("Not done yet (%s); polling again in %ss", result, self.poll_interval_seconds)
        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=float(self.poll_interval_seconds))),
            method_name="execute_complete",
        )
