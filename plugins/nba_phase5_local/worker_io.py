"""What the local stand-in worker reads and writes in BigQuery: feature rows in, staging tables out.

The platform's worker never writes ``player_prop_predictions`` (docs/platform.md §6, §7.6): it loads
each request's rows into ``nba_predictions._staging_{batch_id}_{worker_id}`` with a load job (not DML),
WRITE_APPEND and CREATE_IF_NEEDED, with the main predictions table's schema and no partitioning; the
DAG's consolidation merges those tables. Every staging name comes from :mod:`nba_phase5.core.staging`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bigquery.bq import run_query
from nba_phase5.core.staging import STAGING_DATASET, staging_table_id
from nba_phase5_local.worker_requests import WorkerRequest, dataset

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)
FEATURES_SQL = """
SELECT game_date, player_lookup, universal_player_id, features, feature_names, feature_quality_score
FROM `{table}`
WHERE game_date IN UNNEST(@game_dates) AND player_lookup IN UNNEST(@players)
"""
_FEATURE_DATASET, _FEATURE_TABLE = config.FEATURE_STORE_TABLE.split(".")
_PREDICTIONS_DATASET, _PREDICTIONS_TABLE = config.PREDICTIONS_TABLE.split(".")
#: A feature row by (dataset prefix, game_date, player_lookup).
FeatureKey = tuple[str, str, str]


def describe(exc: BaseException) -> str:
    """``Type: message``, its first line only, for logs."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:500]}" if text else type(exc).__name__


def feature_key(request: WorkerRequest) -> FeatureKey:
    """Where a request's feature row is filed in :func:`fetch_features`' answer."""
    return (request.dataset_prefix or "", *request.feature_key)


def fetch_features(client: bigquery.Client, requests: Iterable[WorkerRequest]) -> dict[FeatureKey, dict[str, Any]]:
    """The feature rows of ``requests`` (all :func:`~nba_phase5_local.worker_requests.queryable`): one query per
    dataset prefix; raises when a query fails.

    :param client: a BigQuery client.
    :param requests: the requests of one pull.
    """
    by_prefix: dict[str, list[WorkerRequest]] = {}
    for request in requests:
        by_prefix.setdefault(request.dataset_prefix or "", []).append(request)
    found: dict[FeatureKey, dict[str, Any]] = {}
    for prefix, group in by_prefix.items():
        table = f"{client.project}.{dataset(group[0], name=_FEATURE_DATASET)}.{_FEATURE_TABLE}"
        rows = run_query(
            client,
            FEATURES_SQL.format(table=table),
            {
                "game_dates": {"type": "ARRAY<DATE>", "value": sorted({r.game_day for r in group})},
                "players": sorted({r.player_lookup for r in group}),
            },
        )
        for row in rows:
            found[(prefix, row["game_date"].isoformat(), row["player_lookup"])] = row
    return found


def _json_value(value: Any) -> Any:
    # load_table_from_json sends JSON: NUMERIC as exact strings, dates and timestamps in ISO form.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


class StagingSchemaError(RuntimeError):
    """The live predictions table lacks a column the rows carry: every write fails alike (no request's fault)."""


class StagingWriter:
    """Loads rows into staging tables, as the platform's ``BatchStagingWriter`` does (BSW 286-356)."""

    def __init__(self, client: bigquery.Client) -> None:
        self.client = client
        # The main table's schema per dataset, read (and the row keys checked against it) on first use.
        self._schemas: dict[str, list[Any]] = {}

    def main_schema(self, dataset_id: str, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The predictions table's schema in ``dataset_id``; the first write of a dataset also checks every
        row key against it (BSW 293-312): a key the live table lacks fails the write.

        :param dataset_id: ``nba_predictions`` or a prefixed copy.
        :param rows: the rows about to be written.
        """
        if dataset_id not in self._schemas:
            table = self.client.get_table(f"{self.client.project}.{dataset_id}.{_PREDICTIONS_TABLE}")
            columns = {f.name for f in table.schema}
            unknown = sorted({key for row in rows for key in row} - columns)
            if unknown:
                raise StagingSchemaError(f"{dataset_id}.{_PREDICTIONS_TABLE} has no column " + ", ".join(unknown))
            self._schemas[dataset_id] = list(table.schema)
        return self._schemas[dataset_id]

    def load(self, request: WorkerRequest, *, batch: str, worker_id: str, rows: Sequence[Mapping[str, Any]]) -> str:
        """Append ``rows`` to the staging table of (``batch``, ``worker_id``) in ``request``'s dataset, with
        one load job; returns the table id. Raises when the load fails (nothing of it is appended).

        :param request: any request of the rows (it names the dataset: ``dataset_prefix``).
        :param batch: the batch part of the name (the batch id or ``fallback_{epoch_ms}``).
        :param worker_id: the worker part of the name (:func:`nba_phase5.core.staging.new_worker_id`).
        :param rows: the rows, as :func:`nba_phase5_local.worker_answers.staged_row` made them.
        """
        # Imported here, as ruff TID253 asks: a cloud client loads only for the command that uses it.
        from google.cloud import bigquery

        dataset_id = dataset(request, name=STAGING_DATASET)
        schema = self.main_schema(dataset_id, list(rows))
        table_id = f"{self.client.project}.{dataset_id}.{staging_table_id(batch, worker_id)}"
        job_config = bigquery.LoadJobConfig(
            schema=schema,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        )
        payload = [{key: _json_value(value) for key, value in row.items()} for row in rows]
        self.client.load_table_from_json(payload, table_id, job_config=job_config).result(timeout=120)
        return table_id
