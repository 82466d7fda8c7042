"""The typed query parameters of the DAG's SQL, built once for the tasks and for the DAG's templates.

Each value is ``{"type": T, "value": v}``: ``v`` may be a value, a Jinja string over ``params`` (rendered
when the task runs) or an XComArg (resolved when the task runs), so the DAG and the Python tasks share
one definition of each query's parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nba_phase5 import config

#: The params as Jinja, for the DAG's templated operators (rendered per run, after the Trigger form).
FORCE = "{{ params.force | string | lower }}"
IN_FLIGHT_SECONDS = "{{ (params.in_flight_minutes * 60) | round | int }}"


def prediction_state(day: Any, *, force: Any, batch_started_at: Any, in_flight_seconds: Any) -> dict[str, Any]:
    """Parameters of ``_prediction_state.sql`` (``prediction_coverage.sql``, ``missing_requests.sql``).

    The players the batch's workers staged are not a parameter: the tasks that know the batch render
    its staging tables into the query (:func:`nba_phase5.bigquery.consolidation.counted_tables`), one job.
    """
    return {
        "game_date": {"type": "DATE", "value": day},
        "force": {"type": "BOOL", "value": force},
        "batch_started_at": {"type": "TIMESTAMP", "value": batch_started_at},
        "in_flight_seconds": {"type": "INT64", "value": in_flight_seconds},
    }


def in_flight_seconds(in_flight_minutes: float | str) -> int:
    """The ``in_flight_minutes`` param as whole seconds (as :data:`IN_FLIGHT_SECONDS` renders it)."""
    return round(float(in_flight_minutes) * 60)


def templated_prediction_state(day: Any, batch_started_at: Any) -> dict[str, Any]:
    """:func:`prediction_state` for the DAG's templated tasks: ``force`` and the window from the run's params."""
    return prediction_state(day, force=FORCE, batch_started_at=batch_started_at, in_flight_seconds=IN_FLIGHT_SECONDS)


#: The readiness thresholds of ``phase4_readiness.sql`` and ``phase4_gate.sql``: the run params of the same names.
READINESS_THRESHOLDS = {"min_ready_players": "INT64", "min_ready_pct": "FLOAT64", "degraded_min_players": "INT64"}


def readiness(day: Any, params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Parameters of ``phase4_readiness.sql`` and ``phase4_gate.sql`` (and ``batch_status.sql``, which includes
    the first): the thresholds from the run's params, as Jinja for the DAG's templated tasks, or the values of
    ``params`` (a Python task's ``context["params"]``)."""
    thresholds = {
        name: {"type": type_, "value": params[name] if params is not None else "{{ params." + name + " }}"}
        for name, type_ in READINESS_THRESHOLDS.items()
    }
    return {
        "game_date": {"type": "DATE", "value": day},
        "phase4_processor": {"type": "STRING", "value": config.PHASE4_PROCESSOR},
        "phase4_ran_statuses": {"type": "ARRAY<STRING>", "value": list(config.PHASE4_RAN_STATUSES)},
        **thresholds,
    }
