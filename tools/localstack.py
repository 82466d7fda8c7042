"""Start and stop the local GCP stack: the official Pub/Sub emulator and bqemulator.

Standard library only, so the Makefile and the test suite share it. Each server runs in its own
process group (the gcloud wrapper forks a java child); stop ends the whole group.

    python tools/localstack.py up [--pubsub-port 8085] [--bq-port 9050] [--bq-grpc-port 9060]
    python tools/localstack.py down
    python tools/localstack.py status
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

# Re-exported: the tools and the tests reach the supervision helpers through this module too.
from ports import ports_left
from supervise import (  # noqa: F401
    Server,
    StackError,
    free_port,
    owner_only,
    port_open,
    private_dir,
    run_cli,
    spawn_listening,
    stop_server,
    tail,
    write_private,
)

ROOT = Path(__file__).resolve().parents[1]
# NBA_PHASE5_LOCAL_DIR moves the state, logs and data (tests run `make up` in a temp dir with it).
LOCAL = Path(os.environ.get("NBA_PHASE5_LOCAL_DIR") or ROOT / ".local")


def settings() -> Any:
    """The package's settings, ``nba_phase5.config`` (standard library only: any Python can read it)."""
    if str(ROOT / "plugins") not in sys.path:
        sys.path.insert(0, str(ROOT / "plugins"))
    from nba_phase5 import config

    return config


STATE_FILE = LOCAL / "stack.json"
# `make stack-up`/`make run` keep BigQuery's tables here: a second run of a date sees the first's (dedup).
DATA_DIR = LOCAL / "bigquery-data"
ENV_FILE = LOCAL / "stack.env"
BQEMU_PYTHON = ROOT / ".local" / "bqemu-venv" / "bin" / "python"  # built by `make venv`, wherever LOCAL is
DEFAULT_PROJECT = "local-nba-props"
START_TIMEOUT_S = 90.0

# The emulator runs `INSTALL spatial` at start, which needs the internet; importing the extension from
# the duckdb-extension-spatial wheel first makes that INSTALL a no-op offline.
BQEMU_LAUNCHER = (
    "import sys\n"
    "from duckdb_extensions import import_extension\n"
    "import_extension('spatial')\n"
    "from bqemulator.cli import main\n"
    "sys.argv[0] = 'bqemulator'\n"
    "main()\n"
)


@dataclass
class Stack:
    project: str
    pubsub: Server
    bigquery: Server
    bigquery_grpc_port: int

    def env(self) -> dict[str, str]:
        """What a shell or a test needs to use this stack (Airflow included)."""
        return stack_env(self.project, f"127.0.0.1:{self.pubsub.port}", f"http://127.0.0.1:{self.bigquery.port}")


def stack_env(project: str, pubsub_host: str, bigquery_host: str) -> dict[str, str]:
    """Environment for the package, the CLI and a local Airflow against the given emulators."""
    return {
        "GCP_PROJECT": project,
        "GOOGLE_CLOUD_PROJECT": project,
        "PUBSUB_EMULATOR_HOST": pubsub_host,
        "BIGQUERY_EMULATOR_HOST": bigquery_host,
        "AIRFLOW_HOME": str(LOCAL / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {"project": project, "is_anonymous": True}}
        ),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")) if p),
    }


def dags_test_env() -> dict[str, str]:
    """For ``airflow dags test`` only (make run, bench, stack.env); the scheduler keeps the alert (airflow_env)."""
    # Airflow 3.3.2's `dags test` fails a successful run of a DAG with a deadline alert (apache/airflow#73428):
    return {settings().DEADLINE_ALERTS_ENV: "off"}  # those runs leave it out (sla.py); delete once Airflow fixes it


