"""This DAG's row in the platform's shared ``processor_run_history`` (PLATFORM.md §4).

Only production columns are written. Phase 5's own figures (players, requests per round, completion,
latencies, degradation) have no column there and travel in ``summary`` JSON. The batch writes its row
``running`` when it starts and finishes it at the end, both through one MERGE keyed on
(processor_name, data_date, run_id): a hung run stays visible as ``running``, and rerunning the
recorder updates the row instead of adding one.
"""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, date, datetime
from typing import Any

from nba_phase5 import batch, config, sql
from nba_phase5.bq import parameter_types

log = logging.getLogger(__name__)
PHASE = "phase_5"
OUTPUT_DATASET, OUTPUT_TABLE = config.PREDICTIONS_TABLE.split(".")
# triggered_by (what started the batch) → the platform's trigger_source vocabulary.
TRIGGER_SOURCES = {"pubsub": "pubsub", "scheduler_backup": "scheduler", "manual": "manual", "backfill": "manual"}


def season_year(day: date) -> int:
    """The NBA season's starting year: October to December belong to that year's season."""
    return day.year if day.month >= 8 else day.year - 1


def run_trigger(context: Any) -> str:
    """What started a run that never reached the event wait (dedup, off day, failure)."""
    run_type = getattr(context["dag_run"], "run_type", "")
    # Airflow's DagRunType is a str Enum whose str() is "DagRunType.BACKFILL": compare its value.
    value = str(getattr(run_type, "value", run_type))
    if value == "backfill":
        return "backfill"
    if value in ("manual", "operator_triggered", "asset_triggered"):
        return "manual"
    return "scheduler_backup"


def _pull(context: Any, task_id: str, key: str = "return_value") -> Any:
    return context["ti"].xcom_pull(task_ids=task_id, key=key)


def outcome(context: Any) -> tuple[str, str | None, str]:
    """(status, skip_reason, message) of the run from what its tasks returned."""
    if _pull(context, batch.GAME_DAY, "game_date") is None:
        return "failed", None, "the game date could not be resolved"
    games = _pull(context, batch.GAME_DAY, "games")
    if games == 0 and not _pull(context, batch.GAME_DAY, "schedule_outage"):
        return "skipped", "no_data", "no games scheduled"
    status_row = _pull(context, batch.BATCH_STATUS, "batch_status") or {}
    if status_row.get("state") == "fully_complete" and not status_row.get("force"):
        return "skipped", "already_processed", "every ready player already had an active prediction"
    held_by = _held_by(context)
    if held_by:
        # The platform's skip reasons have no word for it: early_exit, and the summary says why.
        return "skipped", "early_exit", f"run {held_by} was already running this date's batch: nothing published"
    verify = _pull(context, batch.VERIFY) or {}
    if verify.get("incomplete"):
        return "failed", None, f"only {verify.get('completion_pct')}% of ready players predicted"
    if verify:
        missing = int(verify.get("players_missing") or 0)
        return ("success" if missing == 0 else "partial"), None, f"{missing} players missing after the retry rounds"
    return "failed", None, "the batch did not reach verification (see failed tasks)"


