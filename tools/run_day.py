"""`make run`: one whole game day on the local stack, start to finish.

Brings up the emulators (or reuses a running stack), provisions, seeds the day, starts the local
prediction worker with a small drop rate, starts the DAG run with `airflow dags test`, and — as Phase 4
would — publishes the completion event a few seconds after the run has claimed the date. It follows
the run through what its tasks write to BigQuery (run history, inbox, ledger, predictions, alerts),
never through its log text, then prints a summary from BigQuery and exits 0 only when the day is
complete. It stops what it started unless
--keep-stack is given.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import localstack
from run_day_summary import summary

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
DAG_ID = localstack.settings().DAG_ID

#: How often make run asks BigQuery how far the run has got.
FOLLOW_INTERVAL_S = 2.0
#: What each change of the run's progress (include/sql/run_progress.sql) is called.
PROGRESS_WORDS = {
    "run_status": "run history: {}",
    "events": "Phase 4 completion events received by the wait: {}",
    "requests": "prediction requests published (publish ledger): {}",
    "staging_tables": "staging tables the workers wrote for the date, not yet consolidated: {}",
    "players_predicted": "players with a new prediction in player_prop_predictions (consolidated): {}",
    "alerts": "alerts raised (see the summary): {}",
}


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


def progress(client: Any, day: date, since: datetime) -> dict[str, Any]:
    """How far the run started at ``since`` has got (include/sql/run_progress.sql)."""
    from nba_phase5 import config
    from nba_phase5.bigquery import sql
    from nba_phase5.bigquery.bq import run_query

    params = {
        "game_date": day,
        "processor_name": config.PHASE5_PROCESSOR,
        "since": {"type": "TIMESTAMP", "value": since},
    }
    [row] = run_query(client, sql.render("run_progress.sql"), params)
    return {**row, "staging_tables": len(staging_tables(client, day))}


def staging_tables(client: Any, day: date) -> list[str]:
    """The date's staging tables (any batch of the date): the workers' output before consolidation."""
    from nba_phase5.core import staging

    prefix = staging.date_prefix(day)
    dataset = f"{client.project}.{staging.STAGING_DATASET}"
    return [t.table_id for t in client.list_tables(dataset) if t.table_id.startswith(prefix)]


def follow(dag: subprocess.Popen[str], day: date, project: str, event_delay: float) -> None:
    """Report the run's progress until it ends; publish Phase 4's event ``event_delay`` seconds after the
    run recorded itself running (the event wait comes next; an earlier event waits in the subscription).
    A run that ends first (an off day, a dedup) gets no event."""
    from nba_phase5.bigquery.clients import bigquery_client

    client, since = bigquery_client(project), datetime.now(UTC)
    seen: dict[str, Any] = {}
    publish_at: float | None = None
    published = False
    while True:
        finished = dag.poll() is not None
        now = read_progress(client, day, since, seen)
        for key, words in PROGRESS_WORDS.items():
            if now.get(key) != seen.get(key) and (now.get(key) or key in seen):
                say(words.format(now.get(key)))
        seen = now
        if publish_at is None and now.get("run_status") == "running":
            publish_at = time.monotonic() + event_delay
        if finished:
            say(f"DAG run finished ({'success' if dag.returncode == 0 else 'failed'})")
            return
        if not published and publish_at is not None and time.monotonic() >= publish_at:
            publish_event(day, project)
            published = True
        time.sleep(FOLLOW_INTERVAL_S)


def read_progress(client: Any, day: date, since: datetime, last: dict[str, Any]) -> dict[str, Any]:
    """:func:`progress`, or the last reading when BigQuery cannot answer now (the run goes on regardless)."""
    try:
        return progress(client, day, since)
    except Exception as exc:
        say(f"progress not readable from BigQuery this time ({type(exc).__name__}: {str(exc)[:120]})")
        return last


def publish_event(day: date, project: str) -> None:
    """Publish Phase 4's completion event for ``day``, as Phase 4 does when it finishes."""
    from nba_phase5.bigquery.clients import bigquery_client, publisher_client
    from nba_phase5_local.phase4_publisher import build_envelope, count_production_ready, publish_completion_event

    ready, total = count_production_ready(bigquery_client(project), day)
    # The feature store's completion envelope, as the platform's Phase 4 publishes it (docs/platform.md §1.2).
    event = build_envelope(day, record_count=total)
    message_id = publish_completion_event(publisher_client(), project, event)
    say(
        f"Phase 4's feature store published its completion message ({total} players processed, {ready} ready; "
        f"correlation id {event.correlation_id}) as message {message_id}"
    )


