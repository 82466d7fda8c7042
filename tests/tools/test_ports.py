"""After a stop, a port that still answers is told apart: held by a group we started, or by another program."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from ports import listening_pids, ports_left
from supervise import Server


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_port_this_process_listens_on_names_this_process() -> None:
    with _listener() as sock:
        assert os.getpid() in listening_pids(sock.getsockname()[1])


def test_a_listener_in_a_group_we_started_is_ours_and_one_elsewhere_a_strangers() -> None:
    with _listener() as sock:
        port = sock.getsockname()[1]
        ours = Server("test", os.getpgid(0), port, "")
        assert ports_left([ours]) == ([port], [])
        # The group we started is gone; what answers now is another program's (this test process).
        child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
        child.wait()
        gone = Server("test", child.pid, port, "")
        assert ports_left([gone]) == ([], [port])


def test_a_closed_port_is_neither() -> None:
    with _listener() as sock:
        port = sock.getsockname()[1]
    assert ports_left([Server("test", os.getpgid(0), 0, "")], [port]) == ([], [])
