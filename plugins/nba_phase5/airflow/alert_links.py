"""Where an alert sends people: its runbook section, the run's grid and, when a task raised it, the task's log.

The links are the Airflow 3 UI's own routes (``dags/:dagId/runs/:runId`` and
``dags/:dagId/runs/:runId/tasks/:taskId[/mapped/:mapIndex]``, as the task instance's ``log_url`` builds
them) under Airflow's ``[api] base_url`` (``AIRFLOW__API__BASE_URL``), with Airflow's own fallback when it
is unset. Run ids hold ``:`` and ``+`` (``scheduled__2025-11-28T05:00:00+00:00``), so they are encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow.sdk.configuration import conf

from nba_phase5.core.alert_kinds import AlertKind

#: Airflow's own fallback for ``[api] base_url`` (the task instance's ``log_url`` uses the same).
AIRFLOW_DEFAULT_BASE_URL = "http://localhost:8080"


@dataclass(frozen=True)
class Link:
    """One labelled link of an alert's body (e-mail makes it an anchor; Slack links the bare URL)."""

    label: str
    url: str


def airflow_base_url() -> str:
    """Airflow's ``[api] base_url``, as the task instance's ``log_url`` reads it, without a trailing ``/``."""
    base = conf.get("api", "base_url", fallback="") or AIRFLOW_DEFAULT_BASE_URL
    return str(base).rstrip("/")


def run_url(base: str, dag_id: str, run_id: str) -> str:
    """The run in the UI: the grid with the run selected."""
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_log_url(base: str, dag_id: str, run_id: str, task_id: str, *, map_index: Any, try_number: Any) -> str:
    """The task instance's log in the UI (its default tab), at ``try_number`` when known."""
    url = f"{run_url(base, dag_id, run_id)}/tasks/{quote(task_id, safe='')}"
    if isinstance(map_index, int) and map_index >= 0:
        url += f"/mapped/{map_index}"
    if isinstance(try_number, int) and try_number > 0:
        url += f"?try_number={try_number}"
    return url


def alert_links(context: Any, row: dict[str, Any], kind: AlertKind) -> list[Link]:
    """The runbook section, then the run's grid (any alert of a run), then the task log (an alert a task raised).

    :param context: the Airflow context the alert was raised in: its ``ti`` gives the try and map index.
    :param row: the ``pipeline_alerts`` row (``dag_id``, ``run_id``, ``task_id``).
    :param kind: the alert's kind, whose runbook section is linked.
    """
    links = [Link("Runbook", kind.runbook_ref())]
    if not (row.get("dag_id") and row.get("run_id")):
        return links
    base = airflow_base_url()
    links.append(Link("Run (grid)", run_url(base, row["dag_id"], row["run_id"])))
    if row.get("task_id"):
        ti = context.get("ti")
        log = task_log_url(
            base,
            row["dag_id"],
            row["run_id"],
            row["task_id"],
            map_index=getattr(ti, "map_index", None),
            try_number=getattr(ti, "try_number", None),
        )
        links.append(Link("Task log", log))
    return links