#: The run's params: demo-length waits, so a whole day takes about a minute.
DEMO_CONF = {
    "event_wait_seconds": 120,
    "poll_interval_seconds": 2,
    "phase4_wait_minutes": 1,
    "straggler_wait_minutes": 0.5,
    "straggler_settle_polls": 3,
    # A demo-length in-flight window (production: 10 min): the worker's deliberate drops are presumed
    # lost after 15 s, so a straggler round sends them again within the one-minute run.
    "in_flight_minutes": 0.25,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="game date YYYY-MM-DD")
    parser.add_argument("--players", type=int, default=450)
    parser.add_argument("--ready-pct", type=float, default=93.0)
    parser.add_argument("--drop-rate", type=float, default=0.03, help="worker drop rate, to make stragglers")
    parser.add_argument("--event-delay", type=float, default=3.0, help="seconds between claiming and the event")
    parser.add_argument("--keep-stack", action="store_true", help="leave the emulators running afterwards")
    return parser.parse_args(argv)


def use_stack() -> tuple[dict[str, str], str, localstack.Stack | None]:
    """The emulators' environment and project, and the stack when this run started it (to stop it after)."""
    outer = {k: os.environ.get(k, "") for k in ("GCP_PROJECT", "PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")}
    if all(outer.values()):
        # The shell already points at a stack (a sourced .local/stack.env, or a test session's): use it.
        hosts = f"{outer['PUBSUB_EMULATOR_HOST']}, {outer['BIGQUERY_EMULATOR_HOST']}"
        say(f"using the stack the environment points at ({hosts})")
        base = localstack.stack_env(
            outer["GCP_PROJECT"], outer["PUBSUB_EMULATOR_HOST"], outer["BIGQUERY_EMULATOR_HOST"]
        )
        return {**base, **os.environ, "PYTHONPATH": base["PYTHONPATH"]}, outer["GCP_PROJECT"], None
    stack, started = localstack.read_state(), None
    if stack and stack.pubsub.alive() and stack.bigquery.alive():
        say(f"reusing the running stack (Pub/Sub :{stack.pubsub.port}, BigQuery :{stack.bigquery.port})")
    else:
        say("starting the Pub/Sub and BigQuery emulators")
        stack = started = localstack.start_stack(data_dir=localstack.DATA_DIR)
        localstack.write_state(stack)
    return {**os.environ, **stack.env()}, stack.project, started


def prepare_day(args: argparse.Namespace, env: dict[str, str]) -> None:
    """Tables and topics, the day's schedule and features, and the `dags test` metadata DB."""
    python = str(VENV_BIN / "python")
    run([python, "-m", "nba_phase5_local", "provision"], env)
    day = args.date.isoformat()
    run(
        [
            python,
            "-m",
            "nba_phase5_local",
            "seed",
            "--date",
            day,
            "--players",
            str(args.players),
            "--ready-pct",
            str(args.ready_pct),
        ],
        env,
    )
    ensure_airflow_db(env)


def start_worker(args: argparse.Namespace, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [str(VENV_BIN / "python"), "-m", "nba_phase5_local", "worker", "--drop-rate", str(args.drop_rate)]
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*argv, "--seed", args.date.strftime("%Y%m%d")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    say(f"local prediction worker started (drop rate {args.drop_rate:.0%}, log {log.relative_to(ROOT)})")
    return worker


def run_dag(args: argparse.Namespace, env: dict[str, str], project: str, log: Path) -> int:
    """The DAG run for the date, followed through BigQuery; its exit status."""
    say(f"starting DAG run {DAG_ID} for {args.date} (full log {log.relative_to(ROOT)})")
    conf = {"game_date": args.date.isoformat(), **DEMO_CONF}
    # The run's output goes to its log file only: make run reports progress from BigQuery, not log text.
    with log.open("w") as dag_log:
        dag = localstack.start_dag_test(args.date.isoformat(), conf, env, output=dag_log)
        try:
            follow(dag, args.date, project, args.event_delay)
        finally:
            # Interrupted (Ctrl-C, an error): the run must not outlive make run.
            if dag.poll() is None:
                localstack.stop_server(localstack.Server.of_child("dag-test", dag))
    return dag.returncode


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env, project, started = use_stack()
    os.environ.update(env)
    logs = localstack.LOCAL / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    worker = None
    try:
        prepare_day(args, env)
        worker_log = logs / f"worker-{args.date}.log"
        worker = start_worker(args, env, worker_log)
        returncode = run_dag(args, env, project, logs / f"dag-{args.date}.log")
        localstack.stop_server(localstack.Server.of_child("worker", worker))
        complete, text = summary(args.date, project, worker_log)
        print("\nSummary\n" + text + "\n")
        print(f"See every recorded day with: .venv/bin/nba-phase5 status --from {args.date} --to {args.date}")
        return 0 if complete and returncode == 0 else 1
    finally:
        if worker is not None:
            localstack.stop_server(localstack.Server.of_child("worker", worker))
        if started is not None and not args.keep_stack:
            say("stopping the emulators (pass KEEP_STACK=1 to keep them)")
            localstack.stop_stack(started)
            localstack.STATE_FILE.unlink(missing_ok=True)
            localstack.ENV_FILE.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
