"""What the DAG's Python tasks do: resolve the game day, judge the batch, weigh readiness, verify.

Each function takes the Airflow context and is re-entrant: clearing and rerunning a task recomputes
its answer from BigQuery and XCom, never from state the previous try left behind. The run-history
row is built in :mod:`nba_phase5.airflow.tasks.run_history`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from nba_phase5 import config
from nba_phase5.bigquery import query_params, sql
from nba_phase5.core.alert_kinds import AlertKind
from nba_phase5.core.game_day import game_date_for_run

log = logging.getLogger(__name__)

# The full ids (``group.task``) of the tasks this module's functions read or branch to (config.TASKS).
TASKS = config.TASKS
GAME_DAY = TASKS.game_day
BATCH_STATUS = TASKS.batch_status
EVENT = TASKS.event
READINESS_WAIT = TASKS.in_group(TASKS.readiness_group, TASKS.readiness_wait)
READINESS_GATE = TASKS.in_group(TASKS.readiness_group, TASKS.readiness_gate)
READINESS_VERDICT = TASKS.in_group(TASKS.readiness_group, TASKS.readiness_verdict)
FAN_OUT = TASKS.fan_out
ALREADY_COMPLETE = TASKS.already_complete
CONCURRENT = TASKS.concurrent_run
VERIFY = TASKS.in_group(TASKS.retry_group, TASKS.verify)
CONSOLIDATE = TASKS.in_group(TASKS.retry_group, TASKS.consolidate)
STRAGGLER_ROUNDS = config.WAIT_LIMITS.straggler_rounds
#: The XCom key of the batches whose staged rows a run counts and consolidates: its own, then adopted ones.
STAGED_BATCHES_KEY = "staged_batches"
#: The XCom key of Phase 4's readiness as check_batch_status read it: the readiness wait's first poll, or {}.
PHASE4_READINESS_KEY = "phase4_readiness"


def republish_task(round_number: int) -> str:
    return TASKS.in_group(TASKS.retry_group, TASKS.republish_round(round_number))


def wait_task(round_number: int) -> str:
    return TASKS.in_group(TASKS.retry_group, TASKS.wait_round(round_number))


def bq_hook() -> Any:
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

    return Phase5BigQueryHook(gcp_conn_id=config.GCP_CONN_ID)


def game_date(context: Any) -> str:
    value: str = context["ti"].xcom_pull(task_ids=GAME_DAY, key="game_date")
    return value


def batch_started_at(context: Any) -> str:
    """When this run first claimed its date (kept across clears): a forced batch's generation begins here."""
    value: str = context["ti"].xcom_pull(task_ids=GAME_DAY, key="batch_started_at")
    return value


def batch_id(context: Any) -> str | None:
    """This run's batch id (``batch_{date}_{epoch}`` of its first claim), once it has claimed its date."""
    value: str | None = context["ti"].xcom_pull(task_ids=GAME_DAY, key="batch_id")
    return value


def staged_batches(context: Any) -> list[str]:
    """This run's batch and the dead batches of its date it adopted (``resolve_game_day`` decides)."""
    value = context["ti"].xcom_pull(task_ids=GAME_DAY, key=STAGED_BATCHES_KEY)
    own = batch_id(context)
    return list(value) if value else ([own] if own else [])


def coverage_params(context: Any, *, force: bool) -> dict[str, Any]:
    """:func:`nba_phase5.bigquery.query_params.prediction_state` for this run."""
    return query_params.prediction_state(
        game_date(context),
        force=force,
        batch_started_at=batch_started_at(context),
        in_flight_seconds=query_params.in_flight_seconds(context["params"]["in_flight_minutes"]),
    )


def resolve_game_day(context: Any) -> bool:
    """Push the run's game date; False (short-circuit) on an off day.

    No game on the date but games in the weeks around it: an off day. No games at all around it: the
    schedule itself is missing (an outage upstream), so the run warns and lets the Phase 4 gates decide
    instead of ending as a silent off day. One query (``game_day.sql``) answers that and brings the
    date's batches, which the claim needs: an off day ends before it claims anything.
    """
    from nba_phase5.airflow.tasks import run_history

    params = context["params"]
    dag_run = context["dag_run"]
    run_time = context.get("logical_date") or dag_run.run_after
    day = game_date_for_run(run_time, params.get("game_date"))
    ti = context["ti"]
    ti.xcom_push(key="game_date", value=day.isoformat())
    started = datetime.now(UTC).isoformat()
    ti.xcom_push(key="started_at", value=started)
    hook = bq_hook()
    row = hook.query_rows(sql.render("game_day.sql"), {"game_date": day})[0]
    games, around = int(row["games"]), int(row["games_around"])
    ti.xcom_push(key="games", value=games)
    ti.xcom_push(key="schedule_outage", value=around == 0)
    if around == 0:
        from nba_phase5.airflow.notifications import warn

        warn(
            context,
            AlertKind.schedule_outage,
            f"{config.SCHEDULE_TABLE} has no games within 14 days of {day}: cannot tell an off day from a "
            "schedule outage, so the Phase 4 gates decide",
        )
    elif not games:
        log.info("No games on %s: nothing to predict, the run ends here.", day)
        return False
    log.info("Game date %s: %d games scheduled", day, games)
    claim_batch(context, hook, day.isoformat(), started, list(row["batches"] or []))
    run_history.record(context, running=True)
    return True


