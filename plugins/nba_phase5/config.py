"""Names and defaults shared by the DAG, the CLI and Phase 4's publisher.

The names are a contract with Phase 4, the prediction workers and outside tests: change them only
together with those.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

DAG_ID = "nba_phase5_predictions"
# NBA game dates are Eastern: the run for game date D opens at 00:00 Eastern on D.
DAG_TIMEZONE = "America/New_York"
# The platform's backup schedule is Pacific (docs/platform.md §2): /start at 06:00 PT, retries 06:15 and 06:30 PT.
BACKUP_TIMEZONE = "America/Los_Angeles"
BACKUP_START = "06:00"


@dataclass(frozen=True)
class WaitLimits:
    """The most a run may wait, per wait param; the run's timeout is derived from them."""

    #: 00:00 ET → 06:00 PT: the event window of the run for D, 9 h (10 h on the night daylight saving
    #: time ends: 00:00 EDT → 06:00 PST). No event wait is ever longer.
    event_wait_seconds: int = 10 * 3600
    phase4_wait_minutes: int = 60
    straggler_wait_minutes: int = 30
    poll_interval_seconds: int = 600
    straggler_rounds: int = 2

    @property
    def run_timeout(self) -> timedelta:
        """Every wait at its maximum (the event window, readiness, one wait per round and the last) + 1 h."""
        waits = self.phase4_wait_minutes + (self.straggler_rounds + 1) * self.straggler_wait_minutes
        return timedelta(seconds=self.event_wait_seconds, minutes=waits) + timedelta(hours=1)


WAIT_LIMITS = WaitLimits()
RUN_TIMEOUT = WAIT_LIMITS.run_timeout
# The plan's SLA: predictions for D by 10:00 Eastern on D (the platform's 07:00 PT status check). The
# run for D ticks at 00:00 Eastern on D, so the deadline is 10 h of Eastern wall clock after its logical
# date: 10:00 ET on D every night, DST included (sla.py).
SLA_AFTER_RUN_START = timedelta(hours=10)
#: "off" leaves the deadline alert out of the DAG: only for runs through `airflow dags test` (sla.py).
DEADLINE_ALERTS_ENV = "NBA_PHASE5_DEADLINE_ALERTS"

PHASE4_COMPLETE_TOPIC = "nba-phase4-precompute-complete"
PHASE5_TRIGGER_SUBSCRIPTION = "nba-phase5-trigger-sub"
# The production workers' topic (the coordinator's PREDICTION_REQUEST_TOPIC); they receive it by push.
PREDICTION_REQUESTS_TOPIC = "prediction-request-prod"
# Local only: the stand-in worker pulls from this subscription (production pushes to the workers).
PREDICTION_REQUESTS_SUBSCRIPTION = "prediction-request-prod-local-worker"
# The requests' dead-letter topic (docs/platform.md §7.1): the workers' subscription moves a request there
# after 5 delivery attempts answered 500, locally as in production (the stand-in worker only nacks).
PREDICTION_REQUESTS_DLQ_TOPIC = "prediction-request-dlq"
# Phase 5's completion topic (nba-phase{N}-{content}-complete), read by the platform's Phase 5→6
# orchestrator; the message is the platform's completion envelope (docs/platform.md §9.1).
PHASE5_COMPLETE_TOPIC = "nba-phase5-predictions-complete"
#: The Airflow asset a finished batch updates: an Airflow-scheduled Phase 6 DAG runs on it.
PREDICTIONS_ASSET_NAME = "nba_phase5_predictions"
# Locally only (emulators): a pull subscription standing in for the platform's Phase 5→6 orchestrator.
PHASE5_COMPLETE_LOCAL_SUBSCRIPTION = "nba-phase5-predictions-complete-local"
PREDICTION_REQUESTS_MAX_DELIVERY_ATTEMPTS = 5
# Local only: a pull subscription on the dead-letter topic, to inspect what was dead-lettered.
PREDICTION_REQUESTS_DLQ_SUBSCRIPTION = "prediction-request-dlq-local"
# The workers publish one prediction-ready message per request they finished (docs/platform.md §7):
# ``{player_lookup, game_date, predictions_generated, batch_id, correlation_id, timestamp, worker_instance}``.
PREDICTION_READY_TOPIC = "prediction-ready-prod"
# Local only: a pull subscription on it, so tests and `make run` can read what the stand-in worker reported.
PREDICTION_READY_LOCAL_SUBSCRIPTION = "prediction-ready-prod-local"


