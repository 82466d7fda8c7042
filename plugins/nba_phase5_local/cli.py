"""``nba-phase5 <command>`` (``python -m nba_phase5_local``): provisioning, seeding and Phase 4's event, from a shell"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from nba_phase5 import config
from nba_phase5.bigquery import clients
from nba_phase5.core.contract import ENVELOPE_STATUSES, InvalidEventError, parse_game_date
from nba_phase5_local import phase4_publisher, project_guard
from nba_phase5_local.phase4_publisher import (
    PHASE4_PROCESSORS,
    SHAPES,
    build_message,
    count_production_ready,
    latest_run,
    publish_completion_event,
)
from nba_phase5_local.provisioning import provision
from nba_phase5_local.provisioning_check import check
from nba_phase5_local.seeding import seed_day
from nba_phase5_local.status import COMPLETION_GOAL_PCT, render, report
from nba_phase5_local.status_html import render_html
from nba_phase5_local.worker import PredictionWorker, WorkerOptions


def _game_date(value: str) -> date:
    try:
        return parse_game_date(value)
    except InvalidEventError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def _percent(value: str) -> float:
    pct = float(value)
    if not 0 <= pct <= 100:
        raise argparse.ArgumentTypeError("must be between 0 and 100")
    return pct


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return number


def cmd_provision(args: argparse.Namespace) -> int:
    project = config.project_id(args.project)
    if not args.check:
        print(provision(project).summary())
        return 0
    problems = check(project)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s): project {project} is not ready for the DAG.", file=sys.stderr)
        return 1
    print(f"OK: project {project} has every topic, subscription, table and column the DAG uses.")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    client = clients.bigquery_client(config.project_id(args.project))
    report = seed_day(
        client,
        args.date,
        players=args.players,
        ready_pct=args.ready_pct,
        games=not args.no_games,
        phase4_run=not args.no_phase4_run,
        phase4_status=args.phase4_status,
    )
    print(report.summary())
    return 0


def cmd_publish_phase4(args: argparse.Namespace) -> int:
    project = config.project_id(args.project)
    try:  # what no feature store can make valid is refused before one is read
        if (args.players_ready is None) != (args.players_total is None):
            raise InvalidEventError("give both --players-ready and --players-total, or neither")
        phase4_publisher.check_status(args.shape, args.status)
    except InvalidEventError as exc:
        print(f"error: not published: {exc.reason}", file=sys.stderr)
        return 2
    run_id, duration = args.run_id, 0.0
    if args.players_ready is None:
        client = clients.bigquery_client(project)
        ready, total = count_production_ready(client, args.date)
        if total == 0:
            print(f"error: the feature store has no players for {args.date}; seed it first", file=sys.stderr)
            return 1
        # As Phase 4 does: the plan's shape carries the run id of the run that wrote the features, and the
        # envelope that run's runtime (its correlation id is a new id unless given: docs/platform.md §1.2).
        run = latest_run(client, args.date) or {}
        if args.shape == "plan":
            run_id = run_id or run.get("run_id")
        duration = float(run.get("duration_seconds") or 0.0)
    else:
        ready, total = args.players_ready, args.players_total
    try:
        event = build_message(
            args.date,
            shape=args.shape,
            players_ready=ready,
            players_total=total,
            processor=args.processor,
            status=args.status,
            run_id=run_id,
            duration_seconds=duration,
        )
    except InvalidEventError as exc:
        print(f"error: not published: {exc.reason}", file=sys.stderr)
        return 2
    message_id = publish_completion_event(clients.publisher_client(), project, event)
    print(f"Published {event.to_json().decode()} as message {message_id}")
    return 0


def _rate(value: str) -> float:
    rate = float(value)
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return rate


def cmd_worker(args: argparse.Namespace) -> int:
    options = WorkerOptions(
        project=config.project_id(args.project),
        drop_rate=args.drop_rate,
        seed=args.seed,
        delay_ms=args.delay_ms,
        crash_after=args.crash_after,
        max_messages=args.max_messages,
        idle_exit=args.idle_exit,
    )

    stop = threading.Event()
    # SIGTERM (make run stopping it, a container shutting down) ends the loop after the current batch.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stats = PredictionWorker(options, stop=stop).run()
    print(
        f"Worker: {stats.received} requests received, {stats.written} predictions written, "
        f"{stats.duplicates} duplicates skipped, {stats.dropped} dropped, {stats.invalid} invalid.",
        flush=True,
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.date and (args.date_from or args.date_to):
        print("error: give --date, or --from and --to", file=sys.stderr)
        return 2
    if args.date:
        first = last = args.date
    elif args.date_from and args.date_to:
        first, last = args.date_from, args.date_to
    else:
        print("error: give --date, or both --from and --to", file=sys.stderr)
        return 2
    if first > last:
        print("error: --from is after --to", file=sys.stderr)
        return 2
    result = report(clients.bigquery_client(config.project_id(args.project)), first, last)
    if args.html:
        Path(args.html).write_text(render_html(result, COMPLETION_GOAL_PCT), encoding="utf-8")
        print(f"Wrote {args.html}: {len(result.days)} dates, go/no-go {'GO' if result.go else 'NO-GO'}")
        return 0
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(render(result))
    return 0


def _add_publish_phase4(sub: Any) -> None:
    """The ``publish-phase4`` command: the platform's envelope by default (docs/platform.md §1.2).

    :param sub: the parser's sub-command registry.
    """
    p = sub.add_parser("publish-phase4", help="publish Phase 4's completion message, as Phase 4 does")
    p.add_argument("--date", required=True, type=_game_date, help="game date YYYY-MM-DD")
    p.add_argument("--players-ready", type=_count, help="default: counted in the feature store")
    p.add_argument(
        "--players-total", type=_count, help="players written (the envelope's record_count); default: counted"
    )
    p.add_argument(
        "--run-id",
        "--correlation-id",
        dest="run_id",
        help="the envelope's correlation_id (default: its new execution id), or the plan's run_id (default: "
        "Phase 4's latest run-history row's, when counting)",
    )
    p.add_argument(
        "--shape",
        choices=SHAPES,
        default="envelope",
        help="envelope: the platform's real message (default); plan: the planning guide's; script: "
        "{event_type, game_date, players_ready}",
    )
    p.add_argument(
        "--processor",
        choices=tuple(PHASE4_PROCESSORS),
        default=config.PHASE4_PROCESSOR,
        help="the sending Phase 4 processor (default the feature store; the others' messages are acked and counted)",
    )
    p.add_argument(
        "--status",
        choices=ENVELOPE_STATUSES,
        default="success",
        help="the envelope's status (default success; failed and no_data are not ready)",
    )
    project_guard.add_flag(p)
    p.set_defaults(func=cmd_publish_phase4)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nba-phase5",  # the console script (pyproject.toml); `python -m nba_phase5_local` runs the same
        description="NBA Phase 4 → Phase 5 hand-off: provisioning, seeding and operations.",
    )
    parser.add_argument("--project", help="GCP project (default: $GCP_PROJECT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("provision", help="create every topic, subscription, dataset and table (idempotent)")
    p.add_argument("--check", action="store_true", help="change nothing: list what the project lacks, exit 1 if any")
    # Also accepted after the command (`provision --check --project X`, as tools/deploy.py runs it):
    # argparse refuses a top-level option there. SUPPRESS keeps a --project given before the command.
    p.add_argument("--project", default=argparse.SUPPRESS, help="GCP project (default: $GCP_PROJECT)")
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("seed", help="write a realistic game day to BigQuery (replaces that date only)")
    p.add_argument("--date", required=True, type=_game_date, help="game date YYYY-MM-DD")
    p.add_argument("--players", type=_positive, default=450, help="players on the slate (default 450)")
    p.add_argument("--ready-pct", type=_percent, default=93.0, help="percent production-ready (default 93)")
    p.add_argument("--no-games", action="store_true", help="seed an off day: no games, no players")
    p.add_argument("--no-phase4-run", action="store_true", help="leave out Phase 4's run-history row")
    p.add_argument("--phase4-status", choices=("success", "partial"), default="success", help="Phase 4's run status")
    project_guard.add_flag(p)
    p.set_defaults(func=cmd_seed)

    _add_publish_phase4(sub)

    p = sub.add_parser("worker", help="run the local prediction worker (stand-in for Phase 5 workers)")
    p.add_argument("--drop-rate", type=_rate, default=0.0, help="fraction of requests acked without a prediction")
    p.add_argument("--seed", type=int, default=0, help="makes the dropped set reproducible")
    p.add_argument("--delay-ms", type=_count, default=0, help="pause before each batch")
    p.add_argument("--crash-after", type=_count, help="exit hard after this many requests, mid-batch")
    p.add_argument("--max-messages", type=_positive, help="stop after this many requests")
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds without a request")
    project_guard.add_flag(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("status", help="per-date run report and the go/no-go checklist")
    p.add_argument("--date", type=_game_date, help="one game date")
    p.add_argument("--from", dest="date_from", type=_game_date, help="first game date of a range")
    p.add_argument("--to", dest="date_to", type=_game_date, help="last game date of a range")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML page with charts to FILE")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("google", "urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    # Before any client, and before probing the emulators: a refused command touches nothing (exit 2).
    project_guard.enforce(args, parser.prog)

    try:
        clients.check_emulators()
    except clients.EmulatorUnreachableError as exc:
        raise SystemExit(str(exc)) from None
    result: int = args.func(args)
    return result
