"""Batch ids and staging-table names, as the platform's workers and consolidator spell them
(predictions/shared/batch_staging_writer.py 234-252, 455-478; coordinator.py 1089)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nba_phase5.core import staging


def test_a_minted_batch_id_is_the_coordinators_format() -> None:
    started = datetime(2025, 11, 28, 5, 0, 3, tzinfo=UTC)
    assert staging.mint_batch_id("2025-11-28", started) == "batch_2025-11-28_1764306003"


def test_dashes_become_underscores_in_table_names() -> None:
    assert staging.staging_prefix("batch_2025-11-28_1764306003") == "_staging_batch_2025_11_28_1764306003_"
    assert staging.staging_table_id("a-b", "rev-1_abcd") == "_staging_a_b_rev_1_abcd"


@pytest.mark.parametrize("bad", ["2025-11-28:scheduled__x", "a.b", "a b", "a/b", "", "None", "x" * 961])
def test_a_batch_id_the_workers_cannot_use_in_a_table_name_is_refused(bad: str) -> None:
    # BSW 286-356: '.', ':', '/', spaces make the load fail → 500 → DLQ.
    with pytest.raises(staging.InvalidBatchIdError):
        staging.staging_prefix(bad)


def test_a_batchs_prefix_finds_only_its_own_tables() -> None:
    batch = "batch_2025-11-28_1764306003"
    tables = [
        "_staging_batch_2025_11_28_1764306003_w_1",
        "_staging_batch_2025_11_28_1764306003_w_2",
        "_staging_batch_2025_11_28_1764306004_w_1",  # another batch a second later
        "_staging_fallback_1764306003000_w_3",  # a request without a batch id (WK 2407-2411)
        "player_prop_predictions",
    ]
    assert staging.batch_tables(tables, [batch]) == tables[:2]
    # Several batches: a run's own and the dead ones it adopted.
    assert staging.batch_tables(tables, [batch, "batch_2025-11-28_1764306004"]) == tables[:3]
    assert staging.batch_tables(tables, []) == []


def test_a_long_batch_id_the_workers_take_is_taken() -> None:
    # The workers take any id that keeps the table id under 1,024 bytes (BSW 234-252).
    assert staging.staging_table_id("b" * 960, staging.new_worker_id("rev")).startswith("_staging_bbb")


def test_worker_ids_are_drawn_as_the_workers_draw_them() -> None:
    # BSW 1253-1272: {K_REVISION}_{8 hex}, else worker_{12 hex}.
    assert staging.new_worker_id("prediction-worker-00042-abc").startswith("prediction-worker-00042-abc_")
    assert len(staging.new_worker_id("r").split("_")[-1]) == 8
    assert staging.new_worker_id().startswith("worker_")
    assert len(staging.new_worker_id()) == len("worker_") + 12
