"""The UI as a person sees it: headless Chromium logs in, opens the DAG's grid and saves a screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import localstack
from e2e.scheduler import DAG_ID

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SCREENSHOT = localstack.LOCAL / "e2e" / "dag-grid.png"
# The machine's Chromium (Debian package `chromium`; make test installs it: tools/system_deps.sh): no browser download.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_login_and_grid_show_the_task_groups(airflow, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no Chromium on PATH: make test installs it (tools/system_deps.sh)"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{airflow.url}/dags/{DAG_ID}", wait_until="networkidle")
            page.fill("input[name='username']", airflow.username)
            page.fill("input[name='password']", airflow.password)
            page.click("button[type='submit']")
            page.wait_for_url(f"{airflow.url}/dags/{DAG_ID}**", timeout=60_000)
            page.get_by_text("retry_stragglers").first.wait_for(timeout=60_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
    for shown in ("nba_phase5_predictions", "phase4_readiness", "retry_stragglers", "record_batch_run"):
        assert shown in text, f"{shown!r} not on the grid page"
