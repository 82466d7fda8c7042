"""
### NBA Phase 5 predictions

Each game day (the run for D opens at 00:00 Eastern on D): resolve the date and claim its batch, skip
work already done, wait for Phase 4's completion event until 06:00 Pacific (the platform's backup time),
gate on Phase 4 readiness in BigQuery (proceed degraded with 50+ ready players, stop critically below),
fan out one prediction request per ready player (the coordinator's request), retry the stragglers,
consolidate what the workers staged into the predictions table, record the run and alert on problems.

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
from airflow.sdk import CronTriggerTimetable, TaskGroup, TriggerRule, dag, task

from nba_phase5 import config
from nba_phase5.airflow import dag_docs, dag_params, sla
from nba_phase5.airflow.notifications import PipelineAlertNotifier
from nba_phase5.airflow.operators.bigquery_wait import BigQueryWaitOperator
from nba_phase5.airflow.operators.fan_out import PredictionFanOutOperator
from nba_phase5.airflow.operators.phase4_event_wait import Phase4EventWaitOperator
from nba_phase5.airflow.operators.phase4_gate import UNAVAILABLE_MESSAGE, Phase4GateNotifier, Phase4GateOperator
from nba_phase5.airflow.tasks import batch, batch_start, handoff, run_history
from nba_phase5.bigquery import query_params, sql
from nba_phase5.config import TASKS
from nba_phase5.core.alert_kinds import AlertKind, with_runbook_link

REQUEST_TOPIC = f"{{{{ var.value.get('{config.REQUEST_TOPIC_VARIABLE}', '{config.PREDICTION_REQUESTS_TOPIC}') }}}}"
LINE_TABLE = f"{{{{ var.value.get('{config.LINE_TABLE_VARIABLE}', '') }}}}"


# Each task below delegates to nba_phase5.airflow.tasks (the logic, tested there); this file only wires them.


@task(task_id=TASKS.game_day, multiple_outputs=True)
def resolve_game_day(**context) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Resolve the game date (param or run date, Eastern), its games and the date's batches: a read."""
    return batch_start.resolve_game_day(context)


@task(task_id=TASKS.claim, multiple_outputs=True, doc_md=dag_docs.CLAIM_DOC)
def claim_batch(game_day: dict, **context) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Claim the date's batch and record the run `running`; an off day skips it (and the run ends there)."""
    return batch_start.claim_batch(game_day, context)


# Its figures and Phase 4's readiness are keyed XComs: multiple_outputs makes each key an input that reads
# None when the branch did not run (an off day), instead of failing the task that takes it. (A branch ends
# by skipping the paths it did not take, before any return value is pushed.)
@task.branch(task_id=TASKS.batch_status, multiple_outputs=True)
def check_batch_status(game_day: dict, claim: dict, **context) -> str:  # type: ignore[no-untyped-def,type-arg]
    """One batch per date, then dedup: a day already complete is skipped at once (unless `force`)."""
    return batch.check_batch_status(game_day, claim, context)


@task(task_id=TASKS.readiness_verdict)
def proceed_with_ready_players(readiness: dict, game_date: str, **context) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Fully ready, or degraded with the ready players (a warning alert says so)."""
    return batch.proceed_with_ready_players(readiness, game_date, context)


# Also after a failed round (the staged rows are merged, not stranded); never when the fan-out yielded
# or the day was skipped (its upstream is then skipped).
@task(task_id=TASKS.consolidate, doc_md=dag_docs.CONSOLIDATE_DOC, trigger_rule=TriggerRule.NONE_SKIPPED)
def consolidate_predictions(game_date: str, claim: dict) -> dict:  # type: ignore[type-arg]
    """Merge the batch's staging tables into the predictions table, then delete them (rerun-safe)."""
    return batch.consolidate_predictions(game_date, claim)


@task(task_id=TASKS.verify)
def verify_completion(last_wait: dict | None, game_day: dict, claim: dict, **context) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Completion % after the rounds; a warning alert when too many players still lack a prediction."""
    return batch.verify_completion(last_wait, game_day, claim, context)


@task(task_id=TASKS.record, trigger_rule=TriggerRule.ALL_DONE)
def record_batch_run(results: dict, **context) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    """Finish this run's row in processor_run_history from what its tasks returned, whatever happened."""
    return run_history.record_batch_run(run_history.run_facts(context, results), context)


@task(task_id=TASKS.hand_off, outlets=[handoff.predictions_asset_alias()], doc_md=dag_docs.HAND_OFF_DOC)
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


