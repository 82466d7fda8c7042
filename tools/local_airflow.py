"""A real local Airflow on the local stack: api-server, scheduler, dag-processor, triggerer and the worker.

Standard library only, so the Makefile and the e2e tests share it. LocalExecutor, the metadata DB on
a private PostgreSQL cluster, every port on 127.0.0.1, each component in its own process group; `down`
ends every group and checks that nothing is left. `make up` starts the emulators first
(tools/localstack.py) and provisions them.

    python tools/local_airflow.py up [--port 8080] [--drop-rate 0.03]
    python tools/local_airflow.py down
    python tools/local_airflow.py status
    python tools/local_airflow.py purge       # stop it and delete its metadata DB (make clean)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bundle  # tools/ is sys.path[0] when run as a script, and on the tests' pythonpath
import localstack
from airflow_api import AirflowAPI, AirflowAPIError
from local_airflow_config import USERNAME, admin_password, airflow_env, shared_secrets
from local_postgres import remove_cluster, start_postgres
from localstack import LOCAL, ROOT, shown
from ports import ports_left
from supervise import (
    Server,
    StackError,
    port_open,
    private_dir,
    processes_of,
    run_checked,
    run_cli,
    spawn,
    stop_server,
    tail,
    write_private,
)

DAG_ID = localstack.settings().DAG_ID
HOME = LOCAL / "airflow-server"  # not .local/airflow: `make run`'s `airflow dags test` must not share a scheduler's DB
ENV_FILE = LOCAL / "airflow.env"
AIRFLOW = ROOT / ".venv" / "bin" / "airflow"
PYTHON = ROOT / ".venv" / "bin" / "python"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
START_TIMEOUT_S = 240.0


@dataclass
class LocalAirflow:
    home: str
    port: int
    username: str
    password: str
    servers: list[Server] = field(default_factory=list)
    #: The Composer bundle (tools/bundle.py) every component runs from, as Composer 3 lays it out.
    composer: str = str(bundle.OUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self) -> AirflowAPI:
        return AirflowAPI(self.url, self.username, self.password)

    def env(self, stack_env: dict[str, str]) -> dict[str, str]:
        """What the components and the airflow CLI run with, against this Airflow and ``stack_env``."""
        db_port = next(s.port for s in self.servers if s.name == "postgres")
        return airflow_env(stack_env, Path(self.home), self.port, db_port, Path(self.composer))


WORKER = "prediction-worker"


def start_airflow(
    stack_env: dict[str, str],
    *,
    home: Path = HOME,
    port: int = 8080,
    log_dir: Path | None = None,
    worker_args: tuple[str, ...] = ("--drop-rate", "0.03", "--seed", "1"),
    timeout: float = START_TIMEOUT_S,
    composer: Path = bundle.OUT,
    extra_dags: tuple[Path, ...] = (),
) -> LocalAirflow:
    """Build the Composer bundle in ``composer`` (plus ``extra_dags``, DAG files of the tests' own, in
    its dags/), migrate the DB, create the pool, start every component (running from the bundle) and the
    worker; wait until the DAG is unpaused."""
    if port_open(port):
        raise StackError(f"port {port} is already in use; stop what holds it or pass another port")
    private_dir(home)
    log_dir = log_dir or home / "logs" / "components"
    bundle.build(composer)
    for dag_file in extra_dags:
        shutil.copy2(dag_file, composer / "dags" / dag_file.name)
    airflow = LocalAirflow(str(home), port, USERNAME, admin_password(home), composer=str(composer))
    db_password = shared_secrets(home)["db"]
    airflow.servers.append(start_postgres(home, localstack.free_port(), log_dir / "postgres.log", db_password))
    env = airflow.env(stack_env)
    try:
        run_checked([str(AIRFLOW), "db", "migrate"], env, "airflow db migrate")
        run_checked([str(AIRFLOW), "pools", "set", *bundle.pool_args()], env, "pool")
        for component in COMPONENTS:
            argv = component_argv(component, port)
            airflow.servers.append(spawn(component, argv, log_dir / f"{component}.log", env=env))
        start_worker(airflow, stack_env, worker_args, log_dir / "worker.log")
        _wait_until_ready(airflow, timeout)
    except BaseException:
        stop_airflow(airflow)
        raise
    return airflow


def component_argv(component: str, port: int) -> list[str]:
    argv = [str(AIRFLOW), component]
    if component == "api-server":
        argv += ["--port", str(port), "--host", "127.0.0.1"]
    return argv


def kill_component(airflow: LocalAirflow, component: str) -> None:
    """SIGKILL one component's process group, as a crash or an evicted pod would end it (fault tests)."""
    server = next(s for s in airflow.servers if s.name == component)
    os.killpg(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.alive() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(server.pid, os.WNOHANG)
        time.sleep(0.1)
    airflow.servers.remove(server)


def start_component(airflow: LocalAirflow, component: str, stack_env: dict[str, str]) -> None:
    """Start one component again (after :func:`kill_component`), logging beside the others."""
    log_dir = Path(airflow.home) / "logs" / "components"
    log = log_dir / f"{component}-restarted.log"
    airflow.servers.append(spawn(component, component_argv(component, airflow.port), log, env=airflow.env(stack_env)))


def start_worker(airflow: LocalAirflow, stack_env: dict[str, str], worker_args: tuple[str, ...], log: Path) -> None:
    """Start the local prediction worker (again, after ``kill_component(airflow, WORKER)``: a slow start)."""
    worker = [str(PYTHON), "-m", "nba_phase5_local", "worker", *worker_args]
    # The platform's workers are not part of the Composer deployment: the stand-in runs from the checkout.
    env = {**airflow.env(stack_env), "PYTHONPATH": str(ROOT / "plugins")}
    airflow.servers.append(spawn(WORKER, worker, log, env=env))


def _wait_until_ready(airflow: LocalAirflow, timeout: float) -> None:
    api = airflow.api()
    deadline = time.monotonic() + timeout
    waiting_for = "the api-server"
    while time.monotonic() < deadline:
        for server in airflow.servers:
            if not server.alive():
                raise StackError(f"{server.name} exited during start-up:\n{tail(Path(server.log))}")
        if api.healthy():
            waiting_for = f"the DAG {DAG_ID} to be parsed"
            try:
                dag = api.get(f"/dags/{DAG_ID}")
            except AirflowAPIError as exc:
                if exc.status != 404:
                    raise
            else:
                if dag["is_paused"]:
                    api.patch(f"/dags/{DAG_ID}", {"is_paused": False})
                return
        time.sleep(1)
    raise StackError(f"Airflow not ready after {timeout:.0f}s (waiting for {waiting_for}); logs in {airflow.home}")


def stop_airflow(airflow: LocalAirflow) -> list[str]:
    """End every component's process group, then any task left running; returns what is still alive."""
    for server in reversed(airflow.servers):
        stop_server(server, grace=20.0)
    strays = processes_of(airflow.home)
    for pid in strays:
        with contextlib.suppress(OSError):
            group = os.getpgid(pid)
            if group in strays:  # a group led by one of ours (a task process leads its own): end it whole
                stop_server(Server.started("task", group, 0, "", ""), grace=10.0)
            else:  # in someone else's group (a script that ran the airflow CLI): this process only
                os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    for pid in processes_of(airflow.home):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    left = [s.name for s in airflow.servers if s.alive()]
    return left + [f"pid {pid}" for pid in processes_of(airflow.home)]


def _state_file(home: Path | str) -> Path:
    return Path(home) / "server.json"


def write_state(airflow: LocalAirflow, env: dict[str, str]) -> None:
    """server.json (holds the admin password) and airflow.env (the keys, the DB's password): owner-only."""
    write_private(_state_file(airflow.home), json.dumps(asdict(airflow), indent=2))
    keep = {k: v for k, v in env.items() if k.startswith(("AIRFLOW", "GCP_", "GOOGLE_", "PUBSUB_", "BIGQUERY_"))}
    keep["PYTHONPATH"] = env.get("PYTHONPATH", "")
    write_private(
        ENV_FILE,
        "# Written by `make up`; `source` it to use the airflow CLI against the running local Airflow.\n"
        + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(keep.items())),
    )