def claim_batch(context: Any, hook: Any, day: str, started: str, batches: list[dict[str, Any]]) -> None:
    """Claim ``day``'s batch for this run and push when this run's batch began (its first claim) and its id.

    A first try has made no earlier claim, so its batch begins now. A retry or a clear (try 2 and later)
    finds its first claim among ``batches`` (the date's claims and batches, ``game_day.sql``, read before
    this try's claim): a cleared run keeps its forced generation. No query of its own.
    """
    from nba_phase5.airflow.batch_claims import adoptable_batches, claim_for_run, first_claim
    from nba_phase5.core.staging import mint_batch_id

    claim_for_run(context, hook.get_client(project_id=hook.project_id), day, started)
    first = started if context["ti"].try_number == 1 else first_claim(batches, context["run_id"]) or started
    context["ti"].xcom_push(key="batch_started_at", value=first)
    # The coordinator's batch id, from the first claim: a cleared run keeps its batch and staging tables.
    own = mint_batch_id(day, datetime.fromisoformat(first))
    context["ti"].xcom_push(key="batch_id", value=own)
    # Dead batches of the date whose staged rows were never consolidated: this batch adopts them.
    window = query_params.in_flight_seconds(context["params"]["in_flight_minutes"])
    adopted = adoptable_batches(context, day, batches, in_flight_seconds=window, now=datetime.now(UTC))
    context["ti"].xcom_push(key=STAGED_BATCHES_KEY, value=[own, *adopted])


def check_batch_status(context: Any) -> str:
    """Branch, before any wait: yield to another live run of the date; skip a complete day unless ``force``.

    The date's claims are read here, on every try (a cleared run must judge the holder by the claims
    as they are now, as every other reader does), in one job with the dedup coverage (``batch_status.sql``),
    after this run's claim landed: resolve_game_day's, or the new one of a run cleared since. The same job
    reads Phase 4's readiness for the readiness wait (:func:`push_phase4_readiness`).
    """
    from nba_phase5.airflow.batch_claims import claim_again_if_cleared, holder_among

    day = game_date(context)
    force = bool(context["params"]["force"])
    claim_again_if_cleared(context, day)
    # Dedup judges existing predictions of any batch: in-flight requests and generations do not matter here.
    params = {**coverage_params(context, force=False), **query_params.readiness(day, context["params"])}
    row = bq_hook().query_rows(sql.render("batch_status.sql"), params)[0]
    push_phase4_readiness(context, row.pop("phase4"))
    held_by = holder_among(context, day, list(row.pop("claims") or []))
    if held_by:
        context["ti"].xcom_push(key="batch_status", value={"state": "held", "force": force, "held_by": held_by.run_id})
        return CONCURRENT
    ready, complete = int(row["players_ready"]), int(row["players_complete"])
    if row["done"]:
        state = "fully_complete"
    elif complete:
        state = "partially_complete"
    else:
        state = "not_started"
    context["ti"].xcom_push(key="batch_status", value={"state": state, "force": force, **row})
    log.info("Batch status %s: %d/%d players complete (force=%s)", state, complete, ready, force)
    if state == "fully_complete" and not force:
        return ALREADY_COMPLETE
    return EVENT


def push_phase4_readiness(context: Any, phase4: dict[str, Any] | None) -> None:
    """Push Phase 4's readiness row for the readiness wait's first poll, when no event wait comes between.

    Pushed on every path, so the wait's XComArg always resolves (a pushed ``None`` reads as missing): ``{}``
    when the run waits for the event, as the row would be hours old by the time the wait runs.
    """
    from nba_phase5.airflow.operators.bigquery_wait import plain_row
    from nba_phase5.airflow.operators.phase4_event_wait import skipped_wait

    skipped = skipped_wait(context["dag_run"].run_type, context["params"]["skip_event_wait"])
    value = plain_row(phase4) if skipped and phase4 else {}
    context["ti"].xcom_push(key=PHASE4_READINESS_KEY, value=value)


