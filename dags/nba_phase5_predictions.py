"""
### NBA Phase 5 predictions

Each game day: wait for Phase 4's completion event (the schedule is the backup), gate on Phase 4
readiness in BigQuery, skip work already done, fan out one prediction request per ready player, retry
the stragglers, record the run and alert on problems.

* **Params**: `game_date` (default: the run's game date, Eastern), `force` (republish everything),
  `skip_event_wait` (go straight to the gates), `prop_types`, and the waits and thresholds below.
* **Reruns**: every task is re-entrant. Clear `fan_out_requests` to publish what is still missing,
  `retry_stragglers` to run the straggler rounds again; `record_batch_run` updates the run's one row.
* **Backfills** skip the event wait and record `triggered_by='backfill'`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.google.cloud.operators.bigquery import BigQueryCheckOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import CronTriggerTimetable, Param, TriggerRule, dag, task, task_group

from nba_phase5 import batch, config
from nba_phase5.config import DEFAULT_THRESHOLDS as THRESHOLDS
from nba_phase5.notifications import PipelineAlertNotifier
from nba_phase5.operators.fan_out import PredictionFanOutOperator
from nba_phase5.sensors.bigquery_poll import BigQueryPollSensor
from nba_phase5.sensors.phase4_event import Phase4EventSensor

GAME_DATE = "{{ ti.xcom_pull(task_ids='resolve_game_day', key='game_date') }}"
REQUEST_PARAMS = {
    "game_date": {"type": "DATE", "value": GAME_DATE},
    "prop_types": {"type": "ARRAY<STRING>", "value": "{{ params.prop_types | join(',') }}"},
}
READINESS_PARAMS = {
    "game_date": {"type": "DATE", "value": GAME_DATE},
    "min_ready_players": {"type": "INT64", "value": "{{ params.min_ready_players }}"},
    "min_ready_pct": {"type": "FLOAT64", "value": "{{ params.min_ready_pct }}"},
}


@dag(
    dag_id=config.DAG_ID,
    schedule=CronTriggerTimetable("0 4 * * *", timezone=config.DAG_TIMEZONE),
    # Earliest date a backfill can reach (runs before it get no task instances): the 2024-25 season.
    start_date=pendulum.datetime(2024, 10, 1, tz=config.DAG_TIMEZONE),
    catchup=False,
    max_active_runs=3,
    dagrun_timeout=timedelta(hours=6),
    template_searchpath=[str(config.include_dir() / "sql")],
    tags=["nba", "phase5", "predictions"],
    doc_md=__doc__,
    default_args={
        "owner": "nba-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": PipelineAlertNotifier(severity="error"),
    },
    params={
        "game_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Game date",
            description="YYYY-MM-DD. Empty: the run's game date in Eastern time.",
        ),
        "force": Param(False, type="boolean", description="Request every ready player, even those with predictions."),
        "skip_event_wait": Param(False, type="boolean", description="Do not wait for Phase 4's Pub/Sub event."),
        "prop_types": Param(
            ["points"],
            type="array",
            minItems=1,
            uniqueItems=True,
            items={"type": "string", "enum": list(config.PROP_TYPES)},
            description="Prop types to request per player.",
        ),
        "event_deadline": Param(
            "06:00",
            type="string",
            pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
            description="Eastern time on the game date when the event wait ends.",
        ),
        "event_wait_seconds": Param(
            None, type=["null", "integer"], minimum=0, description="Cap the event wait (manual runs and tests)."
        ),
        "phase4_wait_minutes": Param(
            THRESHOLDS.phase4_wait_minutes, type="number", minimum=0, description="How long the gates wait for Phase 4."
        ),
        "straggler_wait_minutes": Param(
            10, type="number", minimum=0, description="How long each straggler round waits for predictions."
        ),
        "straggler_settle_polls": Param(
            3, type="integer", minimum=0, description="End a straggler wait after this many polls without progress."
        ),
        "poll_interval_seconds": Param(60, type="number", minimum=0.5, description="BigQuery poll interval."),
        "min_ready_pct": Param(THRESHOLDS.min_ready_pct, type="number", minimum=0, maximum=100),
        "min_ready_players": Param(THRESHOLDS.min_ready_players, type="integer", minimum=0),
        "straggler_alert_count": Param(
            THRESHOLDS.straggler_alert_count,
            type="integer",
            minimum=0,
            description="Warn when more players than this still lack a prediction.",
        ),
        "completion_goal_pct": Param(THRESHOLDS.completion_goal_pct, type="number", minimum=0, maximum=100),
    },
)
def nba_phase5_predictions() -> None:
    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def resolve_game_day(**context) -> bool:  # type: ignore[no-untyped-def]
        """Resolve the game date (param or run date, Eastern); an off day ends the run here."""
        return batch.resolve_game_day(context)

    wait_for_phase4_event = Phase4EventSensor(
        task_id="wait_for_phase4_event",
        game_date=GAME_DATE,
        deadline_clock="{{ params.event_deadline }}",
        wait_seconds="{{ params.event_wait_seconds }}",
        skip_wait="{{ params.skip_event_wait }}",
        doc_md="Deferrable wait for Phase 4's event; at the deadline the run goes on (scheduled backup path).",
    )

    @task_group(group_id="phase4_readiness")
    def phase4_readiness() -> None:
        """Wait (deferred) until Phase 4 looks ready, then gate on it; a failed gate is a critical alert."""
        wait_for_phase4_ready = BigQueryPollSensor(
            task_id="wait_for_phase4_ready",
            sql="phase4_readiness.sql",
            query_params=READINESS_PARAMS,
            timeout_minutes="{{ params.phase4_wait_minutes }}",
            poll_interval_seconds="{{ params.poll_interval_seconds }}",
            doc_md="Polls Phase 4's run row and ready counts until ready or the wait runs out.",
        )
        check_phase4_ready = BigQueryCheckOperator(
            task_id="check_phase4_ready",
            sql="phase4_gate.sql",
            query_params=[
                {"name": name, "parameterType": {"type": p["type"]}, "parameterValue": {"value": p["value"]}}
                for name, p in READINESS_PARAMS.items()
            ],
            use_legacy_sql=False,
            deferrable=True,
            retries=0,
            on_failure_callback=PipelineAlertNotifier(
                severity="critical", message=f"Phase 4 is not ready for {GAME_DATE}: no predictions will be made"
            ),
            doc_md="Gate: Phase 4 succeeded, ≥ min_ready_pct % and ≥ min_ready_players production-ready.",
        )
        wait_for_phase4_ready >> check_phase4_ready

    @task.branch
    def check_batch_status(**context) -> str:  # type: ignore[no-untyped-def]
        """Dedup: skip a batch that is already complete (unless `force`); else fan out to what is missing."""
        return batch.check_batch_status(context)

    fan_out_requests = PredictionFanOutOperator(
        task_id="fan_out_requests",
        game_date=GAME_DATE,
        prop_types="{{ params.prop_types | join(',') }}",
        force="{{ params.force }}",
        pool="prediction_fanout",
        doc_md="Publishes one request per ready player and prop type still missing a prediction.",
    )
    skip_already_complete = EmptyOperator(
        task_id="skip_already_complete", doc_md="The day's batch was already complete."
    )

    @task_group(group_id="retry_stragglers")
    def retry_stragglers() -> None:
        """Wait for predictions, republish only the missing requests, N rounds, then verify."""
        previous = None
        for round_number in range(1, batch.STRAGGLER_ROUNDS + 2):
            wait = BigQueryPollSensor(
                task_id=f"wait_for_predictions_{round_number}",
                sql="prediction_coverage.sql",
                query_params=REQUEST_PARAMS,
                timeout_minutes="{{ params.straggler_wait_minutes }}",
                poll_interval_seconds="{{ params.poll_interval_seconds }}",
                progress_column="requests_done",
                settle_polls="{{ params.straggler_settle_polls }}",
                covered_by=batch.wait_task(round_number - 1) if round_number > 1 else None,
                doc_md="Waits until predictions cover the requests, the workers go quiet, or the wait runs out.",
            )
            if previous is not None:
                previous >> wait
            if round_number > batch.STRAGGLER_ROUNDS:
                wait >> verify_completion()
                break
            republish = PredictionFanOutOperator(
                task_id=f"republish_round_{round_number}",
                game_date=GAME_DATE,
                prop_types="{{ params.prop_types | join(',') }}",
                covered_by=batch.wait_task(round_number),
                doc_md="Republishes only the requests whose predictions are still missing.",
            )
            wait >> republish
            previous = republish

    @task
    def verify_completion(**context) -> dict:  # type: ignore[no-untyped-def,type-arg]
        """Completion % after the rounds; a warning alert when too many players still lack a prediction."""
        return batch.verify_completion(context)

    batch_done = EmptyOperator(
        task_id="batch_done",
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        doc_md="Joins the fan-out path and the already-complete path; fails the run when the batch failed.",
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def record_batch_run(**context) -> dict:  # type: ignore[no-untyped-def,type-arg]
        """MERGE this run's row into processor_run_history, whatever happened (rerun-safe)."""
        return batch.record_batch_run(context)

    game_day = resolve_game_day()
    status = check_batch_status()
    stragglers = retry_stragglers()
    game_day >> wait_for_phase4_event >> phase4_readiness() >> status
    status >> fan_out_requests >> stragglers >> batch_done
    status >> skip_already_complete >> batch_done
    [stragglers, skip_already_complete] >> record_batch_run()


nba_phase5_predictions()
