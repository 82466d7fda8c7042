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
import glob
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bundle  # tools/ is sys.path[0] when run as a script, and on the tests' pythonpath
import localstack
from localstack import (
    LOCAL,
    ROOT,
    Server,
    StackError,
    owner_only,
    port_open,
    private_dir,
    shown,
    stop_server,
    write_private,
)

DAG_ID = localstack.settings().DAG_ID
HOME = LOCAL / "airflow-server"  # not .local/airflow: `make run`'s `airflow dags test` must not share a scheduler's DB
ENV_FILE = LOCAL / "airflow.env"
AIRFLOW = ROOT / ".venv" / "bin" / "airflow"
PYTHON = ROOT / ".venv" / "bin" / "python"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USERNAME = "admin"
DB_USER = DB_NAME = "airflow"
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


def _kept_secrets(path: Path, make: dict[str, Callable[[], str]]) -> dict[str, str]:
    """The secrets at ``path`` (JSON), each one made by ``make`` the first time it is asked for and kept
    across restarts; the file is written owner-only (0600 in a 0700 folder) from the start."""
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: new() for name, new in make.items() if name not in kept}
    if missing or path.stat().st_mode & 0o077:
        kept |= missing
        write_private(path, json.dumps(kept))
    return kept


def _token() -> str:
    return secrets.token_urlsafe(32)


def _secrets(home: Path) -> dict[str, str]:
    """Every component must sign and check tokens with the same keys; ``db`` is the metadata DB's password."""
    return _kept_secrets(home / "local-secrets.json", {"jwt": _token, "key": _token, "db": _token})


def _password(home: Path) -> str:
    """The local admin's password, in the file the simple auth manager reads."""
    return _kept_secrets(home / "passwords.json", {USERNAME: lambda: secrets.token_urlsafe(12)})[USERNAME]


def settings(home: Path, port: int, db_port: int = 5432, composer: Path = bundle.OUT) -> dict[str, str]:
    """Airflow's configuration for a local server: LocalExecutor on 127.0.0.1:``port``, its metadata DB
    on the private PostgreSQL cluster at ``db_port`` (SQLite, shared by five components and the CLI,
    failed `airflow backfill create` with "database is locked"), and the DAGs and plugins folders of
    the Composer bundle ``composer`` (`make bundle`), so every component imports what Composer 3 would."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(composer / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(composer / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "15",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    }


def airflow_env(stack_env: dict[str, str], home: Path, port: int, db_port: int, composer: Path) -> dict[str, str]:
    """Environment of every component: the stack's emulators and connection, plus a local Airflow.

    ``PYTHONPATH`` is the bundle's ``dags/`` alone, as on Composer 3, which puts its synchronized
    ``dags/`` folder on every component's path: not the repo's ``plugins/``, so an import that only
    works from the checkout fails here as it would in the environment (the triggerer included, which
    imports trigger classes by path and adds no DAG folder of its own)."""
    keys = _secrets(home)
    # the DAG as Composer runs it: with its deadline alert, whatever the caller's shell turned off
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW") and k != localstack.settings().DEADLINE_ALERTS_ENV
    }
    env.update(stack_env)
    env.update(settings(home, port, db_port, composer))
    env["PYTHONPATH"] = str(composer / "dags")
    env["AIRFLOW__API__SECRET_KEY"] = keys["key"]
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = keys["jwt"]
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
        f"postgresql+psycopg2://{DB_USER}:{keys['db']}@127.0.0.1:{db_port}/{DB_NAME}"
    )
    return env


class AirflowAPI:
    """The slice of the REST API (/api/v2) the tests and `make up` use, with a token from /auth/token."""

    def __init__(self, url: str, username: str, password: str) -> None:
        if not url.startswith("http://127.0.0.1:"):
            raise ValueError(f"the local Airflow listens on 127.0.0.1 only, not {url}")
        self.url = url
        self.username = username
        self.password = password
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            body = self._request("POST", "/auth/token", {"username": self.username, "password": self.password})
            self._token = body["access_token"]
        return self._token

    def _request(self, method: str, path: str, payload: Any = None, *, auth: bool = False) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)  # noqa: S310 - loopback http only
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback http only
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise AirflowAPIError(exc.code, f"{method} {path} -> {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self._request("GET", f"/api/v2{path}", auth=True)

    def post(self, path: str, payload: Any) -> Any:
        return self._request("POST", f"/api/v2{path}", payload, auth=True)

    def patch(self, path: str, payload: Any) -> Any:
        return self._request("PATCH", f"/api/v2{path}", payload, auth=True)

    def healthy(self) -> bool:
        try:
            health = self._request("GET", "/api/v2/monitor/health")
        except (OSError, AirflowAPIError):
            return False
        return bool(health and health.get("metadatabase", {}).get("status") == "healthy")


class AirflowAPIError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _postgres_bin(tool: str) -> str:
    found = shutil.which(tool) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), reverse=True)), None)
    if not found:
        raise StackError(
            f"PostgreSQL's {tool} is missing: apt-get install postgresql (make up and make test do that when it "
            "is absent: tools/system_deps.sh)"
        )
    return found


def _as_db_owner(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the system user `postgres`."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def cluster_dir(home: Path) -> Path:
    """Where the cluster's files live: ``home/pg-data``, or as root a folder in the temp dir linked from
    there, since the `postgres` user may not reach ``home`` (pytest's and /root's folders are 0700)."""
    if os.geteuid() != 0:
        return home / "pg-data"
    digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:12]  # noqa: S324 - a name, not security
    return Path(tempfile.gettempdir()) / f"nba-phase5-pg-{digest}"


def remove_cluster(home: Path) -> None:
    """Delete the metadata DB's cluster of a stopped Airflow (`make clean`, test teardown)."""
    shutil.rmtree(cluster_dir(home), ignore_errors=True)
    if (home / "pg-data").is_symlink():
        (home / "pg-data").unlink()


