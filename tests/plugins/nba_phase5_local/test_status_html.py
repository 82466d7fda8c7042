"""`status --html`: one self-contained page with the week's charts, opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import localstack
from nba_phase5_local.status import COMPLETION_GOAL_PCT, DayStatus, StatusReport, checklist
from nba_phase5_local.status_html import LABEL, OUTCOMES, WIDTH, render_html, ticks
from nba_phase5_local.status_metrics import month_one

SCREENSHOT = localstack.LOCAL / "e2e" / "status-report.png"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


#: (outcome word, run-history status) per day: the four outcomes the completion chart colours, and an off day.
SUCCESS, PARTIAL, FAILED, SKIPPED, OFF = (
    ("success", "success"),
    ("partial", "partial"),
    ("failed", "failed"),
    ("already_complete", "skipped"),
    ("no_games", "skipped"),
)


def week() -> StatusReport:
    """Nine dates: five successes, an off day, a partial day well above the goal, a failed day, a skipped rerun."""
    days = []
    for n, (ready, done, event, first, complete, stragglers, (status, run_status)) in enumerate(
        [
            (418, 100.0, 41.0, 2.6, 190.0, [12, 0], SUCCESS),
            (402, 100.0, 35.0, 2.4, 170.0, [9, 1], SUCCESS),
            (0, None, None, None, None, [], OFF),
            (396, 97.2, 600.0, 2.9, 260.0, [30, 11], PARTIAL),
            (421, 100.0, 44.0, 2.5, 150.0, [7, 0], SUCCESS),
            (410, 100.0, 39.0, 2.7, 180.0, [10, 0], SUCCESS),
            (408, 61.5, 52.0, 3.1, 420.0, [41, 38], FAILED),
            (415, 100.0, None, None, None, [], SKIPPED),
            (412, 100.0, 37.0, 2.6, 175.0, [8, 0], SUCCESS),
        ],
        start=1,
    ):
        days.append(
            DayStatus(
                f"2025-12-0{n}",
                status=status,
                run_status=run_status,
                scheduled_status=status,
                triggered_by={600.0: "scheduler_backup", None: "manual"}.get(event, "pubsub"),
                players_ready=ready or None,
                players_predicted=round(ready * (done or 0) / 100),
                completion_pct=done,
                phase4_to_event_s=event,
                event_to_first_request_s=first,
                first_request_to_complete_s=complete,
                phase4_to_first_request_s=(event + first) if event else None,
                straggler_requests=stragglers,
                straggler_rounds=sum(1 for s in stragglers if s),
                batches=1 if event else 0,
                alerts={"warning": 1} if status == "partial" else {},
            )
        )
    return StatusReport("2025-12-01", "2025-12-09", days, checklist(days), month_one(days))


def charts(page: str) -> tuple[str, str]:
    latency, completion = page.split("<svg")[1:3]
    return latency, completion


def bar_colour(chart: str, game_date: str) -> str:
    found = re.search(rf'<rect [^>]*fill="(#[0-9a-f]+)"><title>{game_date}\b', chart)
    assert found, f"no bar for {game_date}"
    return found.group(1)


def test_the_page_has_a_bar_per_stage_and_date_and_escapes_what_it_shows() -> None:
    report = week()
    report.days[0].triggered_by = "<script>alert(1)</script>"
    page = render_html(report, COMPLETION_GOAL_PCT)
    assert "<script>" not in page  # escaped, and the page itself has no script
    assert "&lt;script&gt;" in page
    assert page.count("<svg") == 2
    latency, completion = charts(page)
    # Eight game days (the off day is left out): seven with three latency stages (not the skipped rerun).
    assert latency.count("<rect") == 7 * 3
    assert completion.count("<rect") == 8
    assert "NO-GO" in page  # a partial day, a failed day and a backup day in the week
    assert "8 game days with a run, 1 off days" in page
    assert "Month-1 metrics" in page
    assert re.search(r"Scheduler backup needed</td><td>never</td><td>1 days", page)
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


def test_ticks_are_round_values_that_reach_the_top() -> None:
    assert ticks(14.4, 8) == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert ticks(100.0, 10) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert ticks(0.7, 5) == [0, 0.2, 0.4, 0.6, 0.8]
    assert ticks(2.0, 8) == [0, 0.5, 1, 1.5, 2]
    assert ticks(0.0, 8) == [0, 0.2, 0.4, 0.6, 0.8, 1]  # nothing to show: the axis still reaches 1


def tick_labels(chart: str) -> list[str]:
    return re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', chart)


def test_each_chart_has_its_axes_with_units_and_the_completion_goal_is_a_line() -> None:
    latency, completion = charts(render_html(week(), COMPLETION_GOAL_PCT))
    # The longest day is 863 s (14.4 min): minutes in steps of 2, up to 16.
    assert tick_labels(latency) == ["0", "2", "4", "6", "8", "10", "12", "14", "16"]
    assert ">minutes after Phase 4 done</text>" in latency
    assert ">14.4 min</text>" in latency
    assert re.search(r">-</text>(?!.*>-</text>)", latency)  # only the skipped rerun sent no request
    assert tick_labels(completion) == [str(pct) for pct in range(0, 101, 10)]
    assert ">% of ready players predicted</text>" in completion
    for chart in (latency, completion):
        assert ">game date</text>" in chart
        assert ">2025-12-04</text>" in chart
        assert ">2025-12-03</text>" not in chart
    goal = re.search(r'<line class="goal" x1="([\d.]+)"', completion)
    assert goal
    assert float(goal.group(1)) == pytest.approx(LABEL + WIDTH * COMPLETION_GOAL_PCT / 100)
    assert f">goal &gt; {COMPLETION_GOAL_PCT:g} %</text>" in completion


def test_bars_are_coloured_by_the_outcome_not_by_the_goal() -> None:
    page = render_html(week(), COMPLETION_GOAL_PCT)
    _, completion = charts(page)
    colours = dict(OUTCOMES)
    legend = page.split('<div class="legend">')[2].split("</div>")[0]
    for status, colour in OUTCOMES:
        assert f'<span><i style="background:{colour}"></i>{status}</span>' in legend
    assert len(set(colours.values())) == 4
    # 97.2 % is above the goal, but the day ended partial: it must not look like a success.
    assert bar_colour(completion, "2025-12-04") == colours["partial"] != colours["success"]
    assert bar_colour(completion, "2025-12-01") == colours["success"]
    assert bar_colour(completion, "2025-12-07") == colours["failed"]
    assert bar_colour(completion, "2025-12-08") == colours["skipped"]  # already complete: a skipped run
    assert ">97.2 % partial</text>" in completion
    assert ">100.0 % skipped</text>" in completion


def test_a_status_beyond_the_four_gets_its_own_legend_entry() -> None:
    report = week()
    report.days[-1].run_status = "running"
    page = render_html(report, COMPLETION_GOAL_PCT)
    _, completion = charts(page)
    running = bar_colour(completion, "2025-12-09")
    assert running not in dict(OUTCOMES).values()
    assert f'<span><i style="background:{running}"></i>running</span>' in page


@pytest.mark.integration
def test_the_page_opens_in_chromium_and_shows_both_charts(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no Chromium on PATH: make test installs it (tools/system_deps.sh)"
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(week(), COMPLETION_GOAL_PCT), encoding="utf-8")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1100})
            page.goto(page_file.as_uri(), wait_until="load")
            assert page.locator("svg").count() == 2
            assert page.locator("svg").first.bounding_box()["height"] > 100
            assert page.get_by_text("Go/no-go checklist").is_visible()
            legends = page.locator(".legend")
            for status, _ in OUTCOMES:
                assert legends.get_by_text(status, exact=True).is_visible()
            for text in (
                "minutes after Phase 4 done",
                "% of ready players predicted",
                f"goal > {COMPLETION_GOAL_PCT:g} %",
            ):
                assert page.locator("svg text", has_text=text).first.is_visible(), text
            shown = [tick for tick in page.locator("svg text.tick").all() if tick.is_visible()]
            assert len(shown) == 9 + 11  # the latency axis's 0-16 min and the completion axis's 0-100 %
            assert page.get_by_text("Month-1 metrics").is_visible()
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