@dataclass(frozen=True)
class Tables:
    """Every BigQuery table the package reads or writes, as ``dataset.table`` (the SQL in ``include/sql``
    names them as ``{{ tables.<field> }}``; :mod:`nba_phase5.bigquery.sql` and the DAG's macros render them)."""

    #: The platform's shared run history (docs/platform.md §4): Phase 4's row is read, this DAG's is merged.
    run_history: str = "nba_reference.processor_run_history"
    #: The platform's alert rows (one per alert, whichever channels delivered it).
    alerts: str = "nba_reference.pipeline_alerts"
    #: Phase 4's output: one row per player and date, ``is_production_ready`` says who can be predicted.
    feature_store: str = "nba_predictions.ml_feature_store_v2"
    #: The workers' output: one active prediction per player, date and system.
    predictions: str = "nba_predictions.player_prop_predictions"
    #: The NBA schedule: an off day has no games on the date.
    schedule: str = "nba_raw.nbac_schedule"
    #: This package's own durable inbox of Phase 4 events (see include/schemas).
    event_inbox: str = "nba_reference.phase5_event_inbox"
    #: This package's own record of the runs that claimed a date's batch.
    batch_claims: str = "nba_reference.phase5_batch_claims"
    #: This package's own publish ledger: every request Pub/Sub accepted.
    request_ledger: str = "nba_reference.phase5_request_ledger"
    #: This package's own: one row per batch announced to Phase 6 (a rerun or a clear never announces twice).
    handoffs: str = "nba_reference.phase5_handoffs"


#: Sandboxes only (the system test, tests/system/): appended to every dataset name, so ``_st_1a2b`` reads and
#: writes ``nba_reference_st_1a2b.processor_run_history``. Read once, at import; unset (every deployment) it
#: leaves each name the platform's.
DATASET_SUFFIX_ENV = "NBA_PHASE5_DATASET_SUFFIX"
DATASET_SUFFIX = os.environ.get(DATASET_SUFFIX_ENV, "").strip()
if not re.fullmatch(r"\w{0,64}", DATASET_SUFFIX, re.ASCII):  # it is rendered into SQL as part of a name
    raise ValueError(f"{DATASET_SUFFIX_ENV} must be at most 64 letters, digits or _, got {DATASET_SUFFIX[:80]!r}")


def sandboxed(name: str) -> str:
    """``dataset`` or ``dataset.table`` with :data:`DATASET_SUFFIX` on the dataset."""
    dataset, dot, table = name.partition(".")
    return f"{dataset}{DATASET_SUFFIX}{dot}{table}"


def unsandboxed(name: str) -> str:
    """The platform's name of a ``dataset.table`` of :data:`TABLES`: its schema file's (include/schemas)."""
    dataset, dot, table = name.partition(".")
    return f"{dataset.removesuffix(DATASET_SUFFIX)}{dot}{table}"


TABLES = Tables(**{name: sandboxed(value) for name, value in asdict(Tables()).items()})
RUN_HISTORY_TABLE = TABLES.run_history
ALERTS_TABLE = TABLES.alerts
EVENT_INBOX_TABLE = TABLES.event_inbox
BATCH_CLAIMS_TABLE = TABLES.batch_claims
REQUEST_LEDGER_TABLE = TABLES.request_ledger
HANDOFF_TABLE = TABLES.handoffs
FEATURE_STORE_TABLE = TABLES.feature_store
PREDICTIONS_TABLE = TABLES.predictions
SCHEDULE_TABLE = TABLES.schedule