def read_state(home: Path = HOME) -> LocalAirflow | None:
    path = _state_file(home)
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    raw["servers"] = [Server(**s) for s in raw["servers"]]
    return LocalAirflow(**raw)


def cmd_up(args: argparse.Namespace) -> int:
    current = read_state()
    if current and all(s.alive() for s in current.servers):
        _print_login(current)
        return 0
    if current:
        stop_airflow(current)
    stack = localstack.read_state()
    if stack is None or not (stack.pubsub.alive() and stack.bigquery.alive()):
        raise StackError("the local stack is not up: run `make up` (or `make stack-up` first)")
    worker_args = ("--drop-rate", str(args.drop_rate), "--seed", "1")
    airflow = start_airflow(stack.env(), port=args.port, worker_args=worker_args)
    write_state(airflow, airflow.env(stack.env()))
    _print_login(airflow)
    return 0


def _print_login(airflow: LocalAirflow) -> None:
    print(f"Airflow UI:   {airflow.url}  (user {airflow.username}, password {airflow.password})")
    print(f"Components:   {', '.join(f'{s.name} pgid {s.pid}' for s in airflow.servers)}")
    print(f"Logs:         {shown(Path(airflow.home, 'logs', 'components'))}")
    print(f"CLI:          source {shown(ENV_FILE)} && .venv/bin/airflow dags list")
    print("A game day:   make seed DATE=2025-11-28, trigger the DAG (UI or CLI) with conf")
    print('              {"game_date": "2025-11-28", "event_wait_seconds": 600}, then make publish DATE=2025-11-28')
    print("              while its sensor is deferred; `make down` stops everything.")


def cmd_down(_: argparse.Namespace) -> int:
    airflow = read_state()
    if airflow is None:
        print("Local Airflow is not up.")
        return 0
    left = stop_airflow(airflow)
    _state_file(airflow.home).unlink(missing_ok=True)
    ENV_FILE.unlink(missing_ok=True)
    ours, _ = ports_left(airflow.servers, [airflow.port])
    if left or ours:
        print(f"Airflow stopped, but {left or [f'port {airflow.port}']} still alive.", file=sys.stderr)
        return 1
    print(f"Airflow stopped: {len(airflow.servers)} process groups ended, port {airflow.port} freed.")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    if read_state() is not None:
        cmd_down(args)
    remove_cluster(HOME)
    print("Local Airflow's metadata DB removed.")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    airflow = read_state()
    if airflow is None:
        print("Local Airflow is not up.")
        return 1
    for server in airflow.servers:
        print(f"{server.name}: {'up' if server.alive() else 'DOWN'} (log {server.log})")
    return 0 if all(s.alive() for s in airflow.servers) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A real local Airflow for nba_phase5")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Airflow's components and the worker on the running stack")
    up.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", 8080)))
    up.add_argument("--drop-rate", type=float, default=0.03, help="the local worker's drop rate")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop every component's process group").set_defaults(func=cmd_down)
    sub.add_parser("status", help="is each component up?").set_defaults(func=cmd_status)
    sub.add_parser("purge", help="stop it and delete its metadata DB").set_defaults(func=cmd_purge)
    return run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
