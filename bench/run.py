"""`make bench`: performance measured side by side, in one run, on a local stack of its own.

Absolute times on shared machines are noisy: every figure is a median over repetitions, and every
goal is a ratio against a peer measured in the same run. Results go to bench/results.json,
bench/results.md (the table docs/benchmarks.md shows) and bench/ratios.png. The cases live in
bench_fanout.py and bench_dag.py, the table and chart in bench_report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import OUT, VENV_BIN  # first: puts the package and tools/ on sys.path
from bench_dag import bench_event_latency, bench_jobs, bench_parse, bench_scale
from bench_fanout import bench_fanout
from bench_report import chart, table

import localstack
from nba_phase5 import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="450,2000,10000")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--slow-cap", type=int, default=2000, help="largest size the stock peer repeats")
    parser.add_argument("--naive-cap", type=int, default=450, help="largest size the naive loop runs at")
    parser.add_argument("--scale-players", type=int, default=700)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    ports = [localstack.free_port() for _ in range(3)]
    project = "bench-nba-props"
    with tempfile.TemporaryDirectory(prefix="nba-phase5-bench-") as tmp:
        stack = localstack.start_stack(
            project, pubsub_port=ports[0], bq_port=ports[1], bq_grpc_port=ports[2], log_dir=Path(tmp) / "logs"
        )
        env = {**os.environ, **stack.env(), "AIRFLOW_HOME": str(Path(tmp) / "airflow")}
        os.environ.update(env)
        try:
            from nba_phase5_local.provisioning import provision

            provision(project)
            for argv_ in (["db", "migrate"], ["pools", "set", *config.FAN_OUT.pool_set_args()]):
                subprocess.run([str(VENV_BIN / "airflow"), *argv_], env=env, check=True, capture_output=True)
            results: dict[str, Any] = {
                "measured_at": datetime.now(UTC).isoformat(),
                "config": {"sizes": sizes, "reps": args.reps, "slow_cap": args.slow_cap, "naive_cap": args.naive_cap},
                "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            }
            results["fanout"] = bench_fanout(project, sizes, args.reps, args.slow_cap, args.naive_cap)
            results["parse"] = bench_parse(env, args.reps)
            results["event"] = bench_event_latency(env, project, args.reps)

            results["bigquery"] = bench_jobs(env, project)
            results["scale"] = bench_scale(env, project, args.scale_players)
        finally:
            localstack.stop_stack(stack)

    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    markdown = table(results)
    (OUT / "results.md").write_text(markdown + "\n")
    chart(results, OUT / "ratios.png")
    print("\n" + markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