def readiness_words(row: dict[str, Any] | None, day: str, degraded_min_players: int) -> str:
    """Why Phase 4 is not ready, in words (the critical alert's text)."""
    if not row:
        return f"Phase 4 readiness for {day} could not be read"
    if not row.get("phase4_ran"):
        return f"{config.PHASE4_PROCESSOR} has not run for {day}"
    ready, total = int(row.get("players_ready") or 0), int(row.get("players_total") or 0)
    if not total:
        return f"No feature records found for {day} in {config.FEATURE_STORE_TABLE}"
    return (
        f"{ready}/{total} players ready ({100.0 * ready / total:.1f} %) for {day}, "
        f"fewer than the {degraded_min_players} needed to proceed"
    )


def phase4_not_ready_message(ti: Any, params: Any) -> str:
    """The gate's critical alert (a template macro): what the last readiness poll saw, in words."""
    row = ti.xcom_pull(task_ids=READINESS_WAIT)
    day = ti.xcom_pull(task_ids=GAME_DAY, key="game_date")
    words = readiness_words(row, day, int(params["degraded_min_players"]))
    return f"Phase 4 is not ready: {words}. No predictions will be made."


def proceed_with_ready_players(readiness: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    """After the gate passed: full readiness, or degraded (a warning) with the players that are ready."""
    row = dict(readiness or {})
    degraded = not row.get("done")
    row["degraded"] = degraded
    if degraded:
        from nba_phase5.airflow.notifications import warn

        ready, total = int(row.get("players_ready") or 0), int(row.get("players_total") or 0)
        pct = 100.0 * ready / total if total else 0.0
        warn(
            context,
            AlertKind.phase4_degraded,
            f"Phase 4 not fully ready for {game_date(context)} after {context['params']['phase4_wait_minutes']} "
            f"min: proceeding with {ready}/{total} ready ({pct:.1f} %)",
        )
    return row


def consolidate_predictions(context: Any) -> dict[str, Any]:
    """Merge this run's staging tables into the predictions table and delete them (rerun-safe).

    A run that never claimed a batch (or whose workers staged nothing) has nothing to merge.
    """
    day, batch = game_date(context), batch_id(context)
    if not batch:
        log.info("Run has no batch id: nothing to consolidate")
        return {"batch_id": None, "staging_tables": 0, "rows_affected": 0, "tables_deleted": 0}
    adopted = [other for other in staged_batches(context) if other != batch]
    result: dict[str, Any] = bq_hook().consolidate(day, batch, adopted).to_dict()
    return {**result, "adopted_batches": adopted}


class BatchIncompleteError(AirflowFailException):
    """The batch ended far from complete: the run fails at once (no retry) and the alert is critical."""

    alert_kind = AlertKind.batch_incomplete

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.alert_message = message


def verify_completion(context: Any, last_wait: dict[str, Any] | None) -> dict[str, Any]:
    """Final coverage after the straggler rounds, judged loudly.

    No prediction at all, or completion under ``critical_completion_pct``: critical, the run fails
    (a worker outage must not look like a green day). Under the goal, or more than
    ``straggler_alert_count`` players missing: a warning, and the run is ``partial``. ``last_wait`` is
    the last straggler wait's result: when it saw every prediction in place, it is reused.
    """
    from nba_phase5.airflow.notifications import warn
    from nba_phase5.airflow.operators.bigquery_wait import covered

    params = context["params"]
    keys = ("players_ready", "players_complete", "players_missing")
    if covered(last_wait):
        # The last wait saw every prediction in place; active predictions only grow, so reuse it.
        row = {k: last_wait[k] for k in keys}
    else:
        # After the consolidation: only what reached the predictions table counts (a row staged since is late).
        query = sql.render("prediction_coverage.sql")
        row = bq_hook().query_rows(query, coverage_params(context, force=bool(params["force"])))[0]
        row = {k: row[k] for k in keys}
    ready, done, missing = (int(row[k]) for k in keys)
    completion = round(100.0 * done / ready, 2) if ready else 100.0
    result = {**row, "completion_pct": completion, "batch_completed_at": datetime.now(UTC).isoformat()}
    summary = f"{done}/{ready} players predicted ({completion}%) after {STRAGGLER_ROUNDS} retry rounds"
    if ready and (done == 0 or completion < float(params["critical_completion_pct"])):
        # Recorded before failing, so the run's row carries the figures.
        context["ti"].xcom_push(key="return_value", value={**result, "incomplete": True})
        raise BatchIncompleteError(f"Prediction batch for {game_date(context)} failed: {summary}")
    if missing > int(params["straggler_alert_count"]) or completion < float(params["completion_goal_pct"]):
        warn(context, AlertKind.stragglers_remaining, f"{missing} players still lack a prediction: {summary}")
    return result
