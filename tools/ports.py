"""Whose a local port is, after a stop: ours (a process of a group we started) or another program's
(standard library only; Linux's /proc)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from supervise import Server, port_open


def listening_pids(port: int) -> set[int]:
    """The processes (of those this user may look into) listening on TCP ``port``, from Linux's /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd") if inodes else ():
        with contextlib.suppress(OSError):  # another user's process, or one that ended meanwhile
            if _open_files(fd_dir) & inodes:
                pids.add(int(fd_dir.parent.name))
    return pids


def _open_files(fd_dir: Path) -> set[str]:
    links = set()
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            links.add(os.readlink(fd))
    return links


def process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None  # ended meanwhile


def ports_left(servers: Iterable[Server], more_ports: Iterable[int] = ()) -> tuple[list[int], list[int]]:
    """After a stop: the ports (the servers' own and ``more_ports``) a process of the servers' groups still
    listens on, and those that answer from anyone else (on a busy machine a freed port is soon another's)."""
    servers = list(servers)
    groups = {server.pid for server in servers}
    ports = [server.port for server in servers if server.port] + list(more_ports)
    ours: list[int] = []
    strangers: list[int] = []
    for port in ports:
        if port_open(port):
            (ours if {process_group(pid) for pid in listening_pids(port)} & groups else strangers).append(port)
    return ours, strangers
