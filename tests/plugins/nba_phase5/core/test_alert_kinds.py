"""Every alert kind has its runbook section, and the links an alert carries are the Airflow UI's own.

Offline: the runbook is parsed as Markdown (headings outside code blocks, anchors as GitHub makes them), so
adding a kind without a section, or a section whose severity disagrees with the code, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nba_phase5.airflow.alert_links import Link, alert_links, run_url, task_log_url
from nba_phase5.core.alert_kinds import RUNBOOK_BASE_URL_ENV, RUNBOOK_PATH, SEVERITIES, AlertKind, with_runbook_link

ROOT = Path(__file__).resolve().parents[4]
RUNBOOK = ROOT / RUNBOOK_PATH
#: What every section says, besides its severity.
PARTS = ("**Message**", "**What it means**", "**What to check**", "**What to do**", "**When to call Phase 4**")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces as ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _sections() -> dict[str, str]:
    """Each ``##`` section of the runbook by its anchor, with its text (fenced code blocks are not headings)."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    fenced = False
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = re.match(r"## (.+)", line) if not fenced else None
        if heading:
            current = sections.setdefault(_anchor(heading.group(1)), [])
        else:
            current.append(line)
    return {anchor: "\n".join(lines) for anchor, lines in sections.items()}


def test_every_kind_has_a_runbook_section_whose_anchor_the_alert_names() -> None:
    sections = _sections()
    missing = [kind.name for kind in AlertKind if kind.anchor not in sections]
    assert missing == [], f"kinds without a section in {RUNBOOK_PATH}: {missing}"


def test_every_section_states_its_kinds_severity_and_what_to_do() -> None:
    sections = _sections()
    for kind in AlertKind:
        text = sections[kind.anchor]
        assert f"**Severity**: {kind.severity}." in text, kind.name
        for part in PARTS:
            assert part in text, (kind.name, part)


def test_no_section_names_a_kind_that_does_not_exist() -> None:
    # A section whose heading is a bare name (the kinds' form) must be a kind: a renamed kind leaves none behind.
    named = {anchor for anchor in _sections() if re.fullmatch(r"[a-z0-9_]+", anchor)}
    assert named == {kind.anchor for kind in AlertKind}


def test_kinds_have_known_severities_and_distinct_names() -> None:
    assert {kind.severity for kind in AlertKind} <= set(SEVERITIES)
    assert len({kind.name for kind in AlertKind}) == len(AlertKind)  # no kind is another's alias


def test_the_runbook_reference_is_repo_relative_unless_a_base_url_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNBOOK_BASE_URL_ENV, raising=False)
    assert AlertKind.phase4_not_ready.runbook_ref() == "docs/runbook.md#phase4_not_ready"
    monkeypatch.setenv(RUNBOOK_BASE_URL_ENV, "https://git.example.com/nba/phase5/blob/main/ ")
    assert AlertKind.run_died.runbook_ref() == "https://git.example.com/nba/phase5/blob/main/docs/runbook.md#run_died"
    assert "[docs/runbook.md](https://git.example.com/nba/phase5/blob/main/docs/runbook.md)" in with_runbook_link("x")


def test_the_dags_doc_links_the_runbook(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv(RUNBOOK_BASE_URL_ENV, raising=False)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    doc = bag.dags["nba_phase5_predictions"].doc_md
    assert doc.startswith("\n### NBA Phase 5 predictions")
    assert "**Runbook**: [docs/runbook.md](docs/runbook.md)" in doc


def test_links_are_the_ui_routes_with_the_run_id_encoded() -> None:
    run_id = "scheduled__2025-11-28T05:00:00+00:00"
    grid = "http://ui.test/dags/nba_phase5_predictions/runs/scheduled__2025-11-28T05%3A00%3A00%2B00%3A00"
    assert run_url("http://ui.test", "nba_phase5_predictions", run_id) == grid
    task = "retry_stragglers.verify_completion"
    log = task_log_url("http://ui.test", "nba_phase5_predictions", run_id, task, map_index=3, try_number=2)
    assert log == f"{grid}/tasks/{task}/mapped/3?try_number=2"
    # Unmapped (-1), and a try the context does not know: the UI shows the latest.
    unmapped = task_log_url("http://ui.test", "nba_phase5_predictions", run_id, task, map_index=-1, try_number=None)
    assert unmapped == f"{grid}/tasks/{task}"
    assert run_url("http://ui.test", "d", "manual__a/b") == "http://ui.test/dags/d/runs/manual__a%2Fb"


def test_alert_links_follow_airflows_base_url_and_what_raised_the_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    class TI:
        task_id, map_index, try_number = "fan_out_requests", -1, 1

    row = {"dag_id": "nba_phase5_predictions", "run_id": "manual__1", "task_id": "fan_out_requests"}
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    grid = "http://localhost:8080/dags/nba_phase5_predictions/runs/manual__1"  # Airflow's own fallback
    assert alert_links({"ti": TI()}, row, AlertKind.task_failed) == [
        Link("Runbook", "docs/runbook.md#task_failed"),
        Link("Run (grid)", grid),
        Link("Task log", f"{grid}/tasks/fan_out_requests?try_number=1"),
    ]
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://composer.example.com/")
    no_task = alert_links({}, {**row, "task_id": None}, AlertKind.deadline_missed)
    assert no_task[1:] == [
        Link("Run (grid)", "https://composer.example.com/dags/nba_phase5_predictions/runs/manual__1")
    ]
    # No run at all (a bare callback context): the runbook still, and no link to nowhere.
    assert alert_links({}, {"dag_id": None, "run_id": None}, AlertKind.run_died) == [
        Link("Runbook", "docs/runbook.md#run_died")
    ]
