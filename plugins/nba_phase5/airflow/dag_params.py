"""The DAG's params: the Trigger form, in sections (the date and force first, then the waits, the
thresholds and the fan-out), each param with a title and a description. Defaults and bounds come from
``config`` (every number written once)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from nba_phase5 import config
from nba_phase5.config import DEFAULT_THRESHOLDS as THRESHOLDS
from nba_phase5.config import WAIT_LIMITS as LIMITS

GAME_DAY, WAITS, THRESHOLDS_SECTION, FAN_OUT = "Game day", "Waits", "Thresholds", "Fan-out"
SECTIONS = (GAME_DAY, WAITS, THRESHOLDS_SECTION, FAN_OUT)


def trigger_form() -> dict[str, Any]:
    """Every param, in the order and sections the Trigger form shows them."""
    return {**_game_day(), **_waits(), **_thresholds(), **_fan_out()}


def _param(default: Any, section: str, title: str, description: str, **schema: Any) -> Any:
    return Param(default, title=title, description=description, section=section, **schema)


def _game_day() -> dict[str, Any]:
    return {
        "game_date": _param(
            None,
            GAME_DAY,
            "Game date",
            "YYYY-MM-DD. Empty: the run's game date in Eastern time.",
            type=["null", "string"],
            format="date",
        ),
        "force": _param(
            False,
            GAME_DAY,
            "Force a new generation",
            "Request every ready player, even those with predictions (a new batch, new request ids).",
            type="boolean",
        ),
        "skip_event_wait": _param(
            False, GAME_DAY, "Skip the event wait", "Do not wait for Phase 4's Pub/Sub event.", type="boolean"
        ),
    }


def _waits() -> dict[str, Any]:
    return {
        "event_deadline": _param(
            config.BACKUP_START,
            WAITS,
            "Event deadline (Pacific)",
            "Pacific time on the game date when the event wait ends (the platform's backup).",
            type="string",
            pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        ),
        "event_wait_seconds": _param(
            None,
            WAITS,
            "Event wait cap (seconds)",
            "Cap the event wait (manual runs and tests); a past date needs it to wait at all.",
            type=["null", "integer"],
            minimum=0,
            maximum=LIMITS.event_wait_seconds,
        ),
    } | _bigquery_waits()


def _bigquery_waits() -> dict[str, Any]:
    return {
        "phase4_wait_minutes": _param(
            THRESHOLDS.phase4_wait_minutes,
            WAITS,
            "Phase 4 wait (minutes)",
            "How long the gates wait for Phase 4.",
            type="number",
            minimum=0,
            maximum=LIMITS.phase4_wait_minutes,
        ),
        "straggler_wait_minutes": _param(
            THRESHOLDS.straggler_wait_minutes,
            WAITS,
            "Straggler wait (minutes)",
            "How long each straggler round waits for predictions.",
            type="number",
            minimum=0,
            maximum=LIMITS.straggler_wait_minutes,
        ),
        "straggler_settle_polls": _param(
            THRESHOLDS.straggler_settle_polls,
            WAITS,
            "Quiet polls that end a straggler wait",
            "End a straggler wait after this many polls without progress (none counts while requests are in flight).",
            type="integer",
            minimum=0,
        ),
        "in_flight_minutes": _param(
            THRESHOLDS.in_flight_minutes,
            WAITS,
            "In-flight window (minutes)",
            "A request Pub/Sub accepted less than this long ago is in flight: no fan-out retry or straggler round "
            "sends it again. Keep straggler_wait_minutes at least this long.",
            type="number",
            minimum=0,
            maximum=LIMITS.straggler_wait_minutes,
        ),
        "poll_interval_seconds": _param(
            THRESHOLDS.poll_interval_seconds,
            WAITS,
            "BigQuery poll interval (seconds)",
            "How often the deferrable waits ask BigQuery.",
            type="number",
            minimum=0.5,
            maximum=LIMITS.poll_interval_seconds,
        ),
    }


def _thresholds() -> dict[str, Any]:
    return {
        "min_ready_pct": _param(
            THRESHOLDS.min_ready_pct,
            THRESHOLDS_SECTION,
            "Ready at (% of players)",
            "Phase 4 is ready when this share of players is production-ready.",
            type="number",
            minimum=0,
            maximum=100,
        ),
        "min_ready_players": _param(
            THRESHOLDS.min_ready_players,
            THRESHOLDS_SECTION,
            "Ready at (players)",
            "Ready with this many players, whatever the %.",
            type="integer",
            minimum=0,
        ),
        "degraded_min_players": _param(
            THRESHOLDS.degraded_min_players,
            THRESHOLDS_SECTION,
            "Degraded minimum (players)",
            "After the wait: proceed degraded with at least this many ready; below, stop (critical).",
            type="integer",
            minimum=1,
        ),
        "straggler_alert_count": _param(
            THRESHOLDS.straggler_alert_count,
            THRESHOLDS_SECTION,
            "Warn above (missing players)",
            "Warn when more players than this still lack a prediction.",
            type="integer",
            minimum=0,
        ),
        "completion_goal_pct": _param(
            THRESHOLDS.completion_goal_pct,
            THRESHOLDS_SECTION,
            "Completion goal (%)",
            "Below this completion after the rounds the run is partial, with a warning.",
            type="number",
            minimum=0,
            maximum=100,
        ),
        "critical_completion_pct": _param(
            THRESHOLDS.critical_completion_pct,
            THRESHOLDS_SECTION,
            "Critical completion (%)",
            "Below this completion after the rounds (or with no prediction at all) the run fails.",
            type="number",
            minimum=0,
            maximum=100,
        ),
    }


def _fan_out() -> dict[str, Any]:
    return {
        "fan_out_chunk_size": _param(
            config.FAN_OUT.chunk_size,
            FAN_OUT,
            "Requests per ledger step",
            "Requests published, then recorded in the ledger, per step: a fan-out killed mid-batch sends again at "
            "most two steps of requests Pub/Sub accepted but the ledger had not recorded.",
            type="integer",
            minimum=1,
        ),
    }
