"""What a run amounts to, from its facts alone (RunFacts): every outcome the run-history row can say."""

from __future__ import annotations

from typing import Any

import pytest

from nba_phase5.core.run_facts import RunFacts
from nba_phase5.core.run_summary import correlation_id, held_by, outcome, summary
from nba_phase5.core.states import RunStatus, SkipReason, TriggeredBy

DAY = {"game_date": "2025-11-28", "started_at": "2025-11-28T05:00:00+00:00", "games": 7, "schedule_outage": False}
CLAIM = {"batch_id": "batch_2025-11-28_1764306000", "batch_started_at": "2025-11-28T05:00:00+00:00"}


def facts(**results: Any) -> RunFacts:
    force = results.pop("force", False)
    return RunFacts(run_id="r", triggered_by=TriggeredBy.SCHEDULER_BACKUP, force=force, **results)


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (facts(), (RunStatus.FAILED, None)),
        (facts(game_day={**DAY, "games": 0}), (RunStatus.SKIPPED, SkipReason.NO_DATA)),
        # A schedule outage is not an off day: the gates decided, and nothing verified it.
        (facts(game_day={**DAY, "games": 0, "schedule_outage": True}, claim=CLAIM), (RunStatus.FAILED, None)),
        (
            facts(game_day=DAY, claim=CLAIM, batch_status={"state": "fully_complete"}),
            (RunStatus.SKIPPED, SkipReason.ALREADY_PROCESSED),
        ),
        (
            facts(game_day=DAY, claim=CLAIM, batch_status={"state": "held", "held_by": "other"}),
            (RunStatus.SKIPPED, SkipReason.EARLY_EXIT),
        ),
        # The branch let it through and the fan-out found the holder just before publishing.
        (facts(game_day=DAY, claim=CLAIM, fan_out={"held_by": "other"}), (RunStatus.SKIPPED, SkipReason.EARLY_EXIT)),
        (facts(game_day=DAY, claim=CLAIM, verify={"players_missing": 0}), (RunStatus.SUCCESS, None)),
        (facts(game_day=DAY, claim=CLAIM, verify={"players_missing": 3}), (RunStatus.PARTIAL, None)),
        (
            facts(game_day=DAY, claim=CLAIM, verify={"incomplete": True, "completion_pct": 12.0}),
            (RunStatus.FAILED, None),
        ),
    ],
    ids=[
        "no-date",
        "off-day",
        "outage",
        "complete",
        "held-at-branch",
        "held-at-fan-out",
        "success",
        "partial",
        "incomplete",
    ],
)
def test_every_outcome_comes_from_the_facts(run: RunFacts, expected: tuple[RunStatus, SkipReason | None]) -> None:
    status, skip_reason, message = outcome(run)
    assert (status, skip_reason) == expected
    assert message


def test_a_forced_run_over_a_complete_day_is_not_skipped() -> None:
    run = facts(
        force=True, game_day=DAY, claim=CLAIM, batch_status={"state": "fully_complete"}, verify={"players_missing": 0}
    )
    assert outcome(run)[0] is RunStatus.SUCCESS


def test_the_summary_words_and_ids() -> None:
    run = facts(game_day=DAY, claim=CLAIM, fan_out={"held_by": "scheduled__x"})
    assert held_by(run) == "scheduled__x"
    assert correlation_id(run) == CLAIM["batch_id"]  # the backup path: no Phase 4 correlation id
    figures = summary(run, *outcome(run))
    assert (figures["outcome"], figures["held_by"], figures["batch_id"]) == (
        "concurrent_run",
        "scheduled__x",
        CLAIM["batch_id"],
    )
    event = {"correlation_id": "4f2a9c1e", "event": {"timestamp": "2025-11-28T07:00:00+00:00"}}
    assert correlation_id(facts(game_day=DAY, claim=CLAIM, event=event)) == "4f2a9c1e"
