"""The stand-in worker's answer to each request: the platform worker's acceptance rules, as a pure function.

:func:`answer` takes a message's data, the worker's UTC date and the feature rows, and returns the
:class:`~nba_phase5_local.worker_requests.Answer` the real worker would give (docs/platform.md §7.4): 204 or
500, the rows to stage (:mod:`nba_phase5_local.worker_rows`) and the prediction-ready message. Nothing here
touches Pub/Sub or BigQuery; :mod:`nba_phase5_local.worker` acts on the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from nba_phase5.core.staging import InvalidBatchIdError, check_batch_id
from nba_phase5_local.local_model import REQUIRED_FEATURES, MissingFeatureError, named_features
from nba_phase5_local.worker_requests import ACK, RETRY, Answer, WorkerRequest, error_answer, parse_request, queryable
from nba_phase5_local.worker_rows import build_rows, line_problems, staged_row

#: WK 186-196: no rows for one of these reasons is final: 204, and a ready message saying 0.
PERMANENT_SKIP_REASONS = frozenset(
    {
        "no_features",
        "player_not_found",
        "no_prop_lines",
        "game_not_found",
        "player_inactive",
        "no_historical_data",
        "player_injury_out",
        "invalid_features",
        "quality_too_low",
    }
)
#: The worker's PREDICTION_MIN_QUALITY_THRESHOLD default: a feature row below it is ``quality_too_low``.
MIN_QUALITY_SCORE = 50.0


def answer(
    data: bytes,
    *,
    today: date,
    features: Mapping[tuple[str, str], Mapping[str, Any] | None],
    now: datetime | None = None,
    worker_instance: str = "unknown",
) -> Answer:
    """The real worker's answer to a message with ``data`` (docs/platform.md §7.4).

    :param data: the message's data (JSON), as published.
    :param today: the worker's date (UTC, as on Cloud Run).
    :param features: feature rows by ``(game_date, player_lookup)``; a missing key is no feature row.
    :param now: the rows' ``created_at`` and the ready message's timestamp (default: now, UTC).
    :param worker_instance: the ready message's ``worker_instance`` (``K_REVISION``, else ``unknown``).
    """
    parsed = parse_request(data)
    if isinstance(parsed, Answer):
        return parsed
    feature_row = None if queryable(parsed) else features.get(parsed.feature_key)
    return decide(parsed, feature_row=feature_row, today=today, now=now, worker_instance=worker_instance)


def decide(
    request: WorkerRequest,
    *,
    feature_row: Mapping[str, Any] | None,
    today: date,
    now: datetime | None = None,
    worker_instance: str = "unknown",
) -> Answer:
    """The answer to a parsed request, given its feature row (WK 864-991).

    :param request: the parsed request.
    :param feature_row: its ``ml_feature_store_v2`` row, or None when there is none.
    :param today: the worker's date (UTC).
    :param now: the rows' ``created_at`` and the ready message's timestamp (default: now, UTC).
    :param worker_instance: the ready message's ``worker_instance``.
    """
    now = now or datetime.now(UTC)
    problem = queryable(request)
    if problem:
        return error_answer(request, ValueError(problem), today=today)
    try:
        skip = skip_reason(feature_row)
        rows = [] if skip else build_rows(request, feature_row=feature_row or {}, now=now)
    except Exception as exc:  # WK 1013-1059: whatever the values do, the worker's catch-all answers
        return error_answer(request, exc, today=today)
    if skip or not rows:
        # WK 1566: `line_values: []` loops over nothing: no rows and no skip_reason ('unknown').
        return skipped(request, reason=skip or "unknown", today=today, now=now, worker_instance=worker_instance)
    problems = line_problems(rows, line_source_api=request.line_source_api)
    if problems:
        # WK 864-878: retried while the game is today or later; acked (and lost) once it is past.
        status = RETRY if request.game_day >= today else ACK
        return Answer(status, "line validation failed: " + "; ".join(problems[:3]), request)
    try:
        batch = staging_batch(request, now=now)
        staged = tuple(staged_row(row) for row in rows)
    except (InvalidBatchIdError, ValueError) as exc:
        # WK 944-956: the staging load fails (checked here: one bad request must not fail its pull's load).
        return Answer(RETRY, f"staging write failed: {exc}", request)
    ready = ready_message(request, generated=len(staged), now=now, worker_instance=worker_instance)
    return Answer(ACK, "staged", request, staged, ready, staging_batch=batch)


def skip_reason(feature_row: Mapping[str, Any] | None) -> str | None:
    """Why the worker makes no rows from ``feature_row`` (WK 903-919), or None when it predicts.

    :param feature_row: the player's feature row, or None.
    """
    if feature_row is None:
        return "no_features"
    try:
        named = named_features(feature_row)
    except MissingFeatureError:
        return "invalid_features"
    if any(name not in named for name in REQUIRED_FEATURES):
        return "invalid_features"
    quality = feature_row.get("feature_quality_score")
    # A NULL score counts as 0, as the worker's `features.get('feature_quality_score', 0)` default.
    if quality is None or not float(quality) >= MIN_QUALITY_SCORE:
        return "quality_too_low"
    return None


def skipped(request: WorkerRequest, *, reason: str, today: date, now: datetime, worker_instance: str) -> Answer:
    """No rows (WK 899-941): a permanent reason is 204 with a ready message of 0 (only with a batch id);
    any other is 500 for today or later, 204 (with that ready message) for a past date.

    :param request: the parsed request.
    :param reason: the skip reason (``unknown`` when none).
    :param today: the worker's date (UTC).
    :param now: the ready message's timestamp.
    :param worker_instance: the ready message's ``worker_instance``.
    """
    if reason not in PERMANENT_SKIP_REASONS and request.game_day >= today:
        return Answer(RETRY, f"no predictions ({reason})", request)
    ready = ready_message(request, generated=0, now=now, worker_instance=worker_instance) if request.batch_id else None
    return Answer(ACK, f"no predictions ({reason})", request, ready=ready)


def staging_batch(request: WorkerRequest, *, now: datetime) -> str:
    """The batch part of the request's staging table: its batch id (BSW 234-252), else
    ``fallback_{epoch_ms}`` (WK 2407-2411: tables no consolidation finds). Raises when no table can bear it.

    :param request: the parsed request.
    :param now: when it is staged.
    """
    if not request.batch_id:
        return f"fallback_{int(now.timestamp() * 1000)}"
    return check_batch_id(request.batch_id)


def ready_message(request: WorkerRequest, *, generated: int, now: datetime, worker_instance: str) -> dict[str, Any]:
    """The prediction-ready message (WK 2482-2529, docs/platform.md §7.7).

    :param request: the parsed request.
    :param generated: how many rows it staged (0 for a skip).
    :param now: its timestamp (UTC, written without an offset as ``utcnow().isoformat()`` does).
    :param worker_instance: ``K_REVISION`` or ``unknown``.
    """
    return {
        "player_lookup": request.player_lookup,
        "game_date": request.game_date,
        "predictions_generated": generated,
        "batch_id": request.batch_id,
        "correlation_id": request.correlation_id,
        "timestamp": now.astimezone(UTC).replace(tzinfo=None).isoformat(),
        "worker_instance": worker_instance,
    }