def start_postgres(home: Path, port: int, log: Path, timeout: float = 60.0) -> Server:
    """A private PostgreSQL cluster for the metadata DB on 127.0.0.1:``port``.

    Made on first start with password (scram-sha-256) auth for every connection, its socket in its own
    0700 data folder and TCP on loopback only; kept across `make down` / `make up`. A cluster an older
    version made with `trust` auth is replaced (it holds only local runs' metadata).
    """
    data = cluster_dir(home)
    if (data / "PG_VERSION").exists() and _trusts_anyone(data):
        print(f"Replacing the local metadata DB in {data}: it was made with trust auth.", file=sys.stderr)
        remove_cluster(home)
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        _init_cluster(home, data)
    argv = [
        _postgres_bin("postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(data),
        "-c",
        "listen_addresses=127.0.0.1",
    ]
    server = _spawn("postgres", _as_db_owner(argv), dict(os.environ), log)
    server.port = port
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if not server.alive() or time.monotonic() > deadline:
            stop_server(server)
            raise StackError(f"PostgreSQL did not listen on {port}:\n{localstack._tail(log)}")
        time.sleep(0.2)
    if fresh:
        createdb = [_postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", DB_USER, DB_NAME]
        _run(_as_db_owner(createdb), {**os.environ, "PGPASSWORD": _secrets(home)["db"]}, "createdb")
    return server


def _uid_of(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _trusts_anyone(data: Path) -> bool:
    """Does the cluster's pg_hba.conf let anyone in without a password (a `trust` line)?"""
    try:
        lines = (data / "pg_hba.conf").read_text().splitlines()
    except PermissionError:
        return False  # the postgres user's file (root runs): we made it, after this check existed
    return any("trust" in line.split("#", 1)[0].split() for line in lines)


def _init_cluster(home: Path, data: Path) -> None:
    """initdb with scram-sha-256 for local and host connections; the password comes from a file
    readable by the cluster's owner only, removed once the cluster exists."""
    if data.exists() and data.stat().st_uid not in {os.geteuid(), _uid_of("postgres")}:
        raise StackError(f"{data} exists and belongs to someone else: remove it, or run as its owner")
    private_dir(data)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        if not (home / "pg-data").is_symlink():
            (home / "pg-data").symlink_to(data)
    # beside the data folder (initdb wants it empty), under a fresh name mkstemp creates 0600 (the
    # folder may be the shared temp dir), then handed to the cluster's owner
    handle, name = tempfile.mkstemp(prefix=f".{data.name}-", suffix=".pw", dir=data.parent)
    with os.fdopen(handle, "w") as out:
        out.write(_secrets(home)["db"] + "\n")
    password_file = Path(name)
    if os.geteuid() == 0:
        shutil.chown(password_file, "postgres", "postgres")
    initdb = [
        _postgres_bin("initdb"),
        *("-D", str(data), "-U", DB_USER, "-E", "UTF8"),
        *("--auth-local=scram-sha-256", "--auth-host=scram-sha-256", f"--pwfile={password_file}"),
    ]
    try:
        _run(_as_db_owner(initdb), dict(os.environ), "initdb")
    finally:
        password_file.unlink(missing_ok=True)


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, umask=0o077
    )
    if done.returncode != 0:
        raise StackError(f"{what} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")


def _spawn(name: str, argv: list[str], env: dict[str, str], log: Path) -> Server:
    """Start ``argv`` in a process group of its own; what it writes (logs, airflow.cfg with its Fernet
    key) is created owner-only (umask 077)."""
    private_dir(log.parent)
    with owner_only(), log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=0o077,
        )
    return Server.started(name, proc.pid, 0, str(log), argv[0])


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
    airflow = LocalAirflow(str(home), port, USERNAME, _password(home), composer=str(composer))
    airflow.servers.append(start_postgres(home, localstack.free_port(), log_dir / "postgres.log"))
    env = airflow.env(stack_env)
    try:
        _run([str(AIRFLOW), "db", "migrate"], env, "airflow db migrate")
        _run([str(AIRFLOW), "pools", "set", *bundle.pool_args()], env, "pool")
        for component in COMPONENTS:
            argv = component_argv(component, port)
            airflow.servers.append(_spawn(component, argv, env, log_dir / f"{component}.log"))
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
    airflow.servers.append(_spawn(component, component_argv(component, airflow.port), airflow.env(stack_env), log))


def start_worker(airflow: LocalAirflow, stack_env: dict[str, str], worker_args: tuple[str, ...], log: Path) -> None:
    """Start the local prediction worker (again, after ``kill_component(airflow, WORKER)``: a slow start)."""
    worker = [str(PYTHON), "-m", "nba_phase5", "worker", *worker_args]
    # The platform's workers are not part of the Composer deployment: the stand-in runs from the checkout.
    env = {**airflow.env(stack_env), "PYTHONPATH": str(ROOT / "plugins")}
    airflow.servers.append(_spawn(WORKER, worker, env, log))


def _wait_until_ready(airflow: LocalAirflow, timeout: float) -> None:
    api = airflow.api()
    deadline = time.monotonic() + timeout
    waiting_for = "the api-server"
    while time.monotonic() < deadline:
        for server in airflow.servers:
            if not server.alive():
                raise StackError(f"{server.name} exited during start-up:\n{localstack._tail(Path(server.log))}")
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


def processes_of(home: str) -> list[int]:
    """Live processes started for this Airflow home (found by their AIRFLOW_HOME), zombies excluded.

    Task processes put themselves in process groups of their own, so ending the components' groups
    can leave a running task behind; this finds them.
    """
    marker = f"AIRFLOW_HOME={home}".encode()
    mine = _ancestors()  # never this command or the shell that ran it, which may have sourced airflow.env
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int(entry.name) in mine or marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if _stat_fields(entry)[0] == "Z":
                continue
            if not any(word in (entry / "cmdline").read_bytes() for word in (b"airflow", b"nba_phase5")):
                continue
        except (OSError, IndexError):
            continue
        found.append(int(entry.name))
    return found


def _stat_fields(process: Path) -> list[str]:
    """/proc/<pid>/stat after the command name: state, parent pid, process group, …"""
    return (process / "stat").read_text().rsplit(")", 1)[1].split()


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(_stat_fields(Path(f"/proc/{pid}"))[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


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
    if left or port_open(airflow.port):
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
    return localstack.run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
