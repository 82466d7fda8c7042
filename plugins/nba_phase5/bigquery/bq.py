"""Small helpers over google-cloud-bigquery: parameterised queries and DML inserts.

Every value reaches BigQuery as a typed query parameter, never through string formatting. Rows are
inserted with DML (``INSERT … FROM UNNEST(@rows)``) rather than streaming, so they can be deleted or
merged at once on real BigQuery too.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.core.states import TriggerStatus

if TYPE_CHECKING:
    from google.cloud import bigquery

INSERT_CHUNK_ROWS = 1000
# Reads and MERGEs are idempotent, so a transient error (5xx, rate limit) is retried with backoff;
# a plain INSERT is not (a lost reply could make a duplicate), and neither is a bad query.
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)
# No BigQuery call waits forever: a job not done in this time fails the task (and its retries decide).
QUERY_TIMEOUT_S = 300.0
# BigQuery fails one of two DML statements that change the same table at once ("Could not serialize
# access to table … due to concurrent update") and leaves the table as it was, so any statement, an
# INSERT too, can be run again: up to this many times, after a full-jitter wait under 0.5, 1, 2, 4, 8,
# 16 s (jittered, so the two writers do not collide again), then the error goes up as usual.
CONFLICT_RETRIES = 6
CONFLICT_BASE_DELAY_S = 0.5
CONFLICT_MARK = "due to concurrent update"
# A job lookup retries 5xx answers and dropped connections (google-cloud-bigquery's own retry) for this
# long, not its default 10 minutes: a BigQuery that stays down ends the poll in time for the task's retries.
LOOKUP_RETRY_DEADLINE_S = 60.0
log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.api_core import exceptions

    transient = (
        exceptions.TooManyRequests,
        exceptions.InternalServerError,
        exceptions.BadGateway,
        exceptions.ServiceUnavailable,
        exceptions.GatewayTimeout,
    )
    return isinstance(exc, transient)


def is_concurrent_update(exc: BaseException) -> bool:
    """Whether ``exc`` is BigQuery's DML conflict: the job failed and changed nothing."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.api_core import exceptions

    return isinstance(exc, exceptions.GoogleAPICallError) and CONFLICT_MARK in str(exc)


def with_transient_retry(call: Callable[[], Any], what: str, *, idempotent: bool = True) -> Any:
    """``call()``, retried: after a DML conflict (see ``CONFLICT_RETRIES``) always; after a transient
    error (5xx, rate limit) only when ``idempotent``, after 1, 2, 4, 8 and 16 s; else re-raised."""
    conflicts, transients = 0, 0
    while True:
        try:
            return call()
        except Exception as exc:
            if is_concurrent_update(exc) and conflicts < CONFLICT_RETRIES:
                delay = random.uniform(0, CONFLICT_BASE_DELAY_S * 2**conflicts)
                conflicts += 1
            elif idempotent and is_transient(exc) and transients < len(RETRY_DELAYS_S):
                delay = RETRY_DELAYS_S[transients]
                transients += 1
            else:
                raise
            log.warning(
                "BigQuery error on %s (retry %d): %s; retrying in %.1f s", what, conflicts + transients, exc, delay
            )
            time.sleep(delay)


def _scalar_type(value: object) -> str:
    # bool before int: True is an int.
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, datetime):
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    return "STRING"


def query_parameter(name: str | None, value: object, type_: str | None = None) -> Any:
    """A typed parameter; ``{"type": T, "value": v}`` names the type (for values rendered as strings)."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud import bigquery

    if isinstance(value, (bigquery.ScalarQueryParameter, bigquery.ArrayQueryParameter, bigquery.StructQueryParameter)):
        return value  # already built (struct arrays for DML inserts)
    if isinstance(value, Mapping) and set(value) == {"type", "value"}:
        return query_parameter(name, value["value"], str(value["type"]))
    if type_ and type_.startswith("ARRAY<"):
        # A Jinja-rendered list arrives as "a,b,c".
        if isinstance(value, str):
            items: list[Any] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            items = list(value)  # type: ignore[call-overload]
        return bigquery.ArrayQueryParameter(name, type_[6:-1], items)

    if isinstance(value, (list, tuple)):
        item_type = type_ or (_scalar_type(value[0]) if value else "STRING")
        return bigquery.ArrayQueryParameter(name, item_type, list(value))
    return bigquery.ScalarQueryParameter(name, type_ or _scalar_type(value), value)  # type: ignore[arg-type]


def query_config(params: Mapping[str, object] | None, labels: Mapping[str, str] | None) -> bigquery.QueryJobConfig:
    """A standard-SQL job's configuration: every value a typed parameter, the job labelled."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud import bigquery

    return bigquery.QueryJobConfig(
        query_parameters=[query_parameter(k, v) for k, v in (params or {}).items()],
        use_legacy_sql=False,
        labels=dict(labels or {}),
    )


