"""The strict BigQuery proxy (tests/strict_bigquery.py): the partition-filter rule on its own, then each rule
through google-cloud-bigquery against bqemulator behind the proxy, as production would answer."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from nba_phase5 import config
from strict_bigquery_rules import mutated_tables, unfiltered_tables

REQUIRED = {("ds", "t"): "d", ("ds", "u"): "d"}  # ds.t and ds.u require a filter on d

PRUNED = [
    "SELECT * FROM ds.t WHERE d = @d",
    "SELECT * FROM ds.t WHERE d = @d AND f = 1",  # the docs' AND example
    "SELECT * FROM ds.t WHERE (d = '2025-01-01' OR d = '2025-01-02')",  # every branch reads only d
    "SELECT * FROM ds.t AS x WHERE x.d BETWEEN @a AND @b",
    "SELECT * FROM `p.ds.t` WHERE t.d IN UNNEST(@days)",
    "SELECT * FROM ds.t WHERE d = CURRENT_DATE()",  # constant
    "SELECT a.k FROM ds.t AS a JOIN ds.u AS b ON a.k = b.k AND b.d = @d WHERE a.d = @d",
    "WITH c AS (SELECT * FROM ds.t WHERE d = @d) SELECT * FROM c",
    "WITH c AS (SELECT * EXCEPT (f) FROM ds.t) SELECT * FROM c WHERE d = @d",  # pushed down into the CTE
    "SELECT * FROM (SELECT d AS day, f FROM ds.t) AS s WHERE s.day = @d",  # through an alias
    "SELECT * FROM (SELECT d FROM ds.t UNION ALL SELECT d FROM ds.u) WHERE d = @d",
    "SELECT * FROM (SELECT d, COUNT(*) AS n FROM ds.t GROUP BY d) WHERE d = @d",
    "SELECT (SELECT COUNT(*) FROM ds.t WHERE d = @d) AS n",
    "SELECT * FROM ds.other",  # no filter required
    "INSERT INTO ds.t (d, f) VALUES (@d, 1)",  # writing needs no filter
    "INSERT INTO ds.t (d, f) SELECT d, f FROM ds.u WHERE d = @d",
    "DELETE FROM ds.t WHERE d = @d AND f = 1",
    "UPDATE ds.t SET f = 2 WHERE d = @d",
    "UPDATE ds.t SET f = s.f FROM ds.u AS s WHERE t.d = @d AND s.d = @d AND t.k = s.k",
    # MERGE: the docs' merge_condition, search_condition and ON FALSE forms, and a filtered subquery source
    "MERGE ds.t T USING (SELECT * FROM ds.u WHERE d = @d) S ON T.d = @d AND T.k = S.k"
    " WHEN MATCHED THEN UPDATE SET f = S.f WHEN NOT MATCHED THEN INSERT (k, d) VALUES (S.k, S.d)",
    "MERGE ds.t T USING ds.u S ON T.k = S.k AND T.d = @d AND S.d = @d WHEN MATCHED THEN DELETE",
    "MERGE ds.t T USING src S ON T.k = S.k"
    " WHEN MATCHED AND T.d = @a THEN DELETE WHEN NOT MATCHED BY SOURCE AND T.d = @b THEN DELETE",
    "MERGE ds.t T USING ds.u S ON FALSE"
    " WHEN NOT MATCHED AND S.d = @d THEN INSERT ROW WHEN NOT MATCHED BY SOURCE AND T.d = @d THEN DELETE",
    "MERGE ds.t T USING (SELECT * FROM ds.u) S ON T.d = @d AND S.d = @d AND T.k = S.k WHEN MATCHED THEN DELETE",
]

UNPRUNED = [
    ("SELECT * FROM ds.t", "ds.t"),
    ("SELECT * FROM ds.t WHERE f = 1", "ds.t"),
    ("SELECT * FROM ds.t WHERE (d = @d OR f = 1)", "ds.t"),  # the docs' "is not sufficient"
    ("SELECT * FROM ds.t WHERE DATE_ADD(d, INTERVAL 1 DAY) > e", "ds.t"),  # needs a second field
    ("SELECT * FROM ds.t WHERE d = (SELECT MAX(d) FROM ds.other)", "ds.t"),  # dynamic
    ("SELECT * FROM ds.t AS x JOIN ds.u AS y ON x.k = y.k WHERE y.d = @d", "ds.t"),  # the other table's
    ("SELECT * FROM ds.t AS x LEFT JOIN ds.u AS y ON x.d = @d WHERE y.d = @d", "ds.t"),  # keeps every x row
    ("WITH c AS (SELECT * FROM ds.t) SELECT * FROM c WHERE d = @d UNION ALL SELECT * FROM c", "ds.t"),
    ("SELECT * FROM (SELECT * FROM ds.t LIMIT 10) WHERE d = @d", "ds.t"),
    ("SELECT * FROM (SELECT MAX(d) AS d FROM ds.t) WHERE d = @d", "ds.t"),
    ("INSERT INTO ds.other (d) SELECT d FROM ds.t", "ds.t"),  # reading does need one
    ("DELETE FROM ds.t WHERE f = 1", "ds.t"),
    ("DELETE ds.t WHERE f = 1", "ds.t"),  # BigQuery's DELETE without FROM
    ("UPDATE ds.t SET f = 1 WHERE TRUE", "ds.t"),
    ("UPDATE ds.other SET f = u.f FROM ds.u WHERE other.k = u.k", "ds.u"),
    ("MERGE ds.t T USING ds.u S ON T.k = S.k AND S.d = @d WHEN MATCHED THEN DELETE", "ds.t"),
    ("MERGE ds.t T USING ds.u S ON T.d = @d AND T.k = S.k WHEN MATCHED THEN DELETE", "ds.u"),
    # "must scan the entire target table to compute the WHEN NOT MATCHED BY SOURCE clause"
    ("MERGE ds.t T USING src S ON T.d = @d AND T.k = S.k WHEN NOT MATCHED BY SOURCE THEN DELETE", "ds.t"),
    (
        "MERGE ds.t T USING src S ON T.k = S.k WHEN MATCHED AND T.d = @d THEN DELETE WHEN NOT MATCHED THEN INSERT ROW",
        "ds.t",
    ),
]


@pytest.mark.parametrize("sql", PRUNED)
def test_a_filter_usable_for_partition_elimination_passes(sql: str) -> None:
    assert unfiltered_tables(sql, REQUIRED) == []


@pytest.mark.parametrize(("sql", "table"), UNPRUNED)
def test_a_read_without_one_is_refused(sql: str, table: str) -> None:
    assert unfiltered_tables(sql, REQUIRED) == [(table, "d")]


def test_only_mutating_dml_can_conflict() -> None:
    assert [t.name for t in mutated_tables("UPDATE ds.a SET f = 1 WHERE TRUE; DELETE ds.b WHERE TRUE")] == ["a", "b"]
    assert [t.name for t in mutated_tables("MERGE ds.c T USING ds.d S ON FALSE WHEN NOT MATCHED THEN INSERT ROW")] == [
        "c"
    ]
    assert mutated_tables("INSERT INTO ds.a (f) VALUES (1)") == mutated_tables("SELECT 1 FROM ds.a") == []


# --- Through the proxy, against bqemulator ----------------------------------------------------------------


def client(url: str, project: str, location: str | None) -> Any:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    options = ClientOptions(api_endpoint=url)
    return bigquery.Client(project, AnonymousCredentials(), location=location, client_options=options)


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


PREDICTIONS = config.PREDICTIONS_TABLE  # requires a filter on game_date (include/schemas)
HERE = config.bigquery_location()


@pytest.mark.integration
def test_jobs_are_found_only_in_their_location(stack_strict: Any, stack: Any) -> None:
    from google.api_core.exceptions import NotFound

    sql = f"SELECT COUNT(*) AS n FROM {PREDICTIONS} WHERE game_date = '2020-01-01'"
    located = client(stack_strict.url, stack.project, HERE)
    assert [row.n for row in located.query(sql).result()] == [0]
    # No location: the job runs where its dataset is and says so; the client follows it, as in production.
    job = client(stack_strict.url, stack.project, None).query(sql)
    assert job.location == HERE
    assert [row.n for row in job.result()] == [0]
    with pytest.raises(
        NotFound, match=f"Not found: Dataset {stack.project}:nba_predictions was not found in location US"
    ):
        client(stack_strict.url, stack.project, "US").query(sql).result()
    # A lookup must name the location: the Python client without it, and the REST calls production rejects.
    with pytest.raises(NotFound, match=f"Not found: Job {stack.project}:{job.job_id}"):
        client(stack_strict.url, stack.project, None).get_job(job.job_id)
    with pytest.raises(NotFound):
        located.get_job(job.job_id, location="US")
    assert located.get_job(job.job_id, location=HERE.upper()).state == "DONE"  # case does not matter
    base = f"{stack_strict.url}/bigquery/v2/projects/{stack.project}"
    for method, path in [("GET", "jobs/{}"), ("GET", "queries/{}"), ("POST", "jobs/{}/cancel")]:
        url = f"{base}/{path.format(job.job_id)}"
        body: dict[str, Any] | None = {} if method == "POST" else None
        status, answer = http(method, url, body)
        assert (status, answer["error"]["errors"][0]["reason"]) == (404, "notFound")
        assert http(method, f"{url}?location={HERE}", body)[0] == 200
    # A job that reads no dataset may run anywhere, and is found only there.
    anywhere = client(stack_strict.url, stack.project, "US").query("SELECT 1 AS one")
    assert [row.one for row in anywhere.result()] == [1]
    assert located.get_job(anywhere.job_id, location="US").location == "US"
    with pytest.raises(NotFound):
        located.get_job(anywhere.job_id, location=HERE)


@pytest.mark.integration
def test_a_query_without_a_partition_filter_fails_as_in_production(stack_strict: Any, stack: Any) -> None:
    from google.api_core.exceptions import BadRequest
    from google.cloud import bigquery

    unfiltered = f"SELECT COUNT(*) AS n FROM {PREDICTIONS}"
    message = (
        f"Cannot query over table '{PREDICTIONS}' without a filter over column(s) 'game_date' that can be used "
        "for partition elimination"
    )
    bq = client(stack_strict.url, stack.project, HERE)
    emulator = client("http://{}:{}".format(*stack_strict.upstream), stack.project, HERE)
    assert len(list(emulator.query(unfiltered).result())) == 1  # bqemulator itself runs it
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        bq.query(unfiltered).result()  # jobs.insert, then the failed job's status and results
    with pytest.raises(BadRequest, match="partition elimination"):
        bq.query_and_wait(unfiltered)  # jobs.query
    with pytest.raises(BadRequest, match="partition elimination"):
        bq.query(unfiltered, job_config=bigquery.QueryJobConfig(dry_run=True))
    job = bq.query(unfiltered)
    failed = bq.get_job(job.job_id)
    assert (failed.state, failed.error_result["reason"]) == ("DONE", "invalidQuery")
    results = f"{stack_strict.url}/bigquery/v2/projects/{stack.project}/queries/{job.job_id}?location={HERE}"
    assert http("GET", results)[0] == 400
    assert http("GET", results)[1]["error"]["message"] == message
    # With a filter on game_date, or writing without one, it runs.
    assert [row.n for row in bq.query(f"{unfiltered} WHERE game_date = '2020-01-01'").result()] == [0]
    assert stack_strict.refusals[-1].rule == "partition_filter"


@pytest.fixture
def scratch(stack: Any) -> Any:
    """An unpartitioned table with one row (v = 1), dropped afterwards."""
    bq = client(stack.env()["BIGQUERY_EMULATOR_HOST"], stack.project, HERE)
    table = f"{stack.project}.nba_reference.strict_conflict_{uuid.uuid4().hex[:8]}"
    from google.cloud import bigquery

    bq.create_table(bigquery.Table(table, schema=[bigquery.SchemaField("v", "INT64")]))
    bq.query(f"INSERT INTO `{table}` (v) VALUES (1)").result()
    yield bq, table
    bq.delete_table(table, not_found_ok=True)


@pytest.mark.integration
def test_armed_conflicts_fail_mutating_dml_as_production_does(stack_strict: Any, scratch: Any) -> None:
    from google.api_core.exceptions import BadRequest

    bq, table = scratch

    def values() -> list[int]:
        return sorted(row.v for row in bq.query(f"SELECT v FROM `{table}`").result())

    project, dataset_table = table.split(".", 1)
    stack_strict.arm_conflicts(1, match="strict_conflict_")
    bq.query(f"INSERT INTO `{table}` (v) VALUES (5)").result()  # an INSERT never conflicts
    with pytest.raises(BadRequest) as raised:
        bq.query(f"UPDATE `{table}` SET v = v + 1 WHERE TRUE").result()
    assert f"Could not serialize access to table {project}:{dataset_table} due to concurrent update" in str(
        raised.value
    )
    assert values() == [1, 5]  # the conflicted job changed nothing
    bq.query(f"UPDATE `{table}` SET v = v + 1 WHERE TRUE").result()  # only the next one was armed
    assert values() == [2, 6]
    # Only statements whose SQL matches; armed from another process over HTTP; MERGE through jobs.query.
    stack_strict.arm_conflicts(1, match="no_such_table")
    bq.query(f"DELETE FROM `{table}` WHERE v = 6").result()
    status, state = http("POST", f"{stack_strict.url}/_strict/conflicts", {"count": 1})
    assert (status, state["conflicts_left"]) == (200, 1)
    merge = f"MERGE `{table}` T USING (SELECT 2 AS v) S ON T.v = S.v WHEN MATCHED THEN DELETE"
    with pytest.raises(BadRequest, match="due to concurrent update"):
        bq.query_and_wait(merge)
    assert values() == [2]
    assert http("GET", f"{stack_strict.url}/_strict/state")[1]["conflicts_left"] == 0


def test_every_partitioned_table_requires_its_filter_unless_its_schema_says_not() -> None:
    # As provision creates them on real GCP (nba_phase5_local.provisioning.build_table): the flag defaults to true.
    from strict_bigquery_rules import required_partition_filters

    required = {f"{dataset}.{table}" for dataset, table in required_partition_filters()}
    assert "nba_reference.phase5_event_inbox" in required  # no flag in its schema file: required
    assert "nba_reference.pipeline_alerts" in required
    assert "nba_reference.processor_run_history" not in required  # "require_partition_filter": false
