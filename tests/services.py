"""Service processes tests start themselves (Dask scheduler and workers, a Prefect worker): ports and stopping."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
