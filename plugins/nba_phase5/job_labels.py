"""Labels on every BigQuery job the DAG runs: cost per DAG, task and game date in the billing export
and ``INFORMATION_SCHEMA.JOBS``.

BigQuery label values hold lowercase letters, digits, ``_`` and ``-`` (at most 63 characters), so a
task id in a group (``retry_stragglers.verify_completion``) is written ``retry_stragglers-verify_completion``.
Streaming inserts (the request ledger, the batch claims) are not jobs and carry no labels.
"""

from __future__ import annotations

import re
from typing import Any

from nba_phase5.game_day import game_date_for_run

#: The label keys, in one place: dashboards and cost queries group by them.
DAG, TASK, GAME_DATE = "dag", "task", "game_date"
_NOT_ALLOWED = re.compile(r"[^a-z0-9_-]")


def label_value(value: object) -> str:
    """``value`` as a BigQuery label value: lower case, ``.`` → ``-``, anything else not allowed → ``_``."""
    return _NOT_ALLOWED.sub("_", str(value).lower().replace(".", "-"))[:63]


def job_labels(dag_id: str, task_id: str, game_date: object) -> dict[str, str]:
    return {DAG: label_value(dag_id), TASK: label_value(task_id), GAME_DATE: label_value(game_date)}


def labels_for(context: Any) -> dict[str, str]:
    """The labels of a task's jobs, from its Airflow context: the game date as the run resolves it.

    A label that cannot be told (a partial context) is left out: labels never fail a task."""
    dag_run, ti = context.get("dag_run"), context.get("ti")
    labels = {}
    if getattr(dag_run, "dag_id", None):
        labels[DAG] = label_value(dag_run.dag_id)
    if getattr(ti, "task_id", None):
        labels[TASK] = label_value(ti.task_id)
    try:
        run_time = context.get("logical_date") or dag_run.run_after
        labels[GAME_DATE] = game_date_for_run(run_time, context["params"].get("game_date")).isoformat()
    except (AttributeError, KeyError, TypeError, ValueError):
        pass
    return labels


def current_labels() -> dict[str, str]:
    """The running task's labels; none outside a task (the CLI, the triggerer: it is given its own)."""
    from airflow.sdk import get_current_context

    try:
        context = get_current_context()
    except RuntimeError:
        return {}
    return labels_for(context)
