"""The local Airflow's metadata DB: a private PostgreSQL cluster on 127.0.0.1 (stdlib only).

Made on first start with password (scram-sha-256) auth for every connection; as root, the cluster runs
as the system user `postgres` from a folder in the temp dir (which `postgres` can reach).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from supervise import Server, StackError, port_open, private_dir, run_checked, spawn, stop_server, tail

DB_USER = DB_NAME = "airflow"


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


def start_postgres(home: Path, port: int, log: Path, password: str, timeout: float = 60.0) -> Server:
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
        _init_cluster(home, data, password)
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
    server = spawn("postgres", _as_db_owner(argv), log, env=dict(os.environ))
    server.port = port
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if not server.alive() or time.monotonic() > deadline:
            stop_server(server)
            raise StackError(f"PostgreSQL did not listen on {port}:\n{tail(log)}")
        time.sleep(0.2)
    if fresh:
        createdb = [_postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", DB_USER, DB_NAME]
        run_checked(_as_db_owner(createdb), {**os.environ, "PGPASSWORD": password}, "createdb")
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


def _init_cluster(home: Path, data: Path, password: str) -> None:
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
        out.write(password + "\n")
    password_file = Path(name)
    if os.geteuid() == 0:
        shutil.chown(password_file, "postgres", "postgres")
    initdb = [
        _postgres_bin("initdb"),
        *("-D", str(data), "-U", DB_USER, "-E", "UTF8"),
        *("--auth-local=scram-sha-256", "--auth-host=scram-sha-256", f"--pwfile={password_file}"),
    ]
    try:
        run_checked(_as_db_owner(initdb), dict(os.environ), "initdb")
    finally:
        password_file.unlink(missing_ok=True)
