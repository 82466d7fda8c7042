"""What started a run, read once from its run type; param flags as bools; why a run skips the event wait."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nba_phase5.core.states import TriggeredBy, parse_flag, skipped_wait, triggered_by_of_run


@pytest.mark.parametrize(
    ("run_type", "expected"),
    [
        ("backfill", TriggeredBy.BACKFILL),
        ("manual", TriggeredBy.MANUAL),
        ("asset_triggered", TriggeredBy.MANUAL),
        ("scheduled", TriggeredBy.SCHEDULER_BACKUP),
    ],
)
def test_a_run_says_what_started_it(run_type: str, expected: TriggeredBy) -> None:
    assert triggered_by_of_run(SimpleNamespace(run_type=run_type)) is expected


def test_outside_a_run_nothing_says_backfill() -> None:
    # A callback or a test context may carry no dag_run: it is not a backfill, so it is not spared.
    assert triggered_by_of_run(None) is TriggeredBy.SCHEDULER_BACKUP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("True", True),
        (" true ", True),
        ("1", True),
        (False, False),
        ("False", False),
        ("", False),
        (None, False),
    ],
)
def test_a_flag_reads_the_same_native_or_rendered(value: object, expected: bool) -> None:
    assert parse_flag(value) is expected


def test_a_backfill_skips_the_wait_before_the_flag_is_read() -> None:
    assert skipped_wait("backfill", "False") is TriggeredBy.BACKFILL
    assert skipped_wait("manual", "True") is TriggeredBy.MANUAL
    assert skipped_wait("scheduled", False) is None