def start_dag_test(
    game_date: str, conf: dict[str, object], env: dict[str, str], output: IO[str] | int = subprocess.PIPE
) -> subprocess.Popen[str]:
    """`airflow dags test` of the DAG for one date, in its own session; its output to ``output`` (a pipe)."""
    env = {**env, **dags_test_env()}
    return subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "airflow"),
            "dags",
            "test",
            settings().DAG_ID,
            game_date,
            "-c",
            json.dumps(conf),
        ],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def shown(path: Path) -> str:
    """``path`` as a user types it: relative to the checkout when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def pubsub_argv(port: int, project: str) -> list[str]:
    gcloud = shutil.which("gcloud")
    if not gcloud:
        raise StackError(
            "gcloud is not installed. Install the Google Cloud CLI and its Pub/Sub emulator, e.g. "
            "`apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator` "
            "or `gcloud components install beta pubsub-emulator`."
        )
    sdk_root = Path(os.path.realpath(gcloud)).parents[1]
    if not (sdk_root / "platform" / "pubsub-emulator").is_dir():
        raise StackError(
            f"The Pub/Sub emulator component is missing from {sdk_root}. Install it with "
            "`apt-get install google-cloud-cli-pubsub-emulator` or `gcloud components install pubsub-emulator`."
        )
    return [gcloud, "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}", f"--project={project}"]


def bigquery_argv(port: int, grpc_port: int, project: str, data_dir: Path | None = None) -> list[str]:
    if not BQEMU_PYTHON.exists():
        raise StackError(f"{BQEMU_PYTHON} is missing: run `make venv` to create the emulator's virtualenv")
    storage = ["--persistent", "--data-dir", str(data_dir)] if data_dir else ["--ephemeral"]
    return [
        str(BQEMU_PYTHON),
        "-c",
        BQEMU_LAUNCHER,
        "start",
        "--project",
        project,
        "--rest-port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        *storage,
        "--log-level",
        "warning",
    ]


def start_stack(
    project: str = DEFAULT_PROJECT,
    *,
    pubsub_port: int = 8085,
    bq_port: int = 9050,
    bq_grpc_port: int = 9060,
    log_dir: Path | None = None,
    timeout: float = START_TIMEOUT_S,
    data_dir: Path | None = None,
) -> Stack:
    """Start both emulators. With ``data_dir`` BigQuery keeps its tables there across restarts."""
    log_dir = log_dir or LOCAL / "logs"
    pubsub = spawn_listening(
        "pubsub-emulator", pubsub_argv(pubsub_port, project), log_dir / "pubsub.log", pubsub_port, timeout, cwd=LOCAL
    )
    try:
        bigquery = spawn_listening(
            "bigquery-emulator",
            bigquery_argv(bq_port, bq_grpc_port, project, data_dir),
            log_dir / "bigquery.log",
            bq_port,
            timeout,
            also_wait_for=(bq_grpc_port,),
            cwd=LOCAL,
        )
    except BaseException:
        stop_server(pubsub)
        raise
    return Stack(project, pubsub, bigquery, bq_grpc_port)


def stop_stack(stack: Stack) -> None:
    stop_server(stack.bigquery)
    stop_server(stack.pubsub)


def write_state(stack: Stack) -> None:
    private_dir(LOCAL)
    STATE_FILE.write_text(json.dumps(asdict(stack), indent=2))
    ENV_FILE.write_text(
        "# Written by `make stack-up`; `source` it to use the local stack (and `airflow dags test`: dags_test_env).\n"
        + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in {**stack.env(), **dags_test_env()}.items())
    )


def read_state() -> Stack | None:
    if not STATE_FILE.exists():
        return None
    raw = json.loads(STATE_FILE.read_text())
    return Stack(raw["project"], Server(**raw["pubsub"]), Server(**raw["bigquery"]), raw["bigquery_grpc_port"])


def cmd_up(args: argparse.Namespace) -> int:
    current = read_state()
    if current and current.pubsub.alive() and current.bigquery.alive():
        print(f"Stack already up: Pub/Sub :{current.pubsub.port}, BigQuery :{current.bigquery.port}")
        write_state(current)
        return 0
    if current:
        stop_stack(current)
    stack = start_stack(
        args.project,
        pubsub_port=args.pubsub_port,
        bq_port=args.bq_port,
        bq_grpc_port=args.bq_grpc_port,
        data_dir=DATA_DIR,
    )
    write_state(stack)
    print(f"Pub/Sub emulator on 127.0.0.1:{stack.pubsub.port} (pgid {stack.pubsub.pid})")
    print(
        f"BigQuery emulator on 127.0.0.1:{stack.bigquery.port}, gRPC {stack.bigquery_grpc_port} "
        f"(pgid {stack.bigquery.pid})"
    )
    print(f"Project {stack.project}; BigQuery data kept in {shown(DATA_DIR)} (make clean removes it).")
    print(f"Use it from a shell with: source {shown(ENV_FILE)}")
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    stack = read_state()
    if stack is None:
        print("Stack is not up.")
        return 0
    stop_stack(stack)
    STATE_FILE.unlink(missing_ok=True)
    ENV_FILE.unlink(missing_ok=True)
    ours, strangers = ports_left((stack.pubsub, stack.bigquery), [stack.bigquery_grpc_port])
    if ours:
        print(f"Stack stopped, but its processes still listen on ports {ours}.", file=sys.stderr)
        return 1
    print(f"Stack stopped; ports freed{f' (since taken by another program: {strangers})' if strangers else ''}.")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    stack = read_state()
    if stack is None:
        print("Stack is not up.")
        return 1
    for server in (stack.pubsub, stack.bigquery):
        state = "up" if server.alive() and port_open(server.port) else "DOWN"
        print(f"{server.name}: {state} on :{server.port} (log {server.log})")
    return 0 if stack.pubsub.alive() and stack.bigquery.alive() else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local GCP stack for nba_phase5")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start both emulators and write .local/stack.env")
    up.add_argument("--project", default=os.environ.get("GCP_PROJECT", DEFAULT_PROJECT))
    up.add_argument("--pubsub-port", type=int, default=int(os.environ.get("PUBSUB_PORT", 8085)))
    up.add_argument("--bq-port", type=int, default=int(os.environ.get("BQ_PORT", 9050)))
    up.add_argument("--bq-grpc-port", type=int, default=int(os.environ.get("BQ_GRPC_PORT", 9060)))
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop both emulators and everything they forked").set_defaults(func=cmd_down)
    sub.add_parser("status", help="are they up?").set_defaults(func=cmd_status)
    return run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