# Phase 4's feature-store processor, as its run-history rows and its completion messages name it (its
# class name: docs/platform.md §1, §3); the gate reads its row by this name.
PHASE4_PROCESSOR = "MLFeatureStoreProcessor"
#: Its output table, which its completion message names as ``output_table`` (the other way to recognise it).
PHASE4_OUTPUT_TABLE = TABLES.feature_store.split(".")[1]
#: ``phase`` of every Phase 4 processor's completion message and run-history row.
PHASE4_PHASE = "phase_4_precompute"
#: The plan's (and the infrastructure script's) name for the feature-store processor (``processor``):
#: the plan named it after its table.
PHASE4_PLAN_PROCESSOR = PHASE4_OUTPUT_TABLE
#: A completion message with one of these statuses means the features are ready (the platform's own
#: Phase 4→5 consumer counts only these); any other status is recorded and ignored.
PHASE4_READY_MESSAGE_STATUSES = ("success", "partial")
# Phase 4 counts as having run when its latest run-history row has one of these statuses.
PHASE4_RAN_STATUSES = ("success", "partial")
# The coordinator this DAG replaces, as the platform's monitoring reads it in the run history
# (processor_name LIKE 'Prediction%') and as Phase 6 reads it in the completion message (docs/platform.md §4).
PHASE5_PROCESSOR = "PredictionCoordinator"
#: ``phase`` of this DAG's run-history rows and of its completion message.
PHASE5_PHASE = "phase_5_predictions"
#: ``phase`` in the completion message to Phase 6: the coordinator's, as in its run-history rows.
COMPLETION_PHASE = PHASE5_PHASE
# The stand-in worker's prediction system; completion counts any system_id.
LOCAL_SYSTEM_ID = "local_weighted_avg_v1"

GCP_CONN_ID = "google_cloud_default"
# Per-environment overrides, as Airflow Variables (read when a task runs, never at parse time).
REQUEST_TOPIC_VARIABLE = "nba_phase5_request_topic"
#: ``dataset.table`` with ``game_date, player_lookup, points_line``; unset → requests carry no lines.
LINE_TABLE_VARIABLE = "nba_phase5_line_table"


@dataclass(frozen=True)
class Thresholds:
    """The platform's thresholds (docs/platform.md §3.4); every one can be overridden per run through DAG params."""

    #: Phase 4 is ready when this share of its players is production-ready ...
    min_ready_pct: float = 80.0
    #: ... or when at least this many are.
    min_ready_players: int = 100
    #: After the wait, proceed degraded with at least this many ready players; below it, critical.
    degraded_min_players: int = 50
    phase4_wait_minutes: int = 30
    straggler_alert_count: int = 20
    completion_goal_pct: float = 95.0
    #: After the rounds, below this completion (or with no prediction at all) the run fails: critical.
    critical_completion_pct: float = 50.0
    #: A request Pub/Sub accepted less than this long ago is in flight: never sent again meanwhile.
    in_flight_minutes: float = 10.0
    #: How long each straggler round waits for predictions.
    straggler_wait_minutes: float = 10
    #: A straggler wait ends after this many polls without progress (none counts while requests are in flight).
    straggler_settle_polls: int = 3
    #: How often the deferrable waits ask BigQuery.
    poll_interval_seconds: float = 60


@dataclass(frozen=True)
class FanOutSettings:
    """How the fan-out publishes and records its requests."""

    #: Requests published, then recorded in the ledger, per step (2,500: 1,000 made 10,000 requests
    #: 30 % slower). A fan-out killed mid-batch may send again at most two steps of requests Pub/Sub
    #: accepted but the ledger had not yet recorded: the one being recorded and the one being published.
    chunk_size: int = 2500
    #: Pub/Sub attempts per request before the task gives up on it.
    max_publish_attempts: int = 3
    #: The Airflow pool every first fan-out runs in, its slots and description (make up, make deploy,
    #: docker compose and make run create it from these).
    pool: str = "prediction_fanout"
    pool_slots: int = 4
    pool_description: str = "Bounds concurrent fan-outs"

    def pool_set_args(self) -> tuple[str, str, str]:
        """``airflow pools set`` arguments: name, slots, description."""
        return (self.pool, str(self.pool_slots), self.pool_description)


