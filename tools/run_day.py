"""`make run`: one whole game day on the local stack, start to finish.

Brings up the emulators (or reuses a running stack), provisions, seeds the day, starts the local
prediction worker with a small drop rate, starts the DAG run with `airflow dags test`, and — as Phase 4
would — publishes the completion event a few seconds after the run is waiting for it. Then prints a
summary from BigQuery and exits 0 only when the day is complete. It stops what it started unless
--keep-stack is given.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import localstack

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
sys.path.insert(0, str(ROOT / "plugins"))

PROGRESS = [
    (re.compile(r"Game date (\S+): (\d+) games"), "game day {0}: {1} games on the schedule"),
    (re.compile(r"No games on (\S+)"), "no games on {0}: nothing to do"),
    (
        re.compile(r"Waiting for Phase 4's event for (\S+) on (\S+) until (\S+)"),
        "waiting for Phase 4's completion event on {1} (deadline {2})",
    ),
    (
        re.compile(r"Phase 4 event (\S+): (\d+) players ready of (\S+)"),
        "Phase 4 event received (message {0}): {1}/{2} players ready",
    ),
    (re.compile(r"No Phase 4 event by (\S+)"), "no event by {0}: scheduled backup path"),
    (
        re.compile(r"Done: \{'phase4_ran': True.*'players_ready': (\d+), 'players_total': (\d+)"),
        "Phase 4 ready: {0}/{1} players production-ready",
    ),
    (re.compile(r"Batch status (\S+): (\d+)/(\d+) players complete"), "batch status {0}: {1}/{2} players complete"),
    (re.compile(r"Publishing (\d+) requests for (\d+) players"), "publishing {0} prediction requests"),
    (re.compile(r"Published (\d+)/(\d+) requests"), "published {0}/{1}"),
    (
        re.compile(r"Not done yet \(\{'players_ready': (\d+), 'players_complete': (\d+)"),
        "waiting for predictions: {1}/{0} players",
    ),
    (
        re.compile(r"(?:Still not done at|No progress in).*'players_missing': (\d+)"),
        "round wait over: {0} still missing",
    ),
    (re.compile(r"Done: \{'players_ready': (\d+), 'players_complete': (\d+)"), "predictions cover {1}/{0} players"),
    (re.compile(r"\[(\w+) alert\] (.*)"), "ALERT ({0}): {1}"),
    (
        re.compile(r"Run history (\w+): \{\"outcome\": \"(\w+)\""),
        "run history recorded: {0} ({1})",
    ),
]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def ensure_airflow_db(env: dict[str, str]) -> None:
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "airflow.db").exists():
        say("creating the local Airflow metadata DB (.local/airflow)")
    run([str(VENV_BIN / "airflow"), "db", "migrate"], env, capture_output=True)
    from nba_phase5.config import FAN_OUT

    run([str(VENV_BIN / "airflow"), "pools", "set", *FAN_OUT.pool_set_args()], env, capture_output=True)


def publish_event_later(day: date, project: str, delay: float) -> threading.Thread:
    def publish() -> None:
        from nba_phase5.clients import bigquery_client, publisher_client
        from nba_phase5.phase4_publisher import build_event, count_production_ready, publish_completion_event

        time.sleep(delay)
        ready, total = count_production_ready(bigquery_client(project), day)
        message_id = publish_completion_event(publisher_client(), project, build_event(day, ready, total))
        say(f"Phase 4 published its completion event ({ready}/{total} ready) as message {message_id}")

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    return thread


def dropped_by_worker(log: Path, day: date) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    # The subscription may also hold other dates' requests; count this day's only.
    ids = {
        line.split("Dropped request ")[1].split()[0]
        for line in lines
        if "Dropped request " in line and f" on {day.isoformat()} " in line
    }
    return f"{len(ids)} requests (acked without a prediction, to make stragglers)"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def summary(day: date, project: str, worker_log: Path) -> tuple[bool, str]:
    from nba_phase5.clients import bigquery_client
    from nba_phase5.status import collect

    days = collect(bigquery_client(project), day, day)
    if not days or days[0].status is None:
        return False, "No run history for this date: the DAG run did not record anything."
    status = days[0]
    rounds = status.straggler_requests
    rows = [
        ("game date", status.game_date),
        ("status", status.status),
        ("triggered_by", status.triggered_by),
        ("players total / ready", f"{status.players_total} / {status.players_ready}"),
        ("requests published", f"{status.last_run_requests} this run ({status.requests_published} for the date)"),
        ("predictions written", f"{status.predictions} ({status.players_predicted} players)"),
        ("dropped by the worker", dropped_by_worker(worker_log, day)),
        ("stragglers per round", " + ".join(f"round {i}: {n}" for i, n in enumerate(rounds, 1)) or "-"),
        ("completion", f"{status.completion_pct:.1f} %" if status.completion_pct is not None else "-"),
        ("Phase 4 complete → event received", seconds(status.phase4_to_event_s)),
        ("Phase 4 event → first request", seconds(status.event_to_first_request_s)),
        ("first request → batch complete", seconds(status.first_request_to_complete_s)),
        ("alerts", ", ".join(f"{n} {s}" for s, n in status.alerts.items()) or "none"),
        ("runs recorded for the date", status.runs),
    ]
    width = max(len(k) for k, _ in rows)
    text = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
    complete = status.status == "already_complete" or (
        status.status == "success" and (status.completion_pct or 0) >= 100.0
    )
    if status.status == "already_complete":
        text += "\n  (already complete: no new requests were published)"
    return complete, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="game date YYYY-MM-DD")
    parser.add_argument("--players", type=int, default=450)
    parser.add_argument("--ready-pct", type=float, default=93.0)
    parser.add_argument("--drop-rate", type=float, default=0.03, help="worker drop rate, to make stragglers")
    parser.add_argument("--event-delay", type=float, default=3.0, help="seconds between waiting and the event")
    parser.add_argument("--keep-stack", action="store_true", help="leave the emulators running afterwards")
    args = parser.parse_args(argv)

    stack = localstack.read_state()
    started_here = False
    outer = {k: os.environ.get(k, "") for k in ("GCP_PROJECT", "PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")}
    if all(outer.values()):
        # The shell already points at a stack (a sourced .local/stack.env, or a test session's): use it.
        say(
            f"using the stack the environment points at ({outer['PUBSUB_EMULATOR_HOST']}, "
            f"{outer['BIGQUERY_EMULATOR_HOST']})"
        )
        base = localstack.stack_env(
            outer["GCP_PROJECT"], outer["PUBSUB_EMULATOR_HOST"], outer["BIGQUERY_EMULATOR_HOST"]
        )
        env = {**base, **os.environ, "PYTHONPATH": base["PYTHONPATH"]}
        project = outer["GCP_PROJECT"]
    else:
        if stack and stack.pubsub.alive() and stack.bigquery.alive():
            say(f"reusing the running stack (Pub/Sub :{stack.pubsub.port}, BigQuery :{stack.bigquery.port})")
        else:
            say("starting the Pub/Sub and BigQuery emulators")
            stack = localstack.start_stack(data_dir=localstack.DATA_DIR)
            localstack.write_state(stack)
            started_here = True
        env = {**os.environ, **stack.env()}
        project = stack.project
    os.environ.update(env)
    logs = localstack.LOCAL / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    worker = None
    try:
        python = str(VENV_BIN / "python")
        run([python, "-m", "nba_phase5", "provision"], env)
        run(
            [
                python,
                "-m",
                "nba_phase5",
                "seed",
                "--date",
                args.date.isoformat(),
                "--players",
                str(args.players),
                "--ready-pct",
                str(args.ready_pct),
            ],
            env,
        )
        ensure_airflow_db(env)
        worker_log_path = logs / f"worker-{args.date}.log"
        worker_log = worker_log_path.open("w")
        worker = subprocess.Popen(
            [
                python,
                "-m",
                "nba_phase5",
                "worker",
                "--drop-rate",
                str(args.drop_rate),
                "--seed",
                args.date.strftime("%Y%m%d"),
            ],
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        say(
            f"local prediction worker started (drop rate {args.drop_rate:.0%}, log {worker_log_path.relative_to(ROOT)})"
        )
        conf = {
            "game_date": args.date.isoformat(),
            "event_wait_seconds": 120,
            "poll_interval_seconds": 2,
            "phase4_wait_minutes": 1,
            "straggler_wait_minutes": 0.5,
            "straggler_settle_polls": 3,
            # A demo-length in-flight window (production: 10 min): the worker's deliberate drops are
            # presumed lost after 15 s, so a straggler round sends them again within the one-minute run.
            "in_flight_minutes": 0.25,
        }
        dag_log_path = logs / f"dag-{args.date}.log"
        say(f"starting DAG run nba_phase5_predictions for {args.date} (full log {dag_log_path.relative_to(ROOT)})")
        published = None
        with dag_log_path.open("w") as dag_log:
            dag = localstack.start_dag_test(args.date.isoformat(), conf, env)
            assert dag.stdout is not None
            last = ""
            for line in dag.stdout:
                dag_log.write(line)
                for pattern, template in PROGRESS:
                    match = pattern.search(line)
                    if match:
                        message = template.format(*match.groups())
                        if message != last:
                            say(message)
                        last = message
                        if "Waiting for Phase 4" in line and published is None:
                            published = publish_event_later(args.date, project, args.event_delay)
                        break
            dag.wait()
        say(f"DAG run finished ({'success' if dag.returncode == 0 else 'failed'})")
        localstack.stop_server(localstack.Server.of_child("worker", worker))
        complete, text = summary(args.date, project, worker_log_path)
        print("\nSummary\n" + text + "\n")
        print(f"See every recorded day with: .venv/bin/python -m nba_phase5 status --from {args.date} --to {args.date}")
        return 0 if complete and dag.returncode == 0 else 1
    finally:
        if worker is not None:
            localstack.stop_server(localstack.Server.of_child("worker", worker))
        if started_here and stack is not None and not args.keep_stack:
            say("stopping the emulators (pass KEEP_STACK=1 to keep them)")
            localstack.stop_stack(stack)
            localstack.STATE_FILE.unlink(missing_ok=True)
            localstack.ENV_FILE.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
