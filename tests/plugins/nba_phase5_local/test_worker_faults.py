"""The faults the local worker injects on purpose: reproducible drops, never the same request twice."""

from __future__ import annotations

import pytest

from nba_phase5.core.prediction_requests import request_id
from nba_phase5_local.worker import PredictionWorker, WorkerOptions
from nba_phase5_local.worker_faults import WorkerFaults


def test_drops_are_reproducible_and_never_twice() -> None:
    ids = [request_id("2025-11-28", f"p{i}") for i in range(1000)]
    first = PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=3))
    again = PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=3))
    dropped = [i for i in ids if first.should_drop(i)]
    assert dropped == [i for i in ids if again.should_drop(i)]
    assert 60 < len(dropped) < 140
    assert not any(first.should_drop(i) for i in dropped)  # republished: goes through
    other_seed = PredictionWorker(WorkerOptions(project="p", drop_rate=0.1, seed=4))
    assert [i for i in ids if other_seed.should_drop(i)] != dropped


def test_a_drop_rate_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="drop_rate"):
        WorkerFaults(drop_rate=1.5)
    with pytest.raises(ValueError, match="drop_rate"):
        PredictionWorker(WorkerOptions(project="p", drop_rate=-0.1))
