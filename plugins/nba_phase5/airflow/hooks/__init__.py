"""The package's hooks over the Google provider's: BigQuery (queries, jobs, consolidation) and Pub/Sub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nba_phase5 import config

if TYPE_CHECKING:
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook


def bigquery_hook() -> Phase5BigQueryHook:
    """The tasks' BigQuery hook on the package's connection."""
    # Imported here to keep the DAG file's parse light: the provider's hook loads the BigQuery client.
    from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook

    return Phase5BigQueryHook(gcp_conn_id=config.GCP_CONN_ID)
