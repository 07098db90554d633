"""Services this project starts on the loopback interface (a temporary Prefect server, a Ray head, test
services): a free port, a health check, and stopping a process group. The lowest layer, so flows, models,
benchmarks and tests share one copy."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers HTTP 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def stop_process_groups(processes: Iterable[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM every group (started with start_new_session, so a pid is its group id), then SIGKILL stragglers."""
    processes = list(processes)
    for process in processes:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # whatever of the group outlived its leader
            os.killpg(process.pid, signal.SIGKILL)
