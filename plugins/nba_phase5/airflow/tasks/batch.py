"""The DAG's Python tasks after the claim: judge the batch, weigh readiness, consolidate, verify.

Each function takes what earlier tasks returned (XComArgs the DAG file wires) and the Airflow context,
and is re-entrant: clearing and rerunning a task recomputes its answer from BigQuery and its inputs,
never from state the previous try left behind. The run-history row is :mod:`.run_history`'s.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from nba_phase5 import config
from nba_phase5.airflow import batch_claims
from nba_phase5.airflow.hooks import bigquery_hook
from nba_phase5.airflow.notifications import warn
from nba_phase5.bigquery import query_params, sql
from nba_phase5.core.alert_kinds import AlertKind
from nba_phase5.core.coverage import covered, plain_row, readiness_words
from nba_phase5.core.states import BatchState, parse_flag, skipped_wait

log = logging.getLogger(__name__)

TASKS = config.TASKS
STRAGGLER_ROUNDS = config.WAIT_LIMITS.straggler_rounds
#: check_batch_status's XCom keys: its facts on the path taken, and Phase 4's readiness as it read it.
BATCH_STATUS_KEY = "batch_status"
PHASE4_READINESS_KEY = "phase4_readiness"
#: The readiness wait's full task id, for the gate's alert macro (it reads the wait's last row).
READINESS_WAIT = TASKS.in_group(TASKS.readiness_group, TASKS.readiness_wait)


def coverage_params(game_day: dict[str, Any], claim: dict[str, Any], params: Any, *, force: bool) -> dict[str, Any]:
    """:func:`nba_phase5.bigquery.query_params.prediction_state` for this run."""
    return query_params.prediction_state(
        game_day["game_date"],
        force=force,
        batch_started_at=claim["batch_started_at"],
        in_flight_seconds=query_params.in_flight_seconds(params["in_flight_minutes"]),
    )


def check_batch_status(game_day: dict[str, Any], claim: dict[str, Any], context: Any) -> str:
    """Branch, before any wait: yield to another live run of the date; skip a complete day unless ``force``.

    The date's claims are read here, on every try (a cleared run must judge the holder by the claims
    as they are now, as every other reader does), in one job with the dedup coverage (``batch_status.sql``),
    after this run's claim landed: claim_batch's, or the new one of a run cleared since. The same job
    reads Phase 4's readiness for the readiness wait (:func:`push_phase4_readiness`).
    """
    day, params = str(game_day["game_date"]), context["params"]
    force = parse_flag(params["force"])
    batch_claims.claim_again_if_cleared(context, day)
    # Dedup judges existing predictions of any batch: in-flight requests and generations do not matter here.
    query = {**coverage_params(game_day, claim, params, force=False), **query_params.readiness(day, params)}
    row = bigquery_hook().query_rows(sql.render("batch_status.sql"), query)[0]
    push_phase4_readiness(context, row.pop("phase4"))
    held_by = batch_claims.holder_among(context, day, list(row.pop("claims") or []))
    ti = context["ti"]
    if held_by:
        ti.xcom_push(
            key=BATCH_STATUS_KEY, value={"state": str(BatchState.HELD), "force": force, "held_by": held_by.run_id}
        )
        return TASKS.concurrent_run
    ready, complete = int(row["players_ready"]), int(row["players_complete"])
    if row["done"]:
        state = BatchState.FULLY_COMPLETE
    elif complete:
        state = BatchState.PARTIALLY_COMPLETE
    else:
        state = BatchState.NOT_STARTED
    ti.xcom_push(key=BATCH_STATUS_KEY, value={"state": str(state), "force": force, **row})
    log.info("Batch status %s: %d/%d players complete (force=%s)", state, complete, ready, force)
    if state is BatchState.FULLY_COMPLETE and not force:
        return TASKS.already_complete
    return TASKS.event


def push_phase4_readiness(context: Any, phase4: dict[str, Any] | None) -> None:
    """Push Phase 4's readiness row for the readiness wait's first poll, when no event wait comes between.

    Pushed on every path, so the wait's XComArg always resolves (a pushed ``None`` reads as missing): ``{}``
    when the run waits for the event, as the row would be hours old by the time the wait runs.
    """
    skipped = skipped_wait(context["dag_run"].run_type, context["params"]["skip_event_wait"])
    value = plain_row(phase4) if skipped and phase4 else {}
    context["ti"].xcom_push(key=PHASE4_READINESS_KEY, value=value)


def phase4_not_ready_message(ti: Any, params: Any) -> str:
    """The gate's critical alert (a template macro): what the last readiness poll saw, in words.

    A macro renders in the failing gate's context, where the wait's row is an XCom to read, not an input.
    """
    row = ti.xcom_pull(task_ids=READINESS_WAIT)
    day = ti.xcom_pull(task_ids=TASKS.game_day, key="game_date")
    words = readiness_words(row, str(day), int(params["degraded_min_players"]))
    return f"Phase 4 is not ready: {words}. No predictions will be made."


def proceed_with_ready_players(readiness: dict[str, Any] | None, game_date: str, context: Any) -> dict[str, Any]:
    """After the gate passed: full readiness, or degraded (a warning) with the players that are ready."""
    row = dict(readiness or {})
    degraded = not row.get("done")
    row["degraded"] = degraded
    if degraded:
        ready, total = int(row.get("players_ready") or 0), int(row.get("players_total") or 0)
        pct = 100.0 * ready / total if total else 0.0
        warn(
            context,
            AlertKind.phase4_degraded,
            f"Phase 4 not fully ready for {game_date} after {context['params']['phase4_wait_minutes']} "
            f"min: proceeding with {ready}/{total} ready ({pct:.1f} %)",
        )
    return row


def consolidate_predictions(game_date: str, claim: dict[str, Any] | None) -> dict[str, Any]:
    """Merge this run's staging tables into the predictions table and delete them (rerun-safe).

    A run that never claimed a batch (or whose workers staged nothing) has nothing to merge.
    """
    batch = (claim or {}).get("batch_id")
    if not batch:
        log.info("Run has no batch id: nothing to consolidate")
        return {"batch_id": None, "staging_tables": 0, "rows_affected": 0, "tables_deleted": 0}
    adopted = [other for other in claim["staged_batches"] if other != batch]  # type: ignore[index]
    result: dict[str, Any] = bigquery_hook().consolidate(game_date, batch, adopted).to_dict()
    return {**result, "adopted_batches": adopted}


class BatchIncompleteError(AirflowFailException):
    """The batch ended far from complete: the run fails at once (no retry) and the alert is critical."""

    alert_kind = AlertKind.batch_incomplete

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.alert_message = message


def verify_completion(
    last_wait: dict[str, Any] | None, game_day: dict[str, Any], claim: dict[str, Any], context: Any
) -> dict[str, Any]:
    """Final coverage after the straggler rounds, judged loudly.

    No prediction at all, or completion under ``critical_completion_pct``: critical, the run fails
    (a worker outage must not look like a green day). Under the goal, or more than
    ``straggler_alert_count`` players missing: a warning, and the run is ``partial``. ``last_wait`` is
    the last straggler wait's result: when it saw every prediction in place, it is reused.
    """
    params = context["params"]
    keys = ("players_ready", "players_complete", "players_missing")
    if covered(last_wait):
        # The last wait saw every prediction in place; active predictions only grow, so reuse it.
        row = {k: last_wait[k] for k in keys}
    else:
        # After the consolidation: only what reached the predictions table counts (a row staged since is late).
        query = coverage_params(game_day, claim, params, force=parse_flag(params["force"]))
        row = bigquery_hook().query_rows(sql.render("prediction_coverage.sql"), query)[0]
        row = {k: row[k] for k in keys}
    ready, done, missing = (int(row[k]) for k in keys)
    completion = round(100.0 * done / ready, 2) if ready else 100.0
    result = {**row, "completion_pct": completion, "batch_completed_at": datetime.now(UTC).isoformat()}
    summary = f"{done}/{ready} players predicted ({completion}%) after {STRAGGLER_ROUNDS} retry rounds"
    if ready and (done == 0 or completion < float(params["critical_completion_pct"])):
        # Recorded before failing, so the run's row carries the figures.
        context["ti"].xcom_push(key="return_value", value={**result, "incomplete": True})
        raise BatchIncompleteError(f"Prediction batch for {game_day['game_date']} failed: {summary}")
    if missing > int(params["straggler_alert_count"]) or completion < float(params["completion_goal_pct"]):
        warn(context, AlertKind.stragglers_remaining, f"{missing} players still lack a prediction: {summary}")
    return result
