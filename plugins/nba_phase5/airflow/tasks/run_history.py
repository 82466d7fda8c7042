"""This DAG's row in the platform's shared ``processor_run_history`` (docs/platform.md §4).

The row is the coordinator's (``processor_name='PredictionCoordinator'``, its ``summary`` keys), so the
platform's monitoring reads it as it read the coordinator's; it is written ``running`` when the batch starts
and finished at the end by one MERGE keyed on (processor_name, data_date, run_id). The four deliberate
differences from the coordinator's row: docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, date, datetime
from typing import Any

from nba_phase5 import config
from nba_phase5.airflow.alert_channels import configured_channels
from nba_phase5.airflow.batch_claims import orphaned_by
from nba_phase5.airflow.hooks import bigquery_hook
from nba_phase5.airflow.job_labels import job_labels
from nba_phase5.airflow.notifications import send_alert
from nba_phase5.bigquery import sql
from nba_phase5.bigquery.bq import parameter_types
from nba_phase5.core.alert_kinds import AlertKind
from nba_phase5.core.game_day import game_date_for_run, game_date_of_run, season_year
from nba_phase5.core.run_facts import RunFacts
from nba_phase5.core.run_summary import correlation_id, held_by, outcome, summary
from nba_phase5.core.states import RunStatus, TriggeredBy, parse_flag, triggered_by_of_run

log = logging.getLogger(__name__)
PHASE = config.PHASE5_PHASE
OUTPUT_DATASET, OUTPUT_TABLE = config.PREDICTIONS_TABLE.split(".")


def run_facts(context: Any, results: dict[str, Any], *, channels: bool = True) -> RunFacts:
    """The run's facts: ``results`` (each task's result, by :class:`RunFacts` field) and the run's own.

    ``channels``: whether to look up the configured alert channels (Airflow connections), which only the
    finished row reports.
    """
    return RunFacts(
        run_id=str(context["run_id"]),
        run_date=_run_date(context),
        triggered_by=triggered_by_of_run(context.get("dag_run")),
        force=parse_flag(context["params"].get("force")),
        alert_channels=tuple(_configured(configured_channels)) if channels else (),
        **results,
    )


def _run_date(context: Any) -> str | None:
    """The game date by the run's clock and params (as ``resolve_game_day`` would resolve it), or None."""
    try:
        return game_date_of_run(context).isoformat()
    except (AttributeError, KeyError, TypeError, ValueError):  # no run, or a game_date param resolve refused
        return None


def _configured(channels: Any) -> list[str]:
    try:
        return list(channels())
    except Exception:
        log.exception("Could not tell which alert channels are configured")
        return []


def build_row(facts: RunFacts, *, running: bool = False) -> dict[str, Any]:
    """The production-shaped run-history row for this run (``running`` while the batch goes on)."""
    day = date.fromisoformat(str(facts.game_date))
    started = facts.get("game_day").get("started_at") or datetime.now(UTC).isoformat()
    now = datetime.now(UTC)
    if running:
        status, skip_reason, message = RunStatus.RUNNING, None, "batch started"
        # The coordinator's start row (docs/platform.md §4); expected_players is known after the gate.
        figures: dict[str, Any] = {
            "batch_id": facts.batch_id,
            "correlation_id": correlation_id(facts),
            "expected_players": None,
            "status": "starting",
            "outcome": "running",
            "message": message,
        }
    else:
        status, skip_reason, message = outcome(facts)
        figures = summary(facts, status, skip_reason, message)
        figures["duration_seconds"] = round((now - datetime.fromisoformat(started)).total_seconds(), 1)
    event = facts.get("event")
    # Only a run that reached the gate has a verdict on its dependency; a skipped or early-failed one has none.
    gate_passed = (facts.verdict is not None) if facts.readiness is not None and not running else None
    return production_row(
        run_id=facts.run_id,
        day=day,
        status=status,
        skip_reason=skip_reason,
        triggered_by=TriggeredBy(event.get("triggered_by") or facts.triggered_by),
        started=datetime.fromisoformat(started),
        finished=None if running else now,
        force=facts.force,
        figures=figures,
        # The columns' DEFAULT 0: a run that predicted nothing (skipped, failed early) says 0, not NULL.
        records=figures.get("records_processed") or 0,
        records_skipped=figures.get("records_failed") or 0,
        message_id=event.get("message_id"),
        message_data=event.get("event"),
        gate_passed=gate_passed,
    )


