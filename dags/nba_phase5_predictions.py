"""
### NBA Phase 5 predictions

Each game day (the run for D opens at 00:00 Eastern on D): skip work already done, wait for Phase 4's
completion event until 06:00 Pacific (the platform's backup time), gate on Phase 4 readiness in
BigQuery (proceed degraded with 50+ ready players, stop critically below), fan out one prediction
request per ready player (the coordinator's request), retry the stragglers, consolidate what the
workers staged into the predictions table, record the run and alert on problems.

* **Params**: `game_date` (default: the run's game date, Eastern), `force` (regenerate everyone),
  `skip_event_wait` (go straight to the gates), and the waits and thresholds below.
* **One batch per date**: a run that finds another live run of its game date records itself `skipped`
  and publishes nothing (`skip_concurrent_run`).
* **Reruns**: every task is re-entrant. Clear `fan_out_requests` *with its downstream tasks* to publish
  what is still missing (the consolidation after it merges what the workers stage), `retry_stragglers`
  to run the straggler rounds again, `consolidate_predictions` to merge what the workers staged since;
  `record_batch_run` updates the run's one row. A player whose rows wait in the
  batch's staging tables counts as predicted: no round requests him again.
  A request Pub/Sub accepted less than `in_flight_minutes` ago (the publish ledger) is not sent again by
  a retry, a clear or a straggler round (a fan-out killed mid-batch: at most two chunks).
* **Backfills** skip the event wait and record `triggered_by='backfill'`.
* **Phase 6**: a `success` or `partial` batch is announced once on Phase 5's completion topic and
  updates the predictions asset (`hand_off_to_phase6`).
* **SLA**: a run not finished by 10:00 ET on its game date raises a critical alert (a deadline alert).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import CronTriggerTimetable, TriggerRule, dag, task, task_group

from nba_phase5 import config
from nba_phase5.airflow import dag_params, sla
from nba_phase5.airflow.notifications import PipelineAlertNotifier
from nba_phase5.airflow.operators.bigquery_wait import BigQueryWaitOperator
from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator
from nba_phase5.airflow.operators.phase4_event_wait import Phase4EventWaitOperator
from nba_phase5.airflow.operators.phase4_gate import UNAVAILABLE_MESSAGE, Phase4GateNotifier, Phase4GateOperator
from nba_phase5.airflow.tasks import batch, handoff, run_history
from nba_phase5.bigquery import query_params, sql
from nba_phase5.config import TASKS
from nba_phase5.core import alert_kinds
from nba_phase5.core.alert_kinds import AlertKind

HAND_OFF_DOC = f"""Publishes the batch's completion message on `{config.PHASE5_COMPLETE_TOPIC}` (the platform's
envelope, read by its Phase 5→6 orchestrator) and updates the `{config.PREDICTIONS_ASSET_NAME}` asset, once per
batch: a batch already in `{config.HANDOFF_TABLE}` is skipped, so clearing this task (or a dedup rerun) never
announces twice. Skipped, too, when the run did not end `success` or `partial`."""
CONSOLIDATE_DOC = """Merges the batch's staging tables (`nba_predictions._staging_{batch_id}_*`, written by the
workers), and those of dead earlier batches of the date it adopted, into `player_prop_predictions` as the
platform's coordinator did: the newest staged row per key, then only the newest active row per game,
player and system stays active. The tables are deleted after; when the MERGE changed nothing or active
duplicates remain, the task fails and keeps them. Runs after a failed round too. Safe to clear."""
REQUEST_TOPIC = f"{{{{ var.value.get('{config.REQUEST_TOPIC_VARIABLE}', '{config.PREDICTION_REQUESTS_TOPIC}') }}}}"
LINE_TABLE = f"{{{{ var.value.get('{config.LINE_TABLE_VARIABLE}', '') }}}}"


# Each task below delegates to nba_phase5 (the logic, tested there); this file only wires them.


@task.short_circuit(task_id=TASKS.game_day, ignore_downstream_trigger_rules=False)
def resolve_game_day(**context) -> bool:  # type: ignore[no-untyped-def]
    """Resolve the game date (param or run date, Eastern) and claim its batch; an off day ends the run here."""
    return batch.resolve_game_day(context)


@task.branch(task_id=TASKS.batch_status)
def check_batch_status(**context) -> str:  # type: ignore[no-untyped-def]
    """One batch per date, then dedup: a day already complete is skipped at once (unless `force`)."""
    return batch.check_batch_status(context)


@task(task_id=TASKS.readiness_verdict)
def proceed_with_ready_players(readiness: dict, **context) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Fully ready, or degraded with the ready players (a warning alert says so)."""
    return batch.proceed_with_ready_players(readiness, context)