def run_query(
    client: bigquery.Client,
    sql: str,
    params: Mapping[str, object] | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run ``sql`` with named parameters (the job labelled with ``labels``) and return the rows as dicts."""
    job_config = query_config(params, labels)
    first_line = sql.strip().splitlines()[0][:80] if sql.strip() else "query"

    def query() -> list[Any]:
        return list(client.query(sql, job_config=job_config, timeout=60).result(timeout=QUERY_TIMEOUT_S))

    rows = with_transient_retry(query, first_line)
    return [dict(row.items()) for row in rows]


def start_query(
    client: bigquery.Client,
    sql: str,
    params: Mapping[str, object] | None = None,
    labels: Mapping[str, str] | None = None,
) -> bigquery.QueryJob:
    """Insert a query job (parameters typed, labelled) in the client's location, without waiting for it."""
    job_config = query_config(params, labels)
    job: bigquery.QueryJob = with_transient_retry(
        lambda: client.query(sql, job_config=job_config, timeout=60), "insert"
    )
    return job


def _plain(value: object) -> object:
    """A result value as JSON and the triggerer's frames carry it (dates and decimals as text)."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def lookup_retry() -> Any:
    """The retry of a job lookup: the client's own, cut to ``LOOKUP_RETRY_DEADLINE_S``."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud.bigquery.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_deadline(LOOKUP_RETRY_DEADLINE_S)


def job_outcome(job: Any) -> dict[str, Any] | None:
    """``None`` while ``job`` runs; else ``{"status": "error", "message"}`` or ``{"status": "success",
    "row": first row as a dict or None}``: JSON-plain, so a trigger can yield it as its event."""
    if job.state != "DONE":
        return None
    if job.error_result:
        return {"status": str(TriggerStatus.ERROR), "message": f"BigQuery job {job.job_id} failed: {job.error_result}"}
    rows = list(job.result(max_results=1, timeout=QUERY_TIMEOUT_S, retry=lookup_retry()))
    row = {key: _plain(value) for key, value in rows[0].items()} if rows else None
    return {"status": str(TriggerStatus.SUCCESS), "message": f"BigQuery job {job.job_id} done", "row": row}


def table_schema(table_name: str) -> list[dict[str, Any]]:
    # A sandbox's table (config.DATASET_SUFFIX) has the schema of the platform's table it stands for.
    spec = json.loads((config.include_dir() / "schemas" / f"{config.unsandboxed(table_name)}.json").read_text())
    fields: list[dict[str, Any]] = spec["schema"]
    return fields


@functools.cache
def parameter_types(table_name: str) -> dict[str, str]:
    """Each column's query-parameter type, from ``include/schemas`` (JSON travels as STRING, see below)."""
    return {name: type_ for name, type_, _ in map(_insert_column, table_schema(table_name))}


def _insert_column(field: Mapping[str, Any]) -> tuple[str, str, str]:
    """(name, parameter type, SELECT expression) for one schema field of an INSERT … FROM UNNEST(@rows)."""
    name, type_ = str(field["name"]), str(field["type"])
    if field.get("mode") == "REPEATED":
        return name, f"ARRAY<{type_}>", f"r.{name}"
    if type_ == "JSON":
        # A JSON query parameter is not portable (bqemulator refuses it): the value travels as a STRING
        # and is parsed in the query, which real BigQuery accepts too.
        return name, "STRING", f"PARSE_JSON(r.{name})"
    return name, type_, f"r.{name}"


def _insert_value(value: object, type_: str, expression: str) -> object:
    if type_.startswith("ARRAY<"):
        return [] if value is None else value  # BigQuery stores a NULL array as []
    if expression.startswith("PARSE_JSON(") and value is not None and not isinstance(value, str):
        return json.dumps(value, default=str)  # a str is taken as JSON text already
    return value


def insert_rows(
    client: bigquery.Client,
    table_name: str,
    rows: Sequence[Mapping[str, object]],
    labels: Mapping[str, str] | None = None,
) -> int:
    """Insert ``rows`` into ``dataset.table`` with DML (jobs labelled ``labels``); columns and types come
    from its schema file.

    JSON columns take a dict, a list or JSON text; REPEATED columns take a list (None is empty).
    """
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud import bigquery

    columns = [_insert_column(f) for f in table_schema(table_name)]
    names = [name for name, _, _ in columns]
    unknown = {key for row in rows for key in row} - set(names)
    if unknown:
        raise ValueError(f"{table_name} has no columns {sorted(unknown)}")
    column_list = ", ".join(names)
    sql = (
        f"INSERT INTO `{client.project}.{table_name}` ({column_list}) "  # noqa: S608 - names from schema files
        f"SELECT {', '.join(expression for _, _, expression in columns)} FROM UNNEST(@rows) AS r"
    )
    inserted = 0
    for start in range(0, len(rows), INSERT_CHUNK_ROWS):
        chunk = rows[start : start + INSERT_CHUNK_ROWS]
        structs = [
            bigquery.StructQueryParameter(
                None, *(query_parameter(n, _insert_value(row.get(n), t, e), t) for n, t, e in columns)
            )
            for row in chunk
        ]
        job_config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ArrayQueryParameter("rows", "STRUCT", structs)],
            use_legacy_sql=False,
            labels=dict(labels or {}),
        )
        inserted += _run_dml(client, sql, job_config, f"insert into {table_name}")
    return inserted


def _run_dml(client: bigquery.Client, sql: str, job_config: bigquery.QueryJobConfig, what: str) -> int:
    """One DML job: run again after a conflict only (a lost reply to an INSERT could duplicate rows)."""

    def run() -> int:
        job = client.query(sql, job_config=job_config)
        job.result(timeout=QUERY_TIMEOUT_S)
        return int(job.num_dml_affected_rows or 0)

    affected: int = with_transient_retry(run, what, idempotent=False)
    return affected


def delete_date(client: bigquery.Client, table_name: str, column: str, day: date, **equals: str) -> int:
    """Delete one date's rows (optionally narrowed by string columns); returns the count."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud import bigquery

    where = [f"{column} = @day"] + [f"{k} = @{k}" for k in equals]
    sql = f"DELETE FROM `{client.project}.{table_name}` WHERE " + " AND ".join(where)  # noqa: S608
    params = [query_parameter("day", day)] + [query_parameter(k, v) for k, v in equals.items()]
    return _run_dml(client, sql, bigquery.QueryJobConfig(query_parameters=params), f"{table_name}: delete a date")
