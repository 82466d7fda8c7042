"""`make clean`: remove what the repo's commands made, never the deploy backups.

``.local/deploy-backups/`` holds the bucket exports ``make deploy`` takes before it changes anything:
the rollback point docs/deploy.md names. ``make clean`` removes everything else under ``.local/``
(the stack's state, logs and BigQuery data, the local Airflow, the emulator venv), the project venv,
the tool caches and ``build/``.

    python3 tools/clean.py [--root DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = "deploy-backups"
REMOVED = (".venv", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build")


def clean(root: Path = ROOT) -> list[Path]:
    """Remove the generated folders under ``root``; returns what was removed."""
    gone = []
    local = root / ".local"
    if local.is_dir():
        for entry in sorted(local.iterdir()):
            if entry.name == KEEP:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            gone.append(entry)
    for name in REMOVED:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
            gone.append(path)
    return gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    for path in clean(args.root):
        print(f"removed {path}")
    if (args.root / ".local" / KEEP).is_dir():
        print(f"kept {args.root / '.local' / KEEP} (the deploy rollback point; delete it by hand)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
