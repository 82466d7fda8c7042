"""Phase5BigQueryHook with a fake client: typed parameters, labels, retries, a stopped emulator."""

from __future__ import annotations

import json
import socket
from datetime import date
from typing import Any

import pytest
from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

from nba_phase5.airflow.hooks.bigquery import Phase5BigQueryHook
from nba_phase5.bigquery import bq
from nba_phase5.bigquery.clients import EmulatorUnreachableError


class Row(dict):
    """A result row: google-cloud-bigquery's Row has ``items()`` too."""


class FakeJob:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def result(self, timeout: float) -> list[Row]:
        return [Row(r) for r in self.rows]


class FakeClient:
    """Records each query and its job configuration; answers from ``script`` (rows, or an exception)."""

    project = "p"

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.jobs: list[tuple[str, Any]] = []

    def query(self, sql: str, job_config: Any, timeout: float) -> FakeJob:
        self.jobs.append((sql, job_config))
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        return FakeJob(answer)


@pytest.fixture(autouse=True)
def connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Google connection as an environment variable, as a deployment may define it; no emulators."""
    extra = {"project": "p", "is_anonymous": True}
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(bq, "RETRY_DELAYS_S", (0.0, 0.0))  # retries without the waits


@pytest.fixture
def hook() -> Any:
    return Phase5BigQueryHook(gcp_conn_id="google_cloud_default", job_labels={"airflow-dag": "d", "airflow-task": "t"})


def use(monkeypatch: pytest.MonkeyPatch, client: FakeClient) -> None:
    monkeypatch.setattr(BigQueryHook, "get_client", lambda self, project_id=None, location=None: client)


def test_queries_are_standard_sql_with_typed_parameters_and_the_jobs_labels(hook, monkeypatch) -> None:
    client = FakeClient([{"done": True, "players_ready": 7}])
    use(monkeypatch, client)
    rows = hook.query_rows(
        "SELECT 1",
        {"game_date": date(2025, 11, 28), "players": ["a", "b"], "since": {"type": "TIMESTAMP", "value": None}},
    )
    assert rows == [{"done": True, "players_ready": 7}]
    [(sql, config)] = client.jobs
    assert sql == "SELECT 1"
    assert config.use_legacy_sql is False
    assert config.labels == {"airflow-dag": "d", "airflow-task": "t"}
    types = {p.name: getattr(p, "type_", None) or p.array_type for p in config.query_parameters}
    assert types == {"game_date": "DATE", "players": "STRING", "since": "TIMESTAMP"}


def test_a_transient_error_is_retried_and_a_bad_query_is_not(hook, monkeypatch) -> None:
    from google.api_core import exceptions

    flaky = FakeClient(exceptions.ServiceUnavailable("503"), [{"n": 1}])
    use(monkeypatch, flaky)
    assert hook.query_rows("SELECT 1") == [{"n": 1}]
    assert len(flaky.jobs) == 2

    bad = FakeClient(exceptions.BadRequest("syntax"))
    use(monkeypatch, bad)
    with pytest.raises(exceptions.BadRequest):
        hook.query_rows("SELEC 1")
    assert len(bad.jobs) == 1


def test_without_labels_of_its_own_it_takes_none_outside_a_task(monkeypatch) -> None:
    client = FakeClient([])
    use(monkeypatch, client)
    Phase5BigQueryHook(gcp_conn_id="google_cloud_default").query_rows("SELECT 1")
    assert client.jobs[0][1].labels == {}


def test_a_stopped_emulator_fails_at_once_naming_the_fix(hook, monkeypatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", f"http://127.0.0.1:{closed_port}")
    use(monkeypatch, FakeClient([]))
    with pytest.raises(EmulatorUnreachableError, match="make stack-up"):
        hook.query_rows("SELECT 1")
