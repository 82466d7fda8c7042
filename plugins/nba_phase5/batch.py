"""What the DAG's Python tasks do: resolve the game day, judge the batch, verify it, record it.

Each function takes the Airflow context and is re-entrant: clearing and rerunning a task recomputes
its answer from BigQuery and XCom, never from state the previous try left behind.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from nba_phase5 import config
from nba_phase5.game_day import game_date_for_run

log = logging.getLogger(__name__)

# Task ids: outside tests clear these by id.
GAME_DAY = "resolve_game_day"
EVENT = "wait_for_phase4_event"
READINESS_WAIT = "phase4_readiness.wait_for_phase4_ready"
READINESS_GATE = "phase4_readiness.check_phase4_ready"
BATCH_STATUS = "check_batch_status"
FAN_OUT = "fan_out_requests"
ALREADY_COMPLETE = "skip_already_complete"
RETRY_GROUP = "retry_stragglers"
VERIFY = f"{RETRY_GROUP}.verify_completion"
STRAGGLER_ROUNDS = 2


def republish_task(round_number: int) -> str:
    return f"{RETRY_GROUP}.republish_round_{round_number}"


def wait_task(round_number: int) -> str:
    return f"{RETRY_GROUP}.wait_for_predictions_{round_number}"


def _bq() -> Any:
    from nba_phase5.hooks.bigquery import Phase5BigQueryHook

    return Phase5BigQueryHook(gcp_conn_id=config.GCP_CONN_ID)


def _sql(name: str, context: Any) -> str:
    """Render ``include/sql/<name>`` with the task's Jinja environment (``{% include %}`` works)."""
    task = context["task"]
    env = task.get_template_env(dag=task.dag) if hasattr(task, "get_template_env") else task.dag.get_template_env()
    rendered: str = env.get_template(name).render(**context)
    return rendered


def resolve_game_day(context: Any) -> bool:
    """Push the run's game date; False (short-circuit) on an off day."""
    params = context["params"]
    dag_run = context["dag_run"]
    run_time = context.get("logical_date") or dag_run.run_after
    game_date = game_date_for_run(run_time, params.get("game_date"))
    ti = context["ti"]
    ti.xcom_push(key="game_date", value=game_date.isoformat())
    ti.xcom_push(key="started_at", value=datetime.now(UTC).isoformat())
    games = _bq().query_rows(_sql("game_day.sql", context), {"game_date": game_date})[0]["games"]
    ti.xcom_push(key="games", value=games)
    if not games:
        log.info("No games on %s: nothing to predict, the run ends here.", game_date)
        return False
    log.info("Game date %s: %d games scheduled", game_date, games)
    return True


def game_date(context: Any) -> str:
    value: str = context["ti"].xcom_pull(task_ids=GAME_DAY, key="game_date")
    return value


def _prop_types(context: Any) -> list[str]:
    return list(context["params"]["prop_types"])


def check_batch_status(context: Any) -> str:
    """Branch: skip work already done (dedup) unless ``force``; else fan out to what is missing."""
    row = _bq().query_rows(
        _sql("batch_status.sql", context),
        {"game_date": {"type": "DATE", "value": game_date(context)}, "prop_types": _prop_types(context)},
    )[0]
    ready, complete, started = row["players_ready"], row["players_complete"], row["players_started"]
    if ready and complete == ready:
        state = "fully_complete"
    elif started:
        state = "partially_complete"
    else:
        state = "not_started"
    force = bool(context["params"]["force"])
    context["ti"].xcom_push(key="batch_status", value={"state": state, "force": force, **row})
    log.info("Batch status %s: %d/%d players complete (force=%s)", state, complete, ready, force)
    if state == "fully_complete" and not force:
        return ALREADY_COMPLETE
    return FAN_OUT


