"""Small helpers over google-cloud-bigquery: parameterised queries and DML inserts.

Every value reaches BigQuery as a typed query parameter, never through string formatting. Rows are
inserted with DML (``INSERT … FROM UNNEST(@rows)``) rather than streaming, so they can be deleted or
merged at once on real BigQuery too.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from nba_phase5 import config

if TYPE_CHECKING:
    from google.cloud import bigquery

INSERT_CHUNK_ROWS = 1000
# Reads and MERGEs are idempotent, so a transient error (5xx, rate limit) is retried with backoff;
# a plain INSERT is not (a lost reply could make a duplicate), and neither is a bad query.
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)
# No BigQuery call waits forever: a job not done in this time fails the task (and its retries decide).
QUERY_TIMEOUT_S = 300.0
log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    from google.api_core import exceptions

    transient = (
        exceptions.TooManyRequests,
        exceptions.InternalServerError,
        exceptions.BadGateway,
        exceptions.ServiceUnavailable,
        exceptions.GatewayTimeout,
    )
    return isinstance(exc, transient)


def with_transient_retry(call: Callable[[], Any], what: str) -> Any:
    """``call()``, retried on transient BigQuery errors after 1, 2, 4, 8 and 16 s, then re-raised."""
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            return call()
        except Exception as exc:
            if delay is None or not is_transient(exc):
                raise
            log.warning(
                "Transient BigQuery error on %s (attempt %d): %s; retrying in %.0f s", what, attempt, exc, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


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


def api_query_parameters(params: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``{name: {"type": T, "value": v}}`` in the REST API's form, for the provider's BigQuery operators.

    ``ARRAY<T>`` values are lists (or a comma-separated string, as Jinja renders them).
    """
    rendered = []
    for name, spec in params.items():
        type_, value = str(spec["type"]), spec["value"]
        if type_.startswith("ARRAY<"):
            items = value.split(",") if isinstance(value, str) else list(value)
            rendered.append(
                {
                    "name": name,
                    "parameterType": {"type": "ARRAY", "arrayType": {"type": type_[6:-1]}},
                    "parameterValue": {"arrayValues": [{"value": item} for item in items]},
                }
            )
        else:
            rendered.append({"name": name, "parameterType": {"type": type_}, "parameterValue": {"value": value}})
    return rendered


def run_query(
    client: bigquery.Client,
    sql: str,
    params: Mapping[str, object] | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run ``sql`` with named parameters (the job labelled with ``labels``) and return the rows as dicts."""
    from google.cloud import bigquery

    job_config = bigquery.QueryJobConfig(
        query_parameters=[query_parameter(k, v) for k, v in (params or {}).items()],
        use_legacy_sql=False,
        labels=dict(labels or {}),
    )
    first_line = sql.strip().splitlines()[0][:80] if sql.strip() else "query"

    def query() -> list[Any]:
        return list(client.query(sql, job_config=job_config, timeout=60).result(timeout=QUERY_TIMEOUT_S))

    rows = with_transient_retry(query, first_line)
    return [dict(row.items()) for row in rows]


def table_schema(table_name: str) -> list[dict[str, Any]]:
    spec = json.loads((config.include_dir() / "schemas" / f"{table_name}.json").read_text())
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
        job = client.query(
            sql,
            job_config=bigquery.QueryJobConfig(
                query_parameters=[bigquery.ArrayQueryParameter("rows", "STRUCT", structs)],
                use_legacy_sql=False,
                labels=dict(labels or {}),
            ),
        )
        job.result(timeout=QUERY_TIMEOUT_S)
        inserted += job.num_dml_affected_rows or 0
    return inserted


def delete_date(client: bigquery.Client, table_name: str, column: str, day: date, **equals: str) -> int:
    """Delete one date's rows (optionally narrowed by string columns); returns the count."""
    from google.cloud import bigquery

    where = [f"{column} = @day"] + [f"{k} = @{k}" for k in equals]
    sql = f"DELETE FROM `{client.project}.{table_name}` WHERE " + " AND ".join(where)  # noqa: S608
    params = [query_parameter("day", day)] + [query_parameter(k, v) for k, v in equals.items()]
    job = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
    job.result(timeout=QUERY_TIMEOUT_S)
    return job.num_dml_affected_rows or 0