def _held_by(context: Any) -> str | None:
    """The run this one yielded the date's batch to (at the branch or at the fan-out), if it did."""
    from nba_phase5.batch_lease import HELD_BY_KEY

    for task_id in (batch.BATCH_STATUS, batch.FAN_OUT):
        held = _pull(context, task_id, HELD_BY_KEY)
        if held:
            return str(held["run_id"])
    return None


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def summary(context: Any, status: str, skip_reason: str | None, message: str) -> dict[str, Any]:
    """Phase 5's figures for the run: the JSON ``summary`` column."""
    event = _pull(context, batch.EVENT) or {}
    readiness = _pull(context, batch.READINESS_VERDICT) or _pull(context, batch.READINESS_WAIT) or {}
    status_row = _pull(context, batch.BATCH_STATUS, "batch_status") or {}
    fan_out = _pull(context, batch.FAN_OUT) or {}
    rounds = [_pull(context, batch.republish_task(n)) or {} for n in range(1, batch.STRAGGLER_ROUNDS + 1)]
    verify = _pull(context, batch.VERIFY) or {}
    payload = event.get("event") or {}
    straggler_requests = [int(r.get("published") or 0) for r in rounds]
    phase4_done = payload.get("timestamp") or readiness.get("phase4_processed_at")
    first_request = fan_out.get("first_published_at")
    return {
        "outcome": _outcome_word(status, skip_reason),
        "message": message,
        "games": _pull(context, batch.GAME_DAY, "games"),
        "schedule_outage": bool(_pull(context, batch.GAME_DAY, "schedule_outage")),
        "players_total": readiness.get("players_total", payload.get("players_processed")),
        "players_ready": readiness.get("players_ready", payload.get("players_ready")),
        "phase4_status": readiness.get("phase4_status"),
        "degraded": bool(readiness.get("degraded")),
        "batch_id": fan_out.get("batch_id"),
        "held_by": _held_by(context),
        "requests_fan_out": int(fan_out.get("published") or 0),
        "requests_published": int(fan_out.get("published") or 0) + sum(straggler_requests),
        "straggler_requests": straggler_requests,
        "straggler_rounds": sum(1 for r in rounds if r.get("requested")),
        "players_predicted": verify.get("players_complete", status_row.get("players_complete")),
        "players_missing": verify.get("players_missing"),
        "completion_pct": verify.get("completion_pct", 100.0 if status_row.get("done") else None),
        "events_rejected": event.get("rejected") or [],
        "phase4_completed_at": phase4_done,
        "event_received_at": event.get("event_received_at"),
        "first_request_at": first_request,
        "batch_completed_at": verify.get("batch_completed_at"),
        "phase4_to_event_s": _seconds(phase4_done, event.get("event_received_at")),
        "event_to_first_request_s": _seconds(event.get("event_received_at"), first_request),
        "phase4_to_first_request_s": _seconds(phase4_done, first_request),
        "first_request_to_complete_s": _seconds(first_request, verify.get("batch_completed_at")),
        "alert_channels": _alert_channels(),
    }


def _outcome_word(status: str, skip_reason: str | None) -> str:
    """A one-word outcome for people: success, partial, failed, already_complete, no_games, running."""
    words = {"no_data": "no_games", "already_processed": "already_complete", "early_exit": "concurrent_run"}
    return words.get(skip_reason or "", status)


def _alert_channels() -> list[str]:
    try:
        from nba_phase5.alert_channels import configured_channels

        return list(configured_channels())
    except Exception:
        log.exception("Could not tell which alert channels are configured")
        return []


def build_row(context: Any, *, running: bool = False) -> dict[str, Any]:
    """The production-shaped run-history row for this run (``running`` while the batch goes on)."""
    day = date.fromisoformat(_pull(context, batch.GAME_DAY, "game_date"))
    started = _pull(context, batch.GAME_DAY, "started_at") or datetime.now(UTC).isoformat()
    now = datetime.now(UTC)
    if running:
        status, skip_reason, message = "running", None, "batch started"
        figures: dict[str, Any] = {"outcome": "running", "message": message}
    else:
        status, skip_reason, message = outcome(context)
        figures = summary(context, status, skip_reason, message)
    event = _pull(context, batch.EVENT) or {}
    triggered_by = event.get("triggered_by") or run_trigger(context)
    # Only a run that reached the gate has a verdict on its dependency; a skipped or early-failed one has none.
    reached_gate = _pull(context, batch.READINESS_WAIT) is not None
    gate_passed = (_pull(context, batch.READINESS_VERDICT) is not None) if reached_gate and not running else None
    return production_row(
        run_id=context["run_id"],
        day=day,
        status=status,
        skip_reason=skip_reason,
        triggered_by=triggered_by,
        started=datetime.fromisoformat(started),
        finished=None if running else now,
        force=bool(context["params"].get("force")),
        figures=figures,
        records=figures.get("requests_published", 0),
        message_id=event.get("message_id"),
        message_data=event.get("event"),
        gate_passed=gate_passed,
    )


