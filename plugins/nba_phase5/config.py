"""Names and defaults shared by the DAG, the CLI and Phase 4's publisher.

The names are a contract with Phase 4, the prediction workers and outside tests: change them only
together with those.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DAG_ID = "nba_phase5_predictions"
DAG_TIMEZONE = "America/New_York"

PHASE4_COMPLETE_TOPIC = "nba-phase4-precompute-complete"
PHASE5_TRIGGER_SUBSCRIPTION = "nba-phase5-trigger-sub"
PREDICTION_REQUESTS_TOPIC = "nba-phase5-prediction-requests"
PREDICTION_REQUESTS_SUBSCRIPTION = "nba-phase5-prediction-requests-sub"

RUN_HISTORY_TABLE = "nba_reference.processor_run_history"
ALERTS_TABLE = "nba_reference.pipeline_alerts"
FEATURE_STORE_TABLE = "nba_predictions.ml_feature_store_v2"
PREDICTIONS_TABLE = "nba_predictions.player_prop_predictions"
SCHEDULE_TABLE = "nba_raw.nbac_schedule"

PHASE4_PROCESSOR = "ml_feature_store_v2"
PHASE5_PROCESSOR = "phase5_coordinator"

GCP_CONN_ID = "google_cloud_default"

# Prop types a request may ask for (the DAG's `prop_types` param offers exactly these).
PROP_TYPES = (
    "points",
    "rebounds",
    "assists",
    "threes",
    "steals",
    "blocks",
    "turnovers",
    "minutes",
    "pra",
    "pts_reb",
    "pts_ast",
    "reb_ast",
    "stocks",
    "fantasy_score",
)


@dataclass(frozen=True)
class Thresholds:
    """The plan's thresholds; every one can be overridden per run through DAG params."""

    min_ready_pct: float = 80.0
    min_ready_players: int = 50
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
