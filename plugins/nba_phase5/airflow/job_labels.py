"""Labels on every BigQuery job the DAG runs: cost per DAG, task and game date in the billing export
and ``INFORMATION_SCHEMA.JOBS``.

The DAG and task labels are the Google provider's own, as ``BigQueryInsertJobOperator`` writes them
(``_add_job_labels`` in ``airflow/providers/google/cloud/operators/bigquery.py``), so this package's jobs
and the provider's group under the same labels in one cost query: keys ``airflow-dag`` and
``airflow-task``; values lower-cased, a group's ``.`` written ``-`` (``retry_stragglers.verify_completion``
→ ``retry_stragglers-verify_completion``), and both labels left out when either value then is not a
label value (over 63 characters, or a character other than a letter, digit, ``_`` or ``-``, such as the
``.`` of a dotted DAG id): the provider neither truncates nor replaces. ``game_date`` is this package's.
Streaming inserts (the request ledger, the batch claims) are not jobs and carry no labels.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from airflow.sdk import get_current_context

from nba_phase5.core.game_day import game_date_of_run

#: The label keys, in one place: dashboards and cost queries group by them.
DAG, TASK, GAME_DATE = "airflow-dag", "airflow-task", "game_date"
#: The provider's rule for a label value (its ``LABEL_REGEX``), matched as it matches it.
_LABEL_VALUE = re.compile(r"^[\w-]{0,63}$")


def airflow_labels(*, dag_id: str, task_id: str) -> dict[str, str]:
    """The provider's ``airflow-dag`` and ``airflow-task`` labels of a task: both, or none.

    :param dag_id: the DAG's id.
    :param task_id: the task's id (``group.task`` for a task in a group).
    """
    dag, task = dag_id.lower(), task_id.lower().replace(".", "-")
    if _LABEL_VALUE.match(dag) and _LABEL_VALUE.match(task):
        return {DAG: dag, TASK: task}
    return {}


def job_labels(*, dag_id: str, task_id: str, game_date: object) -> dict[str, str]:
    """The labels of the jobs of ``task_id`` in ``dag_id`` for ``game_date``.

    :param dag_id: the DAG's id.
    :param task_id: the task's id, or what stands for it in a callback (``on_run_failure``).
    :param game_date: the game date (a date or its ISO text); empty leaves the ``game_date`` label out.
    """
    labels = airflow_labels(dag_id=dag_id, task_id=task_id)
    value = str(game_date)
    if value and _LABEL_VALUE.match(value):
        labels[GAME_DATE] = value
    return labels


def labels_for(context: Any) -> dict[str, str]:
    """The labels of a task's jobs, from its Airflow context: the game date as the run resolves it.

    A label that cannot be told (a partial context) is left out: labels never fail a task."""
    dag_run, ti = context.get("dag_run"), context.get("ti")
    dag_id = getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None)
    task_id = getattr(ti, "task_id", None)
    labels = airflow_labels(dag_id=dag_id, task_id=task_id) if dag_id and task_id else {}
    with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError):
        labels[GAME_DATE] = game_date_of_run(context).isoformat()
    return labels


def current_labels() -> dict[str, str]:
    """The running task's labels; none outside a task (the CLI, the triggerer: it is given its own)."""
    try:
        context = get_current_context()
    except RuntimeError:
        return {}
    return labels_for(context)
