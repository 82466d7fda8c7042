"""The local tools' safety catch: ``seed``, ``publish-phase4`` and ``worker`` refuse a real project.

A guarded command runs only when every service it touches has its emulator variable set, or when
``--allow-real-project PROJECT_ID`` names the very project it would act on; a flag naming another project is
always refused. It reads only arguments and the environment, so it refuses before any client exists. Why these
three commands, and not ``provision`` or ``status``: docs/architecture.md, *Why each module is built as it
is*.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from nba_phase5 import config

FLAG = "--allow-real-project"
BIGQUERY = "BigQuery"
PUBSUB = "Pub/Sub"
#: The variable that sends each service's client to its emulator (:mod:`nba_phase5.bigquery.clients`).
EMULATOR_VARIABLES = {BIGQUERY: "BIGQUERY_EMULATOR_HOST", PUBSUB: "PUBSUB_EMULATOR_HOST"}


@dataclass(frozen=True)
class Action:
    """What a guarded command is about to do: the services it touches, and what it would change."""

    command: str
    services: tuple[str, ...]
    changes: str


def add_flag(parser: argparse.ArgumentParser) -> None:
    """Give a guarded command the ``--allow-real-project`` option."""
    parser.add_argument(
        FLAG,
        dest="allow_real_project",
        metavar="PROJECT_ID",
        help="run against real GCP (no emulator variables): must name the project the command acts on",
    )


def action_for(args: argparse.Namespace) -> Action | None:
    """The parsed command's :class:`Action`, or None for a command the guard leaves alone."""
    command = getattr(args, "command", None)
    if command == "seed":
        return Action(
            command,
            (BIGQUERY,),
            f"delete {args.date}'s schedule, feature-store and Phase 4 run-history rows and insert synthetic ones",
        )
    if command == "publish-phase4":
        # It reads BigQuery only to count ready players: given both counts, it touches Pub/Sub alone.
        counting = args.players_ready is None
        return Action(
            command,
            (PUBSUB, BIGQUERY) if counting else (PUBSUB,),
            f"publish a Phase 4 completion message for {args.date} that starts the real prediction batch",
        )
    if command == "worker":
        return Action(
            command,
            (PUBSUB, BIGQUERY),
            "consume the real workers' prediction requests, write staging tables and publish ready messages",
        )
    return None


def real_services(action: Action, environ: Mapping[str, str]) -> list[str]:
    """The services of ``action`` whose emulator variable is unset or blank: those would be real GCP."""
    return [s for s in action.services if not environ.get(EMULATOR_VARIABLES[s], "").strip()]


def refusal(action: Action, project: str, allowed: str | None, environ: Mapping[str, str]) -> str | None:
    """Why ``action`` must not run against ``project``, as one line (the CLI prefixes its name); None when
    it may.

    :param action: what the command would do.
    :param project: the project it would act on (``--project`` / ``GCP_PROJECT``).
    :param allowed: the value of ``--allow-real-project``, if given.
    :param environ: the environment (the emulator variables).
    """
    if allowed is not None and allowed != project:
        return (
            f"{FLAG} names project {allowed!r} but {action.command} would act on {project!r} and "
            f"{action.changes}; pass {FLAG} {project} only if that is really meant"
        )
    real = real_services(action, environ)
    if not real or allowed == project:
        return None
    unset = ", ".join(EMULATOR_VARIABLES[s] for s in real)
    return (
        f"refusing to run {action.command} against real project {project!r} ({unset} not set, so "
        f"{' and '.join(real)} would be real GCP): it would {action.changes}; "
        f"use the emulators (source .local/stack.env) or pass {FLAG} {project}"
    )


def enforce(args: argparse.Namespace, prog: str, environ: Mapping[str, str] = os.environ) -> None:
    """Exit 2 with a one-line usage error when the parsed command is refused; return when it may run.

    :param args: the parsed command line (its ``--project``, and the command's own arguments).
    :param prog: the program's name, for the argparse-style ``prog command: error: ...`` line.
    :param environ: the environment (the emulator variables and ``GCP_PROJECT``).
    """
    action = action_for(args)
    if action is None:
        return
    # Resolved as the command itself will resolve it (--project, else GCP_PROJECT), so both agree.
    refused = refusal(action, config.project_id(args.project), args.allow_real_project, environ)
    if refused:
        print(f"{prog} {action.command}: error: {refused}", file=sys.stderr)
        raise SystemExit(2)
