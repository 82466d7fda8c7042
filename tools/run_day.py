"""`make run`: a game day on the local stack.

For now it brings up the stack, provisions, seeds the day and publishes Phase 4's completion event;
the DAG that consumes the event is not built yet, and this says so instead of pretending.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import localstack

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--date", required=True)
    parser.add_argument("--players", type=int, default=450)
    parser.add_argument("--keep-stack", action="store_true", help="leave the emulators running afterwards")
    args = parser.parse_args(argv)

    started_here = False
    stack = localstack.read_state()
    if not (stack and stack.pubsub.alive() and stack.bigquery.alive()):
        stack = localstack.start_stack()
        localstack.write_state(stack)
        started_here = True
    env = {**os.environ, **stack.env()}
    try:
        for step in (
            ["provision"],
            ["seed", "--date", args.date, "--players", str(args.players)],
            ["publish-phase4", "--date", args.date],
        ):
            subprocess.run([str(PY), "-m", "nba_phase5", *step], env=env, check=True)
        print("The DAG nba_phase5_predictions is not built yet: nothing consumed the event. Stopping here.")
        return 1
    finally:
        if started_here and not args.keep_stack:
            localstack.stop_stack(stack)
            localstack.STATE_FILE.unlink(missing_ok=True)
            localstack.ENV_FILE.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