def production_row(
    *,
    run_id: str,
    day: date,
    status: str,
    triggered_by: str,
    started: datetime,
    finished: datetime | None,
    force: bool,
    figures: dict[str, Any],
    skip_reason: str | None = None,
    records: int | None = None,
    message_id: str | None = None,
    message_data: dict[str, Any] | None = None,
    gate_passed: bool | None = None,
) -> dict[str, Any]:
    """Every column this DAG writes in the shared table, in the platform's vocabulary."""
    return {
        "processor_name": config.PHASE5_PROCESSOR,
        "run_id": run_id,
        "data_date": day,
        "season_year": season_year(day),
        "status": status,
        "records_processed": records,
        "triggered_by": triggered_by,
        "trigger_source": TRIGGER_SOURCES.get(triggered_by, "manual"),
        "trigger_message_id": message_id,
        "trigger_message_data": json.dumps(message_data) if message_data else None,
        "started_at": started,
        "processed_at": finished,
        "duration_seconds": round((finished - started).total_seconds(), 1) if finished else None,
        "skipped": status == "skipped",
        "skip_reason": skip_reason,
        "backfill_mode": triggered_by == "backfill",
        "force_reprocess": force,
        "execution_host": socket.gethostname(),
        "phase": PHASE,
        "output_dataset": OUTPUT_DATASET,
        "output_table": OUTPUT_TABLE,
        "dependency_check_passed": gate_passed,
        "upstream_dependencies": json.dumps([config.PHASE4_PROCESSOR]),
        "summary": json.dumps(figures, default=str),
    }


def merge(hook: Any, row: dict[str, Any]) -> None:
    """MERGE ``row`` into the run history with ``merge_run_history.sql``."""
    types = parameter_types(config.RUN_HISTORY_TABLE)
    hook.query_rows(
        sql.render("merge_run_history.sql"),
        {name: {"type": types[name], "value": value} for name, value in row.items()},
    )


def record(context: Any, *, running: bool = False) -> dict[str, Any]:
    """MERGE this run's row; returns it (JSON-friendly) for the task's XCom."""
    row = build_row(context, running=running)
    merge(batch.bq_hook(), row)
    log.info("Run history %s: %s", row["status"], row["summary"])
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in row.items()}


def record_batch_run(context: Any) -> dict[str, Any] | None:
    """The DAG's last task (ALL_DONE): finish this run's row, whatever happened."""
    if _pull(context, batch.GAME_DAY, "game_date") is None:
        log.error("No game date resolved: nothing to record")
        return None
    return record(context)


def on_run_failure(context: Any) -> None:
    """The DAG's failure callback: a run that died without recording itself (timeout, killed) is not silent.

    When ``record_batch_run`` already wrote the run's final row, its tasks have alerted and there is
    nothing to add. Otherwise (the row is still ``running``, or missing) the run is recorded ``failed``
    and a critical alert says so.
    """
    from nba_phase5.game_day import game_date_for_run
    from nba_phase5.notifications import raise_alert

    dag_run = context.get("dag_run")
    if dag_run is None:  # Airflow hands a bare context when the run's last task instance is unknown
        log.error(
            "Run %s failed (%s) and cannot be recorded: no dag_run in the callback's context",
            context.get("run_id"),
            context.get("reason"),
        )
        return
    conf = dict(getattr(dag_run, "conf", None) or {})
    run_time = getattr(dag_run, "logical_date", None) or dag_run.run_after
    day = game_date_for_run(run_time, conf.get("game_date"))
    from nba_phase5.hooks.bigquery import Phase5BigQueryHook
    from nba_phase5.job_labels import job_labels

    # The DAG processor runs this callback: no task context, so the labels are given.
    labels = job_labels(dag_run.dag_id, "on_run_failure", day.isoformat())
    hook = Phase5BigQueryHook(gcp_conn_id=config.GCP_CONN_ID, job_labels=labels)
    where = {"data_date": day, "processor_name": config.PHASE5_PROCESSOR, "run_id": dag_run.run_id}
    rows = hook.query_rows(sql.render("run_status.sql"), where)
    if rows and rows[0]["status"] != "running":
        log.info("Run %s already recorded as %s", dag_run.run_id, rows[0]["status"])
        return
    reason = str(context.get("reason") or "the run failed before recording itself")
    raise_alert(
        {**context, "game_date": day.isoformat()},
        config.ALERTS.run_died,
        f"Run {dag_run.run_id} for {day} died: {reason}",
    )
    row = production_row(
        run_id=dag_run.run_id,
        day=day,
        status="failed",
        triggered_by=run_trigger(context),
        started=getattr(dag_run, "start_date", None) or datetime.now(UTC),
        finished=datetime.now(UTC),
        force=bool(conf.get("force")),
        figures={"outcome": "failed", "message": reason},
    )
    merge(hook, row)