FAN_OUT = FanOutSettings()


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class TaskIds:
    """The DAG's task ids, written only here: users clear tasks by them and outside checks read them.

    Tasks inside a group are named ``<group>.<task>``: :meth:`in_group` builds that.
    """

    game_day: str = "resolve_game_day"
    claim: str = "claim_batch"
    batch_status: str = "check_batch_status"
    already_complete: str = "skip_already_complete"
    concurrent_run: str = "skip_concurrent_run"
    event: str = "wait_for_phase4_event"
    readiness_group: str = "phase4_readiness"
    readiness_wait: str = "wait_for_phase4_ready"
    readiness_gate: str = "check_phase4_ready"
    readiness_verdict: str = "proceed_with_ready_players"
    fan_out: str = "fan_out_requests"
    retry_group: str = "retry_stragglers"
    consolidate: str = "consolidate_predictions"
    verify: str = "verify_completion"
    batch_done: str = "batch_done"
    record: str = "record_batch_run"
    hand_off: str = "hand_off_to_phase6"

    @staticmethod
    def wait_round(round_number: int) -> str:
        """Straggler wait ``round_number`` (1 after the fan-out; the last one precedes the verdict)."""
        return f"wait_for_predictions_{round_number}"

    @staticmethod
    def republish_round(round_number: int) -> str:
        return f"republish_round_{round_number}"

    @staticmethod
    def in_group(group: str, task_id: str) -> str:
        return f"{group}.{task_id}"


TASKS = TaskIds()


@dataclass(frozen=True)
class MonthOneGoals:
    """The plan's go/no-go goals that ``status`` checks (the design card's month-1 metrics)."""

    #: Phase 4's completion to the first prediction, at worst.
    latency: timedelta = timedelta(minutes=10)
    #: Completion above this, every game day.
    completion_pct: float = DEFAULT_THRESHOLDS.completion_goal_pct
    #: Consecutive successful overnight (scheduled) runs.
    consecutive_runs: int = 3


GOALS = MonthOneGoals()


#: The platform's BigQuery location (docs/platform.md §0): its datasets are in this single region, where
#: every query job has to be created and looked up (a lookup without it answers 404).
DEFAULT_BIGQUERY_LOCATION = "us-west2"
#: Per environment: this variable, when set, overrides the location (read when a client is built).
BIGQUERY_LOCATION_ENV = "NBA_PHASE5_BIGQUERY_LOCATION"


def bigquery_location() -> str:
    """Where this package's BigQuery jobs run and are looked up: ``$NBA_PHASE5_BIGQUERY_LOCATION`` or us-west2."""
    return os.environ.get(BIGQUERY_LOCATION_ENV, "").strip() or DEFAULT_BIGQUERY_LOCATION


def project_id(explicit: str | None = None) -> str:
    """The GCP project: an explicit value, else ``GCP_PROJECT``, else a clear error."""
    project = explicit or os.environ.get("GCP_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise SystemExit("No GCP project: pass --project or set GCP_PROJECT (docs/operations.md, the local stack).")
    return project


def include_dir() -> Path:
    """Where SQL templates and table schemas live.

    In the repo it is ``include/`` beside ``plugins/``; in the Composer bundle (tools/bundle.py) it is the
    package's own ``nba_phase5/include/`` (only dags/, plugins/ and data/ are synced, and a shared
    bucket's ``dags/include/`` may be another team's). ``dags/include/`` is where versions before the
    bundle put it. ``NBA_PHASE5_INCLUDE_DIR`` overrides them all.
    """
    override = os.environ.get("NBA_PHASE5_INCLUDE_DIR")
    package = Path(__file__).resolve().parent
    root = package.parents[1]
    candidates = [Path(override)] if override else []
    candidates += [package / "include", root / "include", root / "dags" / "include"]
    for candidate in candidates:
        if (candidate / "schemas").is_dir():
            return candidate
    raise FileNotFoundError(
        "include/ not found (looked in " + ", ".join(str(c) for c in candidates) + "); set NBA_PHASE5_INCLUDE_DIR"
    )


# --- Alert delivery (notifications.py) ----------------------------------------------------------------
# docs/platform.md §3.4: alerts go to e-mail and Slack. Each channel is optional: a missing connection or an
# empty recipient list skips it (the BigQuery row in ALERTS_TABLE is always written).
#: Slack incoming-webhook connection (conn type ``slackwebhook``; the webhook URL, or its token, as password).
ALERT_SLACK_CONN_ID = "slack_alerts"
#: SMTP connection for alert e-mail; its ``from_email`` extra is the sender.
ALERT_SMTP_CONN_ID = "smtp_default"
#: Airflow Variable holding the alert e-mail recipients, comma-separated.
ALERT_EMAILS_VARIABLE = "nba_phase5_alert_emails"
