"""Consolidation: the batch's staging tables merged into ``player_prop_predictions`` (docs/platform.md §8.2).

Finds the batch's staging tables (and the adopted batches'), runs one MERGE (``consolidate_batch.sql``) that
upserts the newest staged row per key and deactivates all but the newest active row per (game, player,
system), fails (keeping the tables) when it changed nothing or would leave active duplicates, then deletes the
tables. Safe to rerun; names reach the SQL only after matching :data:`NAME_RE`. Why, and how nothing a worker
staged is lost: docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nba_phase5.bigquery import sql
from nba_phase5.bigquery.bq import QUERY_TIMEOUT_S, query_parameter, with_transient_retry
from nba_phase5.core import staging

log = logging.getLogger(__name__)
#: A column name as BigQuery allows it (and nothing SQL could be smuggled through).
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")
#: The MERGE's key columns and the columns a matched row keeps (docs/platform.md §8.2).
KEY_COLUMNS = ("game_date", "game_id", "player_lookup", "system_id", "current_points_line")
KEPT_COLUMNS = ("prediction_id", "created_at", "updated_at")
#: The columns the MERGE sets itself (a row it deactivates), and every column it reads by name.
SUPERSEDE_COLUMNS = ("is_active", "superseded_by")
REQUIRED_COLUMNS = (*KEY_COLUMNS, *KEPT_COLUMNS, *SUPERSEDE_COLUMNS)
#: What ``consolidate_batch.sql`` raises, rather than leave two active rows on one key.
DUPLICATES_ERROR = "consolidation would leave active duplicate keys"


class ConsolidationError(RuntimeError):
    """The batch could not be consolidated; its staging tables are kept for a person to look at."""


@dataclass(frozen=True)
class ConsolidationResult:
    """What one consolidation did."""

    batch_id: str
    staging_tables: int = 0
    #: Rows the MERGE wrote: inserted or updated, the rows it deactivated included (one statement).
    rows_affected: int = 0
    tables_deleted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_tables(client: Any, batch_ids: Sequence[str]) -> list[str]:
    """The names of the staging tables of ``batch_ids`` in the staging dataset, checked and sorted."""
    dataset = f"{client.project}.{staging.STAGING_DATASET}"
    return staging.batch_tables([table.table_id for table in client.list_tables(dataset)], batch_ids)


def counted_tables(client: Any, batch_ids: Sequence[str], *, own_batch_only: bool = False) -> list[str]:
    """The staging tables whose active rows count as predictions in ``_prediction_state.sql``: those of
    ``batch_ids`` (the run's own batch first, then the batches it adopted; with ``own_batch_only``, a
    forced batch, its own only). The coverage and fan-out queries read them in the same job."""
    wanted = list(batch_ids)[:1] if own_batch_only else list(batch_ids)
    return batch_tables(client, wanted) if wanted else []


def columns_of(client: Any, table: str) -> list[str]:
    """The first staging table's columns, as the platform's consolidator takes them (checked names)."""
    columns = [field.name for field in client.get_table(f"{client.project}.{staging.STAGING_DATASET}.{table}").schema]
    bad = [name for name in columns if not NAME_RE.fullmatch(name)]
    if bad:
        raise ConsolidationError(f"staging table {table} has columns no SQL name may carry: {bad[:3]}")
    missing = set(REQUIRED_COLUMNS) - set(columns)
    if missing:
        raise ConsolidationError(f"staging table {table} lacks the columns {sorted(missing)} consolidation needs")
    return columns


def _dml(client: Any, query: str, game_date: str, labels: Any) -> int:
    """Run one DML statement with the date as its only parameter; returns the rows it affected."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        query_parameters=[query_parameter("game_date", game_date, "DATE")], labels=dict(labels or {})
    )

    def run() -> int:
        job = client.query(query, job_config=config)
        job.result(timeout=QUERY_TIMEOUT_S)
        return int(job.num_dml_affected_rows or 0)

    # The MERGE is idempotent here: rerun after a lost reply, it writes the same values.
    result: int = with_transient_retry(run, "consolidation DML")
    return result


def merge_staged(client: Any, game_date: str, tables: list[str], labels: Any = None) -> int:
    """Step 2: the one MERGE (upsert and deactivation); returns the rows it wrote (both kinds).

    :raises ConsolidationError: the statement refused to leave active duplicate keys (nothing written).
    """
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.api_core.exceptions import BadRequest

    columns = columns_of(client, tables[0])
    update_columns = [c for c in columns if c not in (*KEY_COLUMNS, *KEPT_COLUMNS, *SUPERSEDE_COLUMNS)]
    merge = sql.render(
        "consolidate_batch.sql",
        staging_tables=tables,
        staging_dataset=staging.STAGING_DATASET,
        columns=columns,
        update_columns=update_columns,
    )
    try:
        return _dml(client, merge, game_date, labels)
    except BadRequest as exc:
        if DUPLICATES_ERROR not in str(exc):
            raise
        raise ConsolidationError(
            f"keys of {game_date} would have more than one active prediction after consolidating "
            f"{len(tables)} staging tables; nothing was written and they are kept for inspection"
        ) from exc


def consolidate(
    client: Any, *, game_date: str, batch_id: str, adopted: Sequence[str] = (), labels: Any = None
) -> ConsolidationResult:
    """Merge the staging tables of ``batch_id`` (and of the ``adopted`` batches) into the predictions
    table and delete them (module docstring).

    :param client: a BigQuery client of the project the workers stage in.
    :param game_date: the batch's ISO game date (the statement prunes the predictions table to it).
    :param batch_id: the batch whose ``_staging_{batch_id}_*`` tables to merge.
    :param adopted: earlier batches of the date whose runs died before consolidating.
    :param labels: the job's labels.
    :raises ConsolidationError: the MERGE changed nothing, or would leave active duplicates; tables kept.
    """
    tables = batch_tables(client, [batch_id, *adopted])
    if not tables:
        log.info("No staging tables for batch %s: nothing to consolidate", batch_id)
        return ConsolidationResult(batch_id)
    affected = merge_staged(client, game_date, tables, labels)
    if affected == 0:
        raise ConsolidationError(
            f"consolidating batch {batch_id} changed no prediction although {len(tables)} staging tables "
            "exist; they are kept for inspection"
        )
    deleted = delete_tables(client, tables)
    result = ConsolidationResult(batch_id, len(tables), affected, deleted)
    log.info("Consolidated %s", result)
    return result


def delete_tables(client: Any, tables: list[str]) -> int:
    """Step 4: delete the staging tables (one already gone is fine: a rerun, or another cleaner)."""
    for table in tables:
        client.delete_table(f"{client.project}.{staging.STAGING_DATASET}.{table}", not_found_ok=True)
    return len(tables)
