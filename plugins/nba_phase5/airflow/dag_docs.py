"""What each task of the daily DAG says in the UI (its ``doc_md``): the DAG file wires, this module explains."""

from __future__ import annotations

from nba_phase5 import config

CLAIM_DOC = f"""Claims the game date's batch for this run (a row in `{config.BATCH_CLAIMS_TABLE}`), mints its batch id
from the run's first claim (kept across clears), adopts the staged rows of dead earlier batches of the date,
and writes the run's `running` row in the run history. On an off day it skips, and the run ends there."""
HAND_OFF_DOC = f"""Publishes the batch's completion message on `{config.PHASE5_COMPLETE_TOPIC}` (the platform's
envelope, read by its Phase 5→6 orchestrator) and updates the `{config.PREDICTIONS_ASSET_NAME}` asset, once per
batch: a batch already in `{config.HANDOFF_TABLE}` is skipped, so clearing this task (or a dedup rerun) never
announces twice. Skipped, too, when the run did not end `success` or `partial`."""
CONSOLIDATE_DOC = """Merges the batch's staging tables (`nba_predictions._staging_{batch_id}_*`, written by the
workers), and those of dead earlier batches of the date it adopted, into `player_prop_predictions` as the
platform's coordinator did: the newest staged row per key, then only the newest active row per game,
player and system stays active. The tables are deleted after; when the MERGE changed nothing or active
duplicates remain, the task fails and keeps them. Runs after a failed round too. Safe to clear."""
ALREADY_COMPLETE_DOC = "Every ready player already had an active prediction."
CONCURRENT_RUN_DOC = (
    "Another live run of this game date holds its batch: this run publishes nothing and is recorded "
    "`skipped`. Once that run ends, a new run (or clearing this one) dedups as usual."
)
READINESS_WAIT_DOC = (
    "Polls Phase 4's run row and ready counts until ready (≥ min_ready_pct or ≥ min_ready_players) "
    "or the wait runs out; a first try after no event wait reuses check_batch_status's ready row."
)
READINESS_GATE_DOC = (
    "Gate: Phase 4 ran and at least degraded_min_players are ready; else critical, nothing published. "
    "The first try judges the wait's last row; a retry queries again. A BigQuery error is retried, and only "
    "an error alert if it persists."
)
STRAGGLER_WAIT_DOC = (
    "Waits until predictions (consolidated or staged) cover the ready players, the workers go "
    "quiet with nothing in flight, or the wait runs out."
)
REPUBLISH_DOC = (
    "Republishes only the players whose predictions are still missing and whose requests are "
    "older than the in-flight window (presumed lost)."
)
EVENT_WAIT_DOC = f"Deferrable wait for Phase 4's event; at {config.BACKUP_START} PT the run goes on (the backup path)."
FAN_OUT_DOC = (
    "Publishes one request per ready player still missing its prediction and not in flight "
    "(with force: a new generation for everyone), recording each accepted request in the ledger."
)
BATCH_DONE_DOC = "Joins the fan-out path and the already-complete path; fails the run when the batch failed."
