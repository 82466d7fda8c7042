"""Names and defaults shared by the DAG, the CLI and Phase 4's publisher.

The names are a contract with Phase 4, the prediction workers and outside tests: change them only
together with those.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

DAG_ID = "nba_phase5_predictions"
# NBA game dates are Eastern: the run for game date D opens at 00:00 Eastern on D.
DAG_TIMEZONE = "America/New_York"
# The platform's backup schedule is Pacific (PLATFORM.md §2): /start at 06:00 PT, retries 06:15 and 06:30 PT.
BACKUP_TIMEZONE = "America/Los_Angeles"
BACKUP_START = "06:00"
# The longest a run waits by default: 00:00 ET → 06:00 PT is 9 h of event window, then the 30-minute
# readiness wait and three 10-minute straggler waits; an hour of margin on top.
RUN_TIMEOUT = timedelta(hours=9, minutes=30 + 3 * 10) + timedelta(hours=1)

PHASE4_COMPLETE_TOPIC = "nba-phase4-precompute-complete"
PHASE5_TRIGGER_SUBSCRIPTION = "nba-phase5-trigger-sub"
# The production workers' topic (the coordinator's PREDICTION_REQUEST_TOPIC); they receive it by push.
PREDICTION_REQUESTS_TOPIC = "prediction-request-prod"
# Local only: the stand-in worker pulls from this subscription (production pushes to the workers).
PREDICTION_REQUESTS_SUBSCRIPTION = "prediction-request-prod-local-worker"

RUN_HISTORY_TABLE = "nba_reference.processor_run_history"
ALERTS_TABLE = "nba_reference.pipeline_alerts"
FEATURE_STORE_TABLE = "nba_predictions.ml_feature_store_v2"
PREDICTIONS_TABLE = "nba_predictions.player_prop_predictions"
SCHEDULE_TABLE = "nba_raw.nbac_schedule"

PHASE4_PROCESSOR = "ml_feature_store_v2"
PHASE5_PROCESSOR = "phase5_coordinator"
# Phase 4 counts as having run when its latest run-history row has one of these statuses.
PHASE4_RAN_STATUSES = ("success", "partial")
# The stand-in worker's prediction system; completion counts any system_id.
LOCAL_SYSTEM_ID = "local_weighted_avg_v1"

GCP_CONN_ID = "google_cloud_default"
# Per-environment overrides, as Airflow Variables (read when a task runs, never at parse time).
REQUEST_TOPIC_VARIABLE = "nba_phase5_request_topic"
#: ``dataset.table`` with ``game_date, player_lookup, points_line``; unset → requests carry no lines.
LINE_TABLE_VARIABLE = "nba_phase5_line_table"


@dataclass(frozen=True)
class Thresholds:
    """The platform's thresholds (PLATFORM.md §3); every one can be overridden per run through DAG params."""

    #: Phase 4 is ready when this share of its players is production-ready ...
    min_ready_pct: float = 80.0
    #: ... or when at least this many are.
    min_ready_players: int = 100
    #: After the wait, proceed degraded with at least this many ready players; below it, critical.
    degraded_min_players: int = 50
    phase4_wait_minutes: int = 30
    straggler_alert_count: int = 20
    completion_goal_pct: float = 95.0


DEFAULT_THRESHOLDS = Thresholds()


def project_id(explicit: str | None = None) -> str:
    """The GCP project: an explicit value, else ``GCP_PROJECT``, else a clear error."""
    project = explicit or os.environ.get("GCP_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise SystemExit("No GCP project: pass --project or set GCP_PROJECT (see README).")
    return project


def include_dir() -> Path:
    """Where SQL templates and table schemas live.

    In the repo it is ``include/`` beside ``plugins/``; on Composer only dags/, plugins/ and data/ are
    synced, so it is deployed as ``dags/include/``. ``NBA_PHASE5_INCLUDE_DIR`` overrides both.
    """
    override = os.environ.get("NBA_PHASE5_INCLUDE_DIR")
    root = Path(__file__).resolve().parents[2]
    candidates = [Path(override)] if override else []
    candidates += [root / "include", root / "dags" / "include"]
    for candidate in candidates:
        if (candidate / "schemas").is_dir():
            return candidate
    raise FileNotFoundError(
        "include/ not found (looked in " + ", ".join(str(c) for c in candidates) + "); set NBA_PHASE5_INCLUDE_DIR"
    )


# --- Alert delivery (notifications.py) ----------------------------------------------------------------
# PLATFORM.md §3: alerts go to e-mail and Slack. Each channel is optional: a missing connection or an
# empty recipient list skips it (the BigQuery row in ALERTS_TABLE is always written).
#: Slack incoming-webhook connection (conn type ``slackwebhook``; the webhook URL, or its token, as password).
ALERT_SLACK_CONN_ID = "slack_alerts"
#: SMTP connection for alert e-mail; its ``from_email`` extra is the sender.
ALERT_SMTP_CONN_ID = "smtp_default"
#: Airflow Variable holding the alert e-mail recipients, comma-separated.
ALERT_EMAILS_VARIABLE = "nba_phase5_alert_emails"
