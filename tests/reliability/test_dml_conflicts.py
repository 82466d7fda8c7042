"""BigQuery's DML conflicts, answered by the strict proxy as production answers them, during a whole day.

"Could not serialize access to table … due to concurrent update" fails one of two statements that change a
table at once and leaves the table as it was (docs: data-manipulation-language#dml_statement_conflicts).
Here the run-history MERGEs (the run's first task writes its row `running`) are failed that way three times
in a row: the run still ends `success`, its row is written once, and the predictions are all there.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from helpers import prediction_count, ready_players, run_dag, run_history, running_worker
from nba_phase5 import config
from nba_phase5_local.seeding import seed_day

pytestmark = pytest.mark.integration


def test_conflicted_merges_are_retried_and_the_day_succeeds(
    stack: Any, stack_strict: Any, bq: Any, phase5_dag: Any, drain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = date(2025, 9, 9)
    drain(config.PREDICTION_REQUESTS_SUBSCRIPTION)
    seed_day(bq, day, players=40, ready_pct=100)
    # No task retries: a conflict that is not retried inside the statement's own call fails the run.
    for task_id in (config.TASKS.game_day, config.TASKS.record):
        monkeypatch.setattr(phase5_dag.get_task(task_id), "retries", 0)
    stack_strict.arm_conflicts(3, match=r"MERGE\s+`?[\w.-]*processor_run_history")
    with running_worker(stack.project):
        state, tasks = run_dag(phase5_dag, day, skip_event_wait=True)
    assert stack_strict.conflicts_left == 0  # every armed conflict was answered
    assert state == "success", tasks
    [row] = run_history(bq, day)
    assert row["status"] == "success"
    assert prediction_count(bq, day) == len(ready_players(bq, day)) == 40