# Also after a failed round (the staged rows are merged, not stranded); never when the fan-out yielded
# or the day was skipped (its upstream is then skipped).
@task(task_id=TASKS.consolidate, doc_md=CONSOLIDATE_DOC, trigger_rule=TriggerRule.NONE_SKIPPED)
def consolidate_predictions(**context) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Merge the batch's staging tables into the predictions table, then delete them (rerun-safe)."""
    return batch.consolidate_predictions(context)


@task(task_id=TASKS.verify)
def verify_completion(last_wait: dict | None, **context) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Completion % after the rounds; a warning alert when too many players still lack a prediction."""
    return batch.verify_completion(context, last_wait)


@task(task_id=TASKS.record, trigger_rule=TriggerRule.ALL_DONE)
def record_batch_run(**context) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    """Finish this run's row in processor_run_history, whatever happened (rerun-safe)."""
    return run_history.record_batch_run(context)


@task(task_id=TASKS.hand_off, outlets=[handoff.predictions_asset_alias()], doc_md=HAND_OFF_DOC)
def hand_off_to_phase6(row: dict | None, **context) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Announce a success or partial batch to Phase 6 once: the completion message and the asset event."""
    return handoff.announce(context, row)


def fan_out(task_id: str, day: dict[str, Any], phase4_event: Any, **kwargs: Any) -> PredictionFanOutOperator:
    """A fan-out of this run's batch: the first one, or a straggler round's republish."""
    return PredictionFanOutOperator(
        task_id=task_id,
        game_date=day["game_date"],
        batch_id=day["batch_id"],
        staged_batches=day["staged_batches"],
        phase4_event=phase4_event,
        force="{{ params.force }}",
        batch_started_at=day["batch_started_at"],
        in_flight_minutes="{{ params.in_flight_minutes }}",
        chunk_size="{{ params.fan_out_chunk_size }}",
        topic=REQUEST_TOPIC,
        line_table=LINE_TABLE,
        **kwargs,
    )


@task_group(group_id=TASKS.readiness_group)
def phase4_readiness(game_date: Any, first_poll: Any) -> None:
    """Wait (deferred) until Phase 4 is ready, gate on it, then proceed fully or degraded."""
    readiness = query_params.readiness(game_date)
    wait_for_phase4_ready = BigQueryWaitOperator(
        task_id=TASKS.readiness_wait,
        sql="phase4_readiness.sql",
        query_params=readiness,
        max_wait_minutes="{{ params.phase4_wait_minutes }}",
        poll_interval_seconds="{{ params.poll_interval_seconds }}",
        # check_batch_status's read of the same row when no event wait came between: a first try reuses it if ready.
        first_poll=first_poll,
        doc_md="Polls Phase 4's run row and ready counts until ready (≥ min_ready_pct or ≥ min_ready_players) "
        "or the wait runs out; a first try after no event wait reuses check_batch_status's ready row.",
    )
    check_phase4_ready = Phase4GateOperator(
        task_id=TASKS.readiness_gate,
        sql="phase4_gate.sql",
        query_params=readiness,
        # The wait's last row: the first try judges it without a query; a retry asks BigQuery again.
        readiness=wait_for_phase4_ready.output,
        deferrable=True,
        # "Not ready" fails at once (no retries); a BigQuery error is retried after 20-40 s, 40-80 s,
        # 80-160 s and 160-180 s (exponential, jittered per try, capped): at most ~8 min in all.
        retries=4,
        retry_delay=timedelta(seconds=20),
        retry_exponential_backoff=2.0,
        max_retry_delay=timedelta(minutes=3),
        on_failure_callback=Phase4GateNotifier(
            not_ready=PipelineAlertNotifier(
                kind=AlertKind.phase4_not_ready, message="{{ phase4_not_ready(ti, params) }}", include_exception=False
            ),
            unavailable=PipelineAlertNotifier(kind=AlertKind.gate_unavailable, message=UNAVAILABLE_MESSAGE),
        ),
        doc_md="Gate: Phase 4 ran and at least degraded_min_players are ready; else critical, nothing published. "
        "The first try judges the wait's last row; a retry queries again. A BigQuery error is retried, and only "
        "an error alert if it persists.",
    )
    verdict = proceed_with_ready_players(wait_for_phase4_ready.output)  # type: ignore[arg-type]  # an XComArg
    wait_for_phase4_ready >> check_phase4_ready >> verdict


@task_group(group_id=TASKS.retry_group)
def retry_stragglers(day: dict[str, Any], phase4_event: Any) -> None:
    """Wait for predictions, republish only the missing players, N rounds, consolidate, then verify."""
    coverage = query_params.templated_prediction_state(day["game_date"], day["batch_started_at"])
    previous, earlier = None, None
    for round_number in range(1, batch.STRAGGLER_ROUNDS + 2):
        wait = BigQueryWaitOperator(
            task_id=TASKS.wait_round(round_number),
            sql="prediction_coverage.sql",
            query_params=coverage,
            max_wait_minutes="{{ params.straggler_wait_minutes }}",
            poll_interval_seconds="{{ params.poll_interval_seconds }}",
            progress_column="players_complete",
            settle_polls="{{ params.straggler_settle_polls }}",
            settle_blocked_by="players_in_flight",
            earlier_result=earlier,
            staged_batches=day["staged_batches"],
            # Right after a publish the workers cannot have answered yet: the first poll waits an interval.
            delay_first_poll=True,
            doc_md="Waits until predictions (consolidated or staged) cover the ready players, the workers go "
            "quiet with nothing in flight, or the wait runs out.",
        )
        if previous is not None:
            previous >> wait
        if round_number > batch.STRAGGLER_ROUNDS:
            wait >> consolidate_predictions() >> verify_completion(wait.output)  # type: ignore[arg-type]
            return
        previous = fan_out(
            TASKS.republish_round(round_number),
            day,
            phase4_event,
            coverage=wait.output,
            doc_md="Republishes only the players whose predictions are still missing and whose requests are "
            "older than the in-flight window (presumed lost).",
        )
        earlier = wait.output


@dag(
    dag_id=config.DAG_ID,
    schedule=CronTriggerTimetable("0 0 * * *", timezone=config.DAG_TIMEZONE),
    # Earliest date a backfill can reach (runs before it get no task instances): the 2024-25 season.
    start_date=pendulum.datetime(2024, 10, 1, tz=config.DAG_TIMEZONE),
    catchup=False,
    max_active_runs=3,
    dagrun_timeout=config.RUN_TIMEOUT,
    # A run that dies without recording itself (timed out, killed) is recorded `failed` and alerts.
    on_failure_callback=run_history.on_run_failure,
    # Predictions by 10:00 ET on the game date, or a critical alert (the plan's SLA).
    deadline=sla.deadline_alerts(),
    template_searchpath=[str(config.include_dir() / "sql")],
    user_defined_macros={**sql.macros(), "phase4_not_ready": batch.phase4_not_ready_message},
    tags=["nba", "phase5", "predictions"],
    doc_md=alert_kinds.with_runbook_link(__doc__),
    default_args={
        "owner": "nba-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": PipelineAlertNotifier(kind=AlertKind.task_failed),
    },
    params=dag_params.trigger_form(),
)
def nba_phase5_predictions() -> None:
    # resolve_game_day pushes the date and when this run's batch began (its first claim on the date).
    game_day: Any = resolve_game_day()
    game_date = game_day["game_date"]
    # The run's date, its batch's first claim, the batch id minted from it, and the batches whose staged
    # rows count: this run's, then the date's dead batches it adopted (XComArgs).
    day = {key: game_day[key] for key in ("game_date", "batch_started_at", "batch_id", "staged_batches")}
    # The branch, and what it read of Phase 4's readiness (an XComArg per key).
    status: Any = check_batch_status()
    game_day >> status
    skip_already_complete = EmptyOperator(
        task_id=TASKS.already_complete, doc_md="Every ready player already had an active prediction."
    )
    skip_concurrent_run = EmptyOperator(
        task_id=TASKS.concurrent_run,
        doc_md="Another live run of this game date holds its batch: this run publishes nothing and is recorded "
        "`skipped`. Once that run ends, a new run (or clearing this one) dedups as usual.",
    )
    wait_for_phase4_event = Phase4EventWaitOperator(
        task_id=TASKS.event,
        game_date=game_date,
        deadline_clock="{{ params.event_deadline }}",
        wait_seconds="{{ params.event_wait_seconds }}",
        skip_wait="{{ params.skip_event_wait }}",
        doc_md=f"Deferrable wait for Phase 4's event; at {config.BACKUP_START} PT the run goes on (the backup path).",
    )
    fan_out_requests = fan_out(
        TASKS.fan_out,
        day,
        wait_for_phase4_event.output,
        check_holder=True,
        pool=config.FAN_OUT.pool,
        # Well inside the in-flight window, so a retry skips every request the killed try had recorded.
        retry_delay=timedelta(seconds=30),
        doc_md="Publishes one request per ready player still missing its prediction and not in flight "
        "(with force: a new generation for everyone), recording each accepted request in the ledger.",
    )
    stragglers = retry_stragglers(day, wait_for_phase4_event.output)
    batch_done = EmptyOperator(
        task_id=TASKS.batch_done,
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        doc_md="Joins the fan-out path and the already-complete path; fails the run when the batch failed.",
    )
    status >> [skip_already_complete, skip_concurrent_run] >> batch_done
    # Phase 4's readiness as check_batch_status read it: the readiness wait's first poll when no event wait came.
    readiness = phase4_readiness(game_date, status[batch.PHASE4_READINESS_KEY])
    status >> wait_for_phase4_event >> readiness >> fan_out_requests >> stragglers >> batch_done
    recorded = record_batch_run()
    [stragglers, skip_already_complete, skip_concurrent_run] >> recorded
    hand_off_to_phase6(recorded)  # type: ignore[arg-type]  # an XComArg: the row at run time


nba_phase5_predictions()
