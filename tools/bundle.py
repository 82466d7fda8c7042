"""`make bundle`: build exactly what goes into a Composer 3 environment's bucket, under build/composer/.

Composer 3 synchronizes the bucket's ``dags/`` folder to the scheduler, DAG processor, workers and
triggerer, and ``dags/`` is on their ``sys.path``; it does not synchronize ``plugins/`` to the
scheduler or the triggerer, and its docs say that folder is not for common Python modules
(docs/platform.md §10). So the bundle is::

    build/composer/
      dags/nba_phase5_predictions.py         the DAG file
      dags/nba_phase5_self_check.py          the post-deploy self-check DAG (docs/deploy.md)
      dags/nba_phase5/                       the package the DAG and its trigger import (the shipped package, whole)
      dags/nba_phase5/include/{sql,schemas}/ SQL templates and table schemas (config.include_dir finds them)
      dags/nba_phase5/.airflowignore         nothing in the package is parsed as a DAG file
      plugins/                               empty: the package has no Airflow plugin

Everything but the DAG files lives under ``dags/nba_phase5/``, a name this package owns: a bucket shared
with other teams' DAGs keeps its own ``dags/.airflowignore`` and ``dags/include/`` untouched, and
``make deploy`` can delete stale files there without touching anyone else's.

The bundle is the shipped package, ``plugins/nba_phase5`` whole: what runs on a developer's machine
(the stand-in worker and its model, seeding, Phase 4's test publisher, the CLI, ``status`` and
``provision``) is the separate package ``nba_phase5_local``, left out with tools/, bench/ and tests/.
``check_imports`` proves that nothing in the bundle imports a module left out (``make lint``'s import
contract forbids it in the source too).

    python tools/bundle.py [--out build/composer]
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "composer"
PACKAGE = "nba_phase5"
#: The DAG files, in upload order: the self-check after the daily DAG, so it checks the code just deployed.
DAG_FILES = ("nba_phase5_predictions.py", "nba_phase5_self_check.py")
#: The package of what never runs in Composer (the stand-in worker, seeding, the CLI…): never bundled, never imported.
LOCAL_PACKAGE = "nba_phase5_local"
#: Composer parses every .py under dags/ unless told otherwise. This file sits in the package's own
#: folder (an .airflowignore applies to its folder and below, gitignore-style): nothing there is a DAG file.
AIRFLOWIGNORE = """# Built by `make bundle`: no file of the nba_phase5 package is a DAG file (the DAG files are one up).
*
"""


def pool_args() -> tuple[str, str, str]:
    """``airflow pools set`` arguments for the fan-out pool, from the package's settings (nba_phase5.config)."""
    import localstack

    fan_out: Any = localstack.settings().FAN_OUT
    return fan_out.pool_set_args()  # type: ignore[no-any-return]


def runtime_modules(source: Path = ROOT / "plugins" / PACKAGE) -> list[Path]:
    """The package's files that go to Composer (relative to the package): all of them, the shipped package."""
    return [p.relative_to(source) for p in sorted(source.rglob("*.py")) if "__pycache__" not in p.parts]


def build(out: Path = OUT) -> Path:
    """Build the bundle in ``out`` (replaced whole, so a module removed from the source leaves it too)."""
    if out.exists():
        shutil.rmtree(out)
    dags = out / "dags"
    (out / "plugins").mkdir(parents=True)
    source = ROOT / "plugins" / PACKAGE
    for relative in runtime_modules(source):
        target = dags / PACKAGE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, target)
    for kind in ("sql", "schemas"):
        shutil.copytree(ROOT / "include" / kind, dags / PACKAGE / "include" / kind)
    for name in DAG_FILES:
        shutil.copy2(ROOT / "dags" / name, dags / name)
    (dags / PACKAGE / ".airflowignore").write_text(AIRFLOWIGNORE)
    check_imports(dags)
    return out


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in modules if m.split(".")[0] in (PACKAGE, LOCAL_PACKAGE)}


def check_imports(dags: Path) -> None:
    """Every ``nba_phase5`` module a bundled file imports (at any depth, lazily too) is in the bundle."""
    missing = []
    for path in sorted(dags.rglob("*.py")):
        for module in sorted(_imported_modules(path)):
            parts = module.split(".")
            as_module = dags.joinpath(*parts).with_suffix(".py")
            as_package = dags.joinpath(*parts) / "__init__.py"
            # `from nba_phase5 import config` names a module; `from nba_phase5.x import Y` names a class.
            parent = dags.joinpath(*parts[:-1]).with_suffix(".py")
            parent_package = dags.joinpath(*parts[:-1]) / "__init__.py"
            if not (as_module.exists() or as_package.exists() or parent.exists() or parent_package.exists()):
                missing.append(f"{path.relative_to(dags)} imports {module}")
    if missing:
        raise SystemExit("The bundle imports modules it does not ship:\n  " + "\n  ".join(missing))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to build it (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    out = build(args.out)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    print(f"Bundle for Composer in {out} ({len(files)} files):")
    for path in files:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
