"""Process supervision for the local stack and the local Airflow: one way to start, recognise and stop
what `make stack-up`, `make up` and `make run` start (standard library only).

A process is started in a session of its own, so its whole group can be ended; a recorded pid is
signalled only while its leader is still the process we started (same boot, start time and program).
Everything it writes is owner-only (umask 077): logs, state files and ``airflow.cfg`` hold secrets.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StackError(RuntimeError):
    """Something of the local stack or the local Airflow could not be started or stopped."""


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def process_identity(pid: int, program: str) -> str | None:
    """Which process ``pid`` is, not just its number: this boot, its start time (clock ticks since
    boot) and the program it runs. None when there is no such process or it runs another program.

    The program is the basename of the argv[0] we started it with, looked for in its command line
    (Airflow's components rename themselves with setproctitle, but keep that word). A process that is
    exiting, or has exited and is not yet reaped (a zombie), has no command line left: its start time
    alone tells."""
    try:
        boot = BOOT_ID.read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return None
    state, start = fields[0], fields[19]  # fields 3 and 22 of /proc/<pid>/stat
    exiting = state == "Z" or not cmdline.strip()
    return f"{boot}:{start}:{program}" if exiting or program in cmdline else None


@dataclass
class Server:
    """A process group we started: ``pid`` is its leader; ``identity`` (``process_identity`` at start)
    tells that leader from a stranger given the same pid later (after a reboot, or pid reuse)."""

    name: str
    pid: int
    port: int
    log: str
    identity: str = ""

    @classmethod
    def started(cls, name: str, pid: int, port: int, log: str, argv0: str) -> Server:
        return cls(name, pid, port, log, process_identity(pid, Path(argv0).name) or "")

    @classmethod
    def of_child(cls, name: str, child: subprocess.Popen[Any]) -> Server:
        """A child we started in its own session (``start_new_session=True``), as a stoppable group."""
        if child.poll() is not None:
            return cls(name, child.pid, 0, "")  # exited and reaped: its pid may be anyone's now
        argv = child.args if isinstance(child.args, list) else [child.args]
        return cls.started(name, child.pid, 0, "", str(argv[0]))

    def ours(self) -> bool:
        """Is the group's leader still the process we started? (False for a state file of an older
        version, which recorded no identity: its pid is never signalled.)"""
        if not self.identity:
            return False
        program = self.identity.rsplit(":", 1)[1]
        return process_identity(self.pid, program) == self.identity

    def alive(self) -> bool:
        """Is our group still running: its leader ours, or (leader gone) members left in this boot?"""
        if self.ours():
            return True
        if not self.identity or Path(f"/proc/{self.pid}").exists():
            return False  # no identity, or the pid now belongs to a stranger
        if not self.identity.startswith(BOOT_ID.read_text().strip() + ":"):
            return False  # recorded before a reboot: the group id may since be a stranger's
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Files and folders made inside are the owner's alone (umask 077): never readable by others,
    not even between a write and a chmod."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) made owner-only; an existing folder of ours is narrowed to 0700.

    A shared folder (sticky, like /tmp, or someone else's) is never narrowed: that would lock others out.
    """
    with owner_only():
        path.mkdir(parents=True, exist_ok=True)
    mode = path.stat()
    if mode.st_mode & 0o077 and not mode.st_mode & stat.S_ISVTX and mode.st_uid == os.geteuid():
        path.chmod(0o700)  # made by an older version, before anything secret is written into it
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` created 0600 in a 0700 folder, replacing any older (maybe wider) copy."""
    private_dir(path.parent)
    staged = path.with_name(f".{path.name}.new")
    staged.unlink(missing_ok=True)
    with owner_only():
        staged.write_text(text)
    os.replace(staged, path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _popen(argv: list[str], log: Path, env: dict[str, str] | None, cwd: Path | None) -> subprocess.Popen[bytes]:
    private_dir(log.parent)
    with owner_only(), log.open("wb") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(private_dir(cwd)) if cwd else None,
            umask=0o077,
        )


def spawn(
    name: str, argv: list[str], log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Server:
    """Start ``argv`` in a process group of its own, its output in ``log``; what it writes (logs,
    airflow.cfg with its Fernet key) is created owner-only (umask 077)."""
    return Server.started(name, _popen(argv, log, env, cwd).pid, 0, str(log), argv[0])


def spawn_listening(
    name: str, argv: list[str], log: Path, port: int, timeout: float, also_wait_for: tuple[int, ...] = (), *, cwd: Path
) -> Server:
    """:func:`spawn`, then wait until it listens on ``port`` (and ``also_wait_for``); ``port`` is its server's."""
    for wanted in (port, *also_wait_for):
        if port_open(wanted):
            raise StackError(f"{name}: port {wanted} is already in use; stop what holds it or pick another port")
    proc = _popen(argv, log, None, cwd)
    server = Server.started(name, proc.pid, port, str(log), argv[0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(port_open(p) for p in (port, *also_wait_for)):
            return server
        if proc.poll() is not None:
            stop_server(server)
            raise StackError(f"{name} exited with code {proc.returncode} before listening on {port}:\n{tail(log)}")
        time.sleep(0.2)
    stop_server(server)
    raise StackError(f"{name} did not listen on port {port} within {timeout:.0f}s:\n{tail(log)}")


def stop_server(server: Server, grace: float = 10.0) -> None:
    """End ``server``'s whole process group: TERM, then KILL after ``grace`` seconds. A group that is no
    longer ours (see :meth:`Server.alive`) is left alone."""
    if not server.alive():
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(server.pid, os.WNOHANG)
            if not server.alive():
                return
            time.sleep(0.1)


def run_checked(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, umask=0o077
    )
    if done.returncode != 0:
        raise StackError(f"{what} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")


def processes_of(home: str) -> list[int]:
    """Live processes started for this Airflow home (found by their AIRFLOW_HOME), zombies excluded.

    Task processes put themselves in process groups of their own, so ending the components' groups
    can leave a running task behind; this finds them.
    """
    marker = f"AIRFLOW_HOME={home}".encode()
    mine = ancestors()  # never this command or the shell that ran it, which may have sourced airflow.env
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


def ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(_stat_fields(Path(f"/proc/{pid}"))[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Run the chosen sub-command; a StackError is one clear line on stderr and exit 1, not a traceback."""
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return result