def verify_completion(context: Any) -> dict[str, Any]:
    """Final coverage after the straggler rounds; a warning alert when too many players still lack one."""
    from nba_phase5.notifications import raise_alert
    from nba_phase5.sensors.bigquery_poll import covered

    params = context["params"]
    last_wait = context["ti"].xcom_pull(task_ids=wait_task(STRAGGLER_ROUNDS + 1))
    if covered(last_wait):
        # The last wait saw every prediction in place; predictions are never deleted, so reuse it.
        row = {k: last_wait[k] for k in ("requests_wanted", "requests_done", "requests_missing", "players_missing")}
    else:
        row = _bq().query_rows(
            _sql("prediction_coverage.sql", context),
            {"game_date": {"type": "DATE", "value": game_date(context)}, "prop_types": _prop_types(context)},
        )[0]
    wanted, done = row["requests_wanted"], row["requests_done"]
    completion = round(100.0 * done / wanted, 2) if wanted else 100.0
    result = {**row, "completion_pct": completion, "batch_completed_at": datetime.now(UTC).isoformat()}
    missing = row["players_missing"]
    if missing > int(params["straggler_alert_count"]):
        raise_alert(
            context,
            "warning",
            f"{missing} players still lack a prediction after {STRAGGLER_ROUNDS} retry rounds "
            f"({completion}% of {wanted} requests complete)",
        )
    elif completion < float(params["completion_goal_pct"]):
        log.warning("Completion %.2f%% is below the %s%% goal", completion, params["completion_goal_pct"])
    return result


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def summarize_run(context: Any) -> dict[str, Any]:
    """The run-history row for this run, from what its tasks pushed (a cleared task pushes again)."""
    ti = context["ti"]

    def pull(task_id: str, key: str = "return_value") -> Any:
        return ti.xcom_pull(task_ids=task_id, key=key)

    date_iso = pull(GAME_DAY, "game_date")
    games = pull(GAME_DAY, "games")
    event = pull(EVENT) or {}
    readiness = pull(READINESS_WAIT) or {}
    status_row = pull(BATCH_STATUS, "batch_status") or {}
    fan_out = pull(FAN_OUT) or {}
    republished = [pull(republish_task(n)) or {} for n in range(1, STRAGGLER_ROUNDS + 1)]
    verify = pull(VERIFY) or {}

    rounds_used = sum(1 for r in republished if r.get("requested"))
    published = int(fan_out.get("published") or 0) + sum(int(r.get("published") or 0) for r in republished)
    if date_iso is None:
        status, message = "failed", "the game date could not be resolved"
    elif games == 0:
        status, message = "no_games", "no games scheduled"
    elif status_row.get("state") == "fully_complete" and not status_row.get("force"):
        status, message = "already_complete", "every ready player already had a prediction"
    elif verify:
        missing = int(verify.get("players_missing") or 0)
        status = "success" if missing == 0 else "partial"
        message = f"{missing} players missing after {rounds_used} straggler rounds"
    else:
        status, message = "failed", "the batch did not reach verification (see failed tasks)"

    event_payload = event.get("event") or {}
    phase4_completed = event_payload.get("completed_at") or readiness.get("phase4_completed_at")
    players_ready = readiness.get("players_ready", event_payload.get("players_ready"))
    players_total = readiness.get("players_total", event_payload.get("players_total"))
    now = datetime.now(UTC)
    return {
        "data_date": date_iso,
        "run_id": context["run_id"],
        "status": status,
        "triggered_by": event.get("triggered_by"),
        "started_at": _ts(pull(GAME_DAY, "started_at")) or now,
        "completed_at": now,
        "records_processed": published,
        "players_ready": players_ready,
        "players_total": players_total,
        "requests_published": published,
        "predictions_found": verify.get("requests_done", status_row.get("requests_done")),
        "straggler_rounds": rounds_used,
        "straggler_requests": [int(r.get("published") or 0) for r in republished],
        "completion_pct": verify.get("completion_pct", 100.0 if status == "already_complete" else None),
        "phase4_completed_at": _ts(phase4_completed),
        "event_received_at": _ts(event.get("event_received_at")),
        "first_request_at": _ts(fan_out.get("first_published_at")),
        "batch_completed_at": _ts(verify.get("batch_completed_at")),
        "message": message,
    }


RUN_HISTORY_TYPES = {
    "data_date": "DATE",
    "run_id": "STRING",
    "status": "STRING",
    "triggered_by": "STRING",
    "started_at": "TIMESTAMP",
    "completed_at": "TIMESTAMP",
    "records_processed": "INT64",
    "players_ready": "INT64",
    "players_total": "INT64",
    "requests_published": "INT64",
    "predictions_found": "INT64",
    "straggler_rounds": "INT64",
    "straggler_requests": "ARRAY<INT64>",
    "completion_pct": "FLOAT64",
    "phase4_completed_at": "TIMESTAMP",
    "event_received_at": "TIMESTAMP",
    "first_request_at": "TIMESTAMP",
    "batch_completed_at": "TIMESTAMP",
    "message": "STRING",
}


def record_batch_run(context: Any) -> dict[str, Any]:
    """MERGE this run's row into processor_run_history (a rerun updates it, never adds one)."""
    row = summarize_run(context)
    if row["data_date"] is None:
        log.error("No game date resolved: nothing to record")
        return row
    params = {name: {"type": RUN_HISTORY_TYPES[name], "value": value} for name, value in row.items()}
    _bq().query_rows(_sql("merge_run_history.sql", context), params)
    log.info("Recorded run history: %s", row)
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
