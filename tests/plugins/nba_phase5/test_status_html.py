"""`status --html`: one self-contained page with the week's charts, opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import localstack
from nba_phase5.status import COMPLETION_GOAL_PCT, DayStatus, StatusReport, checklist
from nba_phase5.status_html import render_html
from nba_phase5.status_metrics import month_one

SCREENSHOT = localstack.LOCAL / "e2e" / "status-report.png"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def week() -> StatusReport:
    days = []
    for n, (ready, done, event, first, complete, stragglers, status) in enumerate(
        [
            (418, 100.0, 41.0, 2.6, 190.0, [12, 0], "success"),
            (402, 100.0, 35.0, 2.4, 170.0, [9, 1], "success"),
            (0, None, None, None, None, [], "no_games"),
            (396, 97.2, 600.0, 2.9, 260.0, [30, 11], "partial"),
            (421, 100.0, 44.0, 2.5, 150.0, [7, 0], "success"),
            (410, 100.0, 39.0, 2.7, 180.0, [10, 0], "success"),
            (415, 100.0, 37.0, 2.6, 175.0, [8, 0], "success"),
        ],
        start=1,
    ):
        days.append(
            DayStatus(
                f"2025-12-0{n}",
                status=status,
                scheduled_status=status,
                triggered_by="scheduler_backup" if event == 600.0 else "pubsub",
                players_ready=ready or None,
                players_predicted=round(ready * (done or 0) / 100),
                completion_pct=done,
                phase4_to_event_s=event,
                event_to_first_request_s=first,
                first_request_to_complete_s=complete,
                phase4_to_first_request_s=(event + first) if event else None,
                straggler_requests=stragglers,
                straggler_rounds=sum(1 for s in stragglers if s),
                batches=1 if ready else 0,
                alerts={"warning": 1} if status == "partial" else {},
            )
        )
    return StatusReport("2025-12-01", "2025-12-07", days, checklist(days), month_one(days))


def test_the_page_has_a_bar_per_stage_and_date_and_escapes_what_it_shows() -> None:
    report = week()
    report.days[0].triggered_by = "<script>alert(1)</script>"
    page = render_html(report, COMPLETION_GOAL_PCT)
    assert "<script>" not in page  # escaped, and the page itself has no script
    assert "&lt;script&gt;" in page
    assert page.count("<svg") == 2
    latency, completion = page.split("<svg")[1:3]
    assert latency.count("<rect") == 6 * 3  # six game days (the off day is left out), three stages each
    assert completion.count("<rect") == 6
    assert "NO-GO" in page  # a partial day and a backup day in the week
    assert "6 game days with a run, 1 off days" in page
    assert "Month-1 metrics" in page
    assert re.search(r"Scheduler backup needed</td><td>never</td><td>1 days", page)
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


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
            assert page.locator("svg").first.bounding_box()["height"] > 100  # type: ignore[index]
            assert page.get_by_text("Go/no-go checklist").is_visible()
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
