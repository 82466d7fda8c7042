"""Batch ids and the workers' per-batch staging tables (docs/platform.md §7.6, §8.2).

The one place that spells the workers' staging-table names,
``nba_predictions._staging_{batch_id}_{worker_id}`` (``-`` becomes ``_``), for the DAG's consolidation and the
local stand-in worker, and mints a batch id as the coordinator does, ``batch_{YYYY-MM-DD}_{epoch seconds}``,
from the run's first claim on its date. Why: docs/architecture.md, *Why each module is built as it is*.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime

from nba_phase5 import config

#: Where the workers stage: the predictions table's dataset (``nba_predictions``; a sandbox's in the system test).
STAGING_DATASET = config.TABLES.predictions.split(".")[0]
STAGING_TABLE_PREFIX = "_staging_"
#: A batch id this package mints or accepts: after ``-`` → ``_`` only letters, digits and underscores
#: are valid in a table name, and with ``_staging_``, ``_`` and a worker id (about 40 characters) the
#: table id must stay under BigQuery's 1,024 bytes.
BATCH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,960}")
#: The coordinator's batch id, ``batch_{date}_{epoch}``: ten-digit epochs until 2286, so no id is another
#: id plus ``_suffix`` and no batch's prefix sweeps up another batch's tables.
MINTED_BATCH_ID_RE = re.compile(r"batch_\d{4}-\d{2}-\d{2}_\d{10}")
#: A staging table's name, as the workers write it (validated before it is named in any SQL).
STAGING_TABLE_RE = re.compile(r"_staging_[A-Za-z0-9_]{1,1000}")


class InvalidBatchIdError(ValueError):
    """A batch id the workers could not use in a staging table's name."""


def mint_batch_id(game_date: date | str, started_at: datetime) -> str:
    """The coordinator's ``batch_{date}_{epoch}`` for a batch that began at ``started_at``."""
    return f"batch_{game_date}_{int(started_at.timestamp())}"


def check_batch_id(batch_id: str) -> str:
    """``batch_id`` if the workers can name staging tables after it; :class:`InvalidBatchIdError` otherwise."""
    if batch_id in ("None", ""):
        # A template of a missing XCom renders "None": a run that never claimed its date has no batch.
        raise InvalidBatchIdError("no batch id: the run has not claimed its game date (claim_batch)")
    if not isinstance(batch_id, str) or not BATCH_ID_RE.fullmatch(batch_id):
        raise InvalidBatchIdError(
            f"batch id {str(batch_id)[:60]!r} is not 1-960 letters, digits, '_' or '-' (a staging table name)"
        )
    return batch_id


def table_fragment(value: str) -> str:
    """A batch or worker id as it appears in a table name (the workers replace ``-`` with ``_``)."""
    return value.replace("-", "_")


def staging_prefix(batch_id: str) -> str:
    """Every staging table of ``batch_id`` starts with this, and no other batch's does."""
    return f"{STAGING_TABLE_PREFIX}{table_fragment(check_batch_id(batch_id))}_"


def date_prefix(game_date: date | str) -> str:
    """Every staging table of the batches this package mints for ``game_date`` starts with this."""
    return f"{STAGING_TABLE_PREFIX}batch_{table_fragment(str(game_date))}_"


def staging_table_id(batch_id: str, worker_id: str) -> str:
    """The table a worker stages ``batch_id``'s rows in (without project and dataset)."""
    return staging_prefix(batch_id) + table_fragment(worker_id)


def new_worker_id(revision: str | None = None) -> str:
    """A worker id as the workers draw it: ``{revision}_{8 hex}``, else ``worker_{12 hex}``."""
    if revision:
        return f"{revision}_{uuid.uuid4().hex[:8]}"
    return f"worker_{uuid.uuid4().hex[:12]}"


def batch_tables(table_ids: list[str], batch_ids: Sequence[str]) -> list[str]:
    """The staging tables of ``batch_ids`` among ``table_ids`` (names only), sorted; each one validated."""
    prefixes = tuple(staging_prefix(batch_id) for batch_id in batch_ids)
    found = sorted(t for t in table_ids if prefixes and t.startswith(prefixes))
    for table_id in found:
        if not STAGING_TABLE_RE.fullmatch(table_id):
            raise InvalidBatchIdError(f"staging table {table_id[:80]!r} has characters no SQL name may carry")
    return found
