"""BigQuery's DML conflicts are retried, jittered and bounded; other errors keep their own rules."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions

from nba_phase5.bigquery import bq

CONFLICT = "Could not serialize access to table p:nba_reference.processor_run_history due to concurrent update"


class Script:
    """A call that raises each of ``errors`` in turn, then returns ``"done"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(bq.time, "sleep", delays.append)
    return delays


@pytest.mark.parametrize("idempotent", [True, False], ids=["merge", "insert"])
def test_a_conflict_is_retried_for_any_statement(idempotent: bool, slept: list[float]) -> None:
    # A conflicted job changed nothing, so even an INSERT (never retried after a 5xx) runs again.
    call = Script(exceptions.BadRequest(CONFLICT), exceptions.BadRequest(CONFLICT))
    assert bq.with_transient_retry(call, "MERGE run history", idempotent=idempotent) == "done"
    assert call.calls == 3
    assert len(slept) == 2


def test_conflict_waits_are_jittered_below_a_doubling_cap(slept: list[float]) -> None:
    call = Script(*[exceptions.BadRequest(CONFLICT)] * bq.CONFLICT_RETRIES)
    bq.with_transient_retry(call, "MERGE")
    caps = [bq.CONFLICT_BASE_DELAY_S * 2**n for n in range(bq.CONFLICT_RETRIES)]
    assert all(0 <= delay <= cap for delay, cap in zip(slept, caps, strict=True)), slept
    assert len(set(slept)) > 1  # jittered: two writers that collided do not collide again in step


def test_conflicts_are_bounded_then_the_error_goes_up(slept: list[float]) -> None:
    call = Script(*[exceptions.BadRequest(CONFLICT)] * (bq.CONFLICT_RETRIES + 1))
    with pytest.raises(exceptions.BadRequest, match="concurrent update"):
        bq.with_transient_retry(call, "MERGE")
    assert call.calls == bq.CONFLICT_RETRIES + 1


@pytest.mark.parametrize(
    ("error", "idempotent", "calls"),
    [
        (exceptions.BadRequest("Syntax error: Unexpected identifier"), True, 1),
        (exceptions.ServiceUnavailable("503"), False, 1),  # a lost reply to an INSERT could duplicate rows
        (exceptions.ServiceUnavailable("503"), True, 2),
    ],
    ids=["bad-query", "insert-503", "merge-503"],
)
def test_other_errors_keep_their_rules(error: Exception, idempotent: bool, calls: int, slept: list[float]) -> None:
    call = Script(error)
    if calls == 1:
        with pytest.raises(type(error)):
            bq.with_transient_retry(call, "statement", idempotent=idempotent)
    else:
        assert bq.with_transient_retry(call, "statement", idempotent=idempotent) == "done"
    assert call.calls == calls


def test_inserts_and_deletes_run_again_after_a_conflict(slept: list[float]) -> None:
    class Job:
        num_dml_affected_rows = 3

        def result(self, **kwargs: Any) -> None:
            pass

    class Client:
        project = "p"

        def __init__(self) -> None:
            self.queries = 0

        def query(self, sql: str, **kwargs: Any) -> Job:
            self.queries += 1
            if self.queries == 1:
                raise exceptions.BadRequest(CONFLICT)
            return Job()

    client: Any = Client()
    assert bq.insert_rows(client, "nba_reference.phase5_handoffs", [{"batch_id": "b"}]) == 3
    assert client.queries == 2
    client = Client()
    assert bq.delete_date(client, "nba_reference.phase5_handoffs", "game_date", bq.date(2025, 1, 2)) == 3
    assert client.queries == 2