def phase4_readiness(game_date: Any, first_poll: Any) -> tuple[TaskGroup, dict[str, Any]]:
    """Wait (deferred) until Phase 4 is ready, gate on it, proceed fully or degraded; the group, its results."""
    readiness = query_params.readiness(game_date)
    with TaskGroup(
        group_id=TASKS.readiness_group, tooltip="Wait for Phase 4 to be ready, gate on it, proceed fully or degraded"
    ) as group:
        wait_for_phase4_ready = BigQueryWaitOperator(
            task_id=TASKS.readiness_wait,
            sql="phase4_readiness.sql",
            query_params=readiness,
            max_wait_minutes="{{ params.phase4_wait_minutes }}",
            poll_interval_seconds="{{ params.poll_interval_seconds }}",
            # check_batch_status's read of the same row when no event wait came between: a first try reuses
            # it if ready.
            first_poll=first_poll,
            doc_md=dag_docs.READINESS_WAIT_DOC,
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
                    kind=AlertKind.phase4_not_ready,
                    message="{{ phase4_not_ready(ti, params) }}",
                    include_exception=False,
                ),
                unavailable=PipelineAlertNotifier(kind=AlertKind.gate_unavailable, message=UNAVAILABLE_MESSAGE),
            ),
            doc_md=dag_docs.READINESS_GATE_DOC,
        )
        verdict = proceed_with_ready_players(wait_for_phase4_ready.output, game_date)  # type: ignore[arg-type]
        wait_for_phase4_ready >> check_phase4_ready >> verdict
    return group, {"readiness": wait_for_phase4_ready.output, "verdict": verdict}


def retry_stragglers(
    day: dict[str, Any], game_day: Any, claim: Any, phase4_event: Any
) -> tuple[TaskGroup, dict[str, Any]]:
    """Republish only the missing players, N rounds, consolidate, verify; the group and each step's result."""
    coverage = query_params.templated_prediction_state(day["game_date"], day["batch_started_at"])
    previous, earlier, rounds = None, None, []
    with TaskGroup(
        group_id=TASKS.retry_group, tooltip="Republish only the missing players, N rounds, then consolidate and verify"
    ) as group:
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
                doc_md=dag_docs.STRAGGLER_WAIT_DOC,
            )
            if previous is not None:
                previous >> wait
            if round_number > batch.STRAGGLER_ROUNDS:
                break
            previous = fan_out(
                TASKS.republish_round(round_number),
                day,
                phase4_event,
                coverage=wait.output,
                doc_md=dag_docs.REPUBLISH_DOC,
            )
            rounds.append(previous.output)
            earlier = wait.output
        consolidated = consolidate_predictions(day["game_date"], claim)  # type: ignore[arg-type]
        verified = verify_completion(wait.output, game_day, claim)  # type: ignore[arg-type]
        wait >> consolidated >> verified
    return group, {"rounds": rounds, "consolidation": consolidated, "verify": verified}


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
    doc_md=with_runbook_link(__doc__),
    default_args={
        "owner": "nba-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": PipelineAlertNotifier(kind=AlertKind.task_failed),
    },
    params=dag_params.trigger_form(),
)
def nba_phase5_predictions() -> None:
    game_day: Any = resolve_game_day()
    claim: Any = claim_batch(game_day)
    # The run's date, its batch's first claim, the batch id minted from it, and the batches whose staged
    # rows count: this run's, then the date's dead batches it adopted (XComArgs).
    day = {
        "game_date": game_day["game_date"],
        **{key: claim[key] for key in ("batch_started_at", "batch_id", "staged_batches")},
    }
    # The branch; what it found, and what it read of Phase 4's readiness (XComArgs by key).
    status: Any = check_batch_status(game_day, claim)
    already_complete = EmptyOperator(task_id=TASKS.already_complete, doc_md=dag_docs.ALREADY_COMPLETE_DOC)
    concurrent_run = EmptyOperator(task_id=TASKS.concurrent_run, doc_md=dag_docs.CONCURRENT_RUN_DOC)
    wait_for_phase4_event = Phase4EventWaitOperator(
        task_id=TASKS.event,
        game_date=day["game_date"],
        deadline_clock="{{ params.event_deadline }}",
        wait_seconds="{{ params.event_wait_seconds }}",
        skip_wait="{{ params.skip_event_wait }}",
        doc_md=dag_docs.EVENT_WAIT_DOC,
    )
    fan_out_requests = fan_out(
        TASKS.fan_out,
        day,
        wait_for_phase4_event.output,
        check_holder=True,
        pool=config.FAN_OUT.pool,
        # Well inside the in-flight window, so a retry skips every request the killed try had recorded.
        retry_delay=timedelta(seconds=30),
        doc_md=dag_docs.FAN_OUT_DOC,
    )
    # Phase 4's readiness as check_batch_status read it: the readiness wait's first poll when no event wait came.
    readiness_group, readiness = phase4_readiness(day["game_date"], status[batch.PHASE4_READINESS_KEY])
    stragglers_group, stragglers = retry_stragglers(day, game_day, claim, wait_for_phase4_event.output)
    batch_done = EmptyOperator(
        task_id=TASKS.batch_done,
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        doc_md=dag_docs.BATCH_DONE_DOC,
    )
    status >> wait_for_phase4_event >> readiness_group >> fan_out_requests >> stragglers_group >> batch_done
    status >> [already_complete, concurrent_run] >> batch_done
    # Every task's result, as the run's facts: the recorder pulls nothing (the edges are these inputs).
    recorded = record_batch_run(
        {
            "game_day": game_day,
            "claim": claim,
            "batch_status": status[batch.BATCH_STATUS_KEY],
            "event": wait_for_phase4_event.output,
            "readiness": readiness["readiness"],
            "verdict": readiness["verdict"],
            "fan_out": fan_out_requests.output,
            **stragglers,
        }
    )
    [stragglers_group, already_complete, concurrent_run] >> recorded
    hand_off_to_phase6(recorded)  # type: ignore[arg-type]  # an XComArg: the row at run time


nba_phase5_predictions()