def production_row(
    *,
    run_id: str,
    day: date,
    status: RunStatus,
    triggered_by: TriggeredBy,
    started: datetime,
    finished: datetime | None,
    force: bool,
    figures: dict[str, Any],
    skip_reason: str | None = None,
    records: int | None = None,
    records_skipped: int | None = None,
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
        "status": str(status),
        "records_processed": records,
        "records_skipped": records_skipped,
        "triggered_by": str(triggered_by),
        "trigger_source": TriggeredBy(triggered_by).trigger_source,
        "trigger_message_id": message_id,
        "trigger_message_data": json.dumps(message_data) if message_data else None,
        "started_at": started,
        "processed_at": finished,
        "duration_seconds": round((finished - started).total_seconds(), 1) if finished else None,
        "skipped": status == RunStatus.SKIPPED,
        "skip_reason": str(skip_reason) if skip_reason else None,
        "backfill_mode": triggered_by == TriggeredBy.BACKFILL,
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


def record(facts: RunFacts, *, running: bool = False) -> dict[str, Any]:
    """MERGE this run's row; returns it (JSON-friendly) for the task's XCom."""
    row = build_row(facts, running=running)
    merge(bigquery_hook(), row)
    log.info("Run history %s: %s", row["status"], row["summary"])
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in row.items()}


def record_running(context: Any, game_day: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any]:
    """Write the run's ``running`` row, once its batch is claimed (``claim_batch``)."""
    return record(run_facts(context, {"game_day": game_day, "claim": claim}, channels=False), running=True)


def record_batch_run(facts: RunFacts, context: Any) -> dict[str, Any] | None:
    """The DAG's last task (ALL_DONE): finish this run's row from its facts, whatever happened."""
    if not facts.game_date:
        log.error("No game date, resolved or by the run's clock: nothing to record")
        return None
    recorded = record(facts)
    alert_if_orphaned(facts, context)
    return recorded


def alert_if_orphaned(facts: RunFacts, context: Any) -> None:
    """A run that yielded the date's batch to one that neither finished nor holds it raises a critical
    alert: otherwise both end ``skipped`` (state success) and the date has no batch, in silence."""
    holder = held_by(facts)
    why = orphaned_by(context, holder) if holder else None
    if why:
        send_alert(context, AlertKind.batch_orphaned, f"Nobody is running the batch for {facts.game_date}: {why}")


def on_run_failure(context: Any) -> None:
    """The DAG's failure callback: a run that died without recording itself (timeout, killed) is not silent.

    When ``record_batch_run`` already wrote the run's final row, its tasks have alerted and there is
    nothing to add. Otherwise (the row is still ``running``, or missing) the run is recorded ``failed``
    and a critical alert says so.
    """
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
    # Imported here to keep the DAG file's parse light: the provider's hook loads the BigQuery client.
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

    # The DAG processor runs this callback: no task context, so the labels are given.
    labels = job_labels(dag_id=dag_run.dag_id, task_id="on_run_failure", game_date=day.isoformat())
    hook = Phase5BigQueryHook(gcp_conn_id=config.GCP_CONN_ID, job_labels=labels)
    where = {"data_date": day, "processor_name": config.PHASE5_PROCESSOR, "run_id": dag_run.run_id}
    rows = hook.query_rows(sql.render("run_status.sql"), where)
    if rows and rows[0]["status"] != RunStatus.RUNNING:
        log.info("Run %s already recorded as %s", dag_run.run_id, rows[0]["status"])
        return
    reason = str(context.get("reason") or "the run failed before recording itself")
    started = json.loads(rows[0]["summary"] or "{}") if rows else {}
    # The running row's batch and correlation ids: the pointer to the staging tables the run leaves.
    kept = {key: started.get(key) for key in ("batch_id", "correlation_id")}
    leftover = (
        f"; rows its batch {kept['batch_id']} staged are merged by the date's next run, or now by clearing "
        "this run's retry_stragglers.consolidate_predictions"
        if kept["batch_id"]
        else ""
    )
    send_alert(
        {**context, "game_date": day.isoformat()},
        AlertKind.run_died,
        f"Run {dag_run.run_id} for {day} died: {reason}{leftover}",
    )
    row = production_row(
        run_id=dag_run.run_id,
        day=day,
        status=RunStatus.FAILED,
        triggered_by=triggered_by_of_run(dag_run),
        started=getattr(dag_run, "start_date", None) or datetime.now(UTC),
        finished=datetime.now(UTC),
        force=parse_flag(conf.get("force")),
        figures={**kept, "outcome": "failed", "message": reason},
    )
    merge(hook, row)
