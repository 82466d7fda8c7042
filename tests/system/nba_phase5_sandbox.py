"""What the system-test DAG's tasks do (tests/system/dags/example_nba_phase5_bigquery.py), with the package's code.

Everything here runs against whatever the process's BigQuery endpoint is: real BigQuery with Application
Default Credentials (`make system-test`), or the emulators through the strict proxy (`make test`). Nothing
branches on which; the table names are the package's own (``config.TABLES``), pointed at the sandbox by
``NBA_PHASE5_DATASET_SUFFIX`` (``config.DATASET_SUFFIX``), which must be set before ``nba_phase5`` is imported.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from nba_phase5 import config
from nba_phase5.core import staging

log = logging.getLogger(__name__)
#: Every sandbox dataset carries this label, valued with the run's ENV_ID: teardown deletes only those.
LABEL = "nba_phase5_system_test"
#: A sandbox a killed run could not tear down deletes its own tables after a day.
TABLE_TTL_MS = 24 * 3600 * 1000
SYSTEM_ID = "nba_phase5_system_test"


class SandboxError(AssertionError):
    """The sandbox is not what the system test expects (or would not be safe to use)."""


def datasets() -> list[str]:
    """The sandbox datasets: every dataset of the package's tables, with the run's suffix."""
    from nba_phase5_local.provisioning import table_specs

    if not config.DATASET_SUFFIX:
        raise SandboxError(f"{config.DATASET_SUFFIX_ENV} is not set: refusing to touch the platform's datasets")
    return sorted({name.split(".")[0] for name in table_specs()})


def check_isolated(names: list[str]) -> None:
    """Every dataset the package names (its tables', the workers' staging dataset) is a sandbox dataset."""
    named = {table.split(".")[0] for table in vars(config.TABLES).values()} | {staging.STAGING_DATASET}
    outside = sorted(named - set(names))
    if outside:
        raise SandboxError(f"the package still names datasets outside the sandbox: {outside}")


def create(project: str, env_id: str) -> list[str]:
    """Setup: the sandbox datasets in the configured location, labelled, then every table the package uses
    (``provision_bigquery``: partitioning, clustering and, on real GCP, the required partition filter)."""
    from google.cloud import bigquery

    from nba_phase5.bigquery.clients import bigquery_client
    from nba_phase5_local.provisioning import ProvisionReport, provision_bigquery

    client = bigquery_client(project)
    names = datasets()
    check_isolated(names)
    for name in names:
        dataset = bigquery.Dataset(f"{project}.{name}")
        dataset.location = config.bigquery_location()
        dataset.labels = {LABEL: env_id}
        dataset.default_table_expiration_ms = TABLE_TTL_MS
        # exists_ok=False: a dataset of that name that this run did not make is never used, nor deleted.
        client.create_dataset(dataset, exists_ok=False)
    report = ProvisionReport()
    provision_bigquery(project, report)
    log.info("Sandbox in %s: %s", config.bigquery_location(), report.summary())
    return names


def delete(project: str, env_id: str) -> list[str]:
    """Teardown: delete the sandbox datasets this run labelled (with their tables); leave anything else."""
    from google.api_core.exceptions import NotFound

    from nba_phase5.bigquery.clients import bigquery_client

    client = bigquery_client(project)
    deleted = []
    for name in datasets():
        try:
            dataset = client.get_dataset(f"{project}.{name}")
        except NotFound:
            continue
        if not name.endswith(config.DATASET_SUFFIX) or (dataset.labels or {}).get(LABEL) != env_id:
            log.warning("Not deleting %s: not labelled %s=%s by this run", name, LABEL, env_id)
            continue
        client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
        deleted.append(name)
    return deleted


def seed_phase4(project: str, game_date: date, players: int) -> int:
    """Phase 4's day as the platform writes it: schedule, feature rows, its run-history row; returns the
    production-ready players (``nba_phase5_local.seeding``, into the sandbox's tables)."""
    from nba_phase5.bigquery.clients import bigquery_client
    from nba_phase5_local.seeding import seed_day

    report = seed_day(bigquery_client(project), game_date, players=players)
    log.info("%s", report.summary())
    return report.players_ready


def ready_players(hook: Any, game_date: date) -> list[str]:
    """The production-ready players Phase 4 left in the sandbox's feature store for ``game_date``."""
    rows = hook.query_rows(
        f"SELECT player_lookup FROM `{hook.project_id}.{config.FEATURE_STORE_TABLE}` "
        "WHERE game_date = @d AND is_production_ready ORDER BY player_lookup",
        {"d": game_date},
    )
    return [row["player_lookup"] for row in rows]


def inbox_round_trip(hook: Any, game_date: date, message_id: str) -> dict[str, Any]:
    """The inbox MERGE: a feature-store ready event recorded twice is one row, and ``find`` gives it back."""
    from nba_phase5.bigquery import inbox
    from nba_phase5_local.phase4_publisher import build_envelope

    entry = inbox.InboxEntry(message_id, build_envelope(game_date, record_count=3), datetime.now(UTC))
    for _ in range(2):  # a redelivered message must not make a second row
        inbox.record(hook, [entry], pulled_for=game_date)
    found = inbox.find(hook, game_date)
    if found is None or found.message_id != message_id or found.event.game_date != game_date:
        raise SandboxError(f"inbox.find gave back {found!r}, not the event recorded as {message_id}")
    rows = hook.query_rows(
        f"SELECT COUNT(*) AS n FROM `{hook.project_id}.{config.EVENT_INBOX_TABLE}` "
        "WHERE game_date = @d AND message_id = @m",
        {"d": game_date, "m": message_id},
    )
    if rows[0]["n"] != 1:
        raise SandboxError(f"{message_id} is in the inbox {rows[0]['n']} times, not once")
    return {"message_id": found.message_id, "rows": 1}


def staged_rows(game_date: date, players: list[str]) -> list[dict[str, Any]]:
    """What a worker stages for ``players``: one active prediction each (the predictions table's columns)."""
    now = datetime.now(UTC).isoformat()
    return [
        {
            "prediction_id": f"st-{game_date:%Y%m%d}-{number}",
            "system_id": SYSTEM_ID,
            "player_lookup": player,
            "game_date": game_date.isoformat(),
            "game_id": f"{game_date:%Y%m%d}_ST_{number:02d}",
            "prediction_version": 1,
            "predicted_points": 20.5,
            "confidence_score": 0.7,
            "recommendation": "NO_LINE",
            "is_active": True,
            "created_at": now,
        }
        for number, player in enumerate(players)
    ]


def stage(project: str, batch_id: str, rows: list[dict[str, Any]]) -> str:
    """Load ``rows`` into the batch's staging table as the platform's workers do (a load job with the
    predictions table's schema: docs/platform.md §7.6); returns the table's name."""
    from google.cloud import bigquery

    from nba_phase5.bigquery.clients import bigquery_client

    client = bigquery_client(project)
    schema = client.get_table(f"{project}.{config.PREDICTIONS_TABLE}").schema
    table = staging.staging_table_id(batch_id, "system_test_worker")
    job = bigquery.LoadJobConfig(schema=schema, write_disposition="WRITE_APPEND", create_disposition="CREATE_IF_NEEDED")
    client.load_table_from_json(rows, f"{project}.{staging.STAGING_DATASET}.{table}", job_config=job).result()
    return table


def consolidate_staged(hook: Any, game_date: date, players: list[str]) -> dict[str, Any]:
    """A consolidation: one staged table merged into the predictions table and deleted; a rerun finds nothing."""
    batch_id = staging.mint_batch_id(game_date, datetime.now(UTC))
    stage(hook.project_id, batch_id, staged_rows(game_date, players))
    result = hook.consolidate(game_date.isoformat(), batch_id)
    expected = (1, len(players), 1)
    if (result.staging_tables, result.rows_affected, result.tables_deleted) != expected:
        raise SandboxError(f"consolidation did {result}, expected tables/rows/deleted {expected}")
    active = hook.query_rows(
        f"SELECT COUNT(*) AS n FROM `{hook.project_id}.{config.PREDICTIONS_TABLE}` "
        "WHERE game_date = @d AND is_active AND system_id = @s",
        {"d": game_date, "s": SYSTEM_ID},
    )[0]["n"]
    again = hook.consolidate(game_date.isoformat(), batch_id)
    if active != len(players) or again.staging_tables != 0:
        raise SandboxError(f"{active} active predictions after consolidating {len(players)}; rerun found {again}")
    return result.to_dict()
