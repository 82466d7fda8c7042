"""pyproject.toml builds a wheel that holds the whole package, its SQL and schemas, and the console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "nba_phase5"
LOCAL_PACKAGE = ROOT / "plugins" / "nba_phase5_local"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _subpackages() -> set[str]:
    return {
        ".".join(init.parent.relative_to(ROOT / "plugins").parts)
        for package in (PACKAGE, LOCAL_PACKAGE)
        for init in package.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_every_subpackage_is_listed() -> None:
    # the list is explicit (include/ maps in from beside plugins/): a new subpackage must join it
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == _subpackages() | {"nba_phase5.include"}


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _requirements(*lines: str) -> set[tuple[str, object]]:
    from packaging.requirements import Requirement

    return {(req.name, req.specifier) for req in map(Requirement, lines)}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds, from a copy of what the build reads (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "requirements.txt", "requirements-composer-image.txt"):
        shutil.copy2(ROOT / name, source / name)
    for package in (PACKAGE, LOCAL_PACKAGE):
        shutil.copytree(package, source / "plugins" / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "include", source / "include")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [built] = out.glob("nba_phase5-*.whl")
    return built


def test_the_wheel_holds_every_module_the_sql_the_schemas_and_the_script(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        str(Path("nba_phase5") / p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
    }
    assert modules <= names
    data = {str(Path("nba_phase5") / p.relative_to(ROOT)) for p in (ROOT / "include").rglob("*") if p.is_file()}
    assert data <= names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "nba-phase5 = nba_phase5_local.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    lines = zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
    requires = [line.removeprefix("Requires-Dist: ") for line in lines if line.startswith("Requires-Dist: ")]
    # the runtime's requirements, as Composer installs them and its image ships them
    assert _requirements(*requires) == _requirements(
        *_lines(ROOT / "requirements.txt"), *_lines(ROOT / "requirements-composer-image.txt")
    )


def test_the_installed_wheel_finds_its_sql_away_from_the_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe = (
        "from nba_phase5 import config; from nba_phase5.bigquery import sql; "
        "sql.render('game_day.sql'); print(config.include_dir())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NBA_PHASE5_INCLUDE_DIR",)}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(done.stdout.strip()) == site / "nba_phase5" / "include"
