"""`make test`'s parallel run (pytest-xdist): each e2e group is one unit of work (one worker, one Airflow),
and a report with text xdist cannot send still arrives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import conftest

E2E = Path(__file__).parent / "e2e"
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")


def test_every_e2e_module_is_in_exactly_one_group() -> None:
    listed = [module for modules in conftest.E2E_AIRFLOWS.values() for module in modules]
    assert sorted(listed) == sorted(p.name for p in E2E.glob("test_*.py"))
    assert all((E2E.parents[1] / module).is_file() for module in conftest.SLOW_ALONE)


def test_the_scheduler_keeps_each_group_on_one_worker_and_spreads_the_rest() -> None:
    config = SimpleNamespace(getvalue=lambda name: ["3*popen"] if name == "tx" else None, option=SimpleNamespace())
    scheduler = conftest.pytest_xdist_make_scheduler(config, log=None)
    scope = scheduler._split_scope
    assert scope("tests/e2e/test_one_batch.py::test_a") == scope("tests/e2e/test_ui.py::test_b") == "e2e-airflow-a"
    assert scope("tests/e2e/test_backfill.py::test_c[x]") == "e2e-airflow-b"
    assert scope("tests/e2e/test_new.py::test_d") == "e2e-airflow-a"  # an unlisted module joins the first
    assert scope("tests/dags/test_x.py::test_e") == "tests/dags/test_x.py::test_e"
    slow = {scope(f"{module}::test_f") for module in conftest.SLOW_ALONE}
    assert slow == {"slow-alone"}  # one unit of more than one test: handed out first, with the e2e groups


def test_a_failure_whose_log_holds_a_lone_surrogate_is_reported_not_an_internal_error(tmp_path: Path) -> None:
    (tmp_path / "test_hostile.py").write_text(
        "import logging\n\n"
        "def test_hostile():\n"
        "    logging.getLogger('worker').warning('player %s', '\\ud800x')\n"
        "    assert False\n"
    )
    tests = Path(__file__).parent
    pythonpath = os.pathsep.join(str(p) for p in (tests, tests.parent / "tools", tests.parent / "plugins"))
    done = subprocess.run(
        [*PYTEST, "-n", "1", "-p", "conftest", "-c", os.devnull, "--rootdir", str(tmp_path), "test_hostile.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "1 failed" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "INTERNALERROR" not in done.stdout
