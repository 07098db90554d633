"""A Ray head with its job endpoint on loopback, for the benchmark and the tests of the Ray Jobs path.

It runs in its own process group and is stopped through that group: `ray stop` would stop every Ray
instance on the machine, other users' included. Every port is chosen free, so heads can run side by side.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker_port_range() -> tuple[int, int]:
    """A 100-port range for this head's workers, above the ranges other Ray defaults use."""
    low = 30000 + (os.getpid() % 300) * 100
    return low, low + 99


@contextmanager
def local_ray_head(log_path: Path, num_cpus: int = 3, env: dict[str, str] | None = None,
                   timeout: float = 120.0) -> Iterator[str]:
    """Start ``ray start --head --block`` on 127.0.0.1; yields the job endpoint ``http://127.0.0.1:PORT``."""
    bin_dir = Path(sys.executable).parent
    gcs, dashboard, client, agent, runtime_env = (_free_port() for _ in range(5))
    low, high = _worker_port_range()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    with open(log_path, "wb") as log:
        head = subprocess.Popen(
            [str(bin_dir / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
             "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
             "--include-dashboard", "true", "--ray-client-server-port", str(client),
             "--dashboard-agent-listen-port", str(agent), "--runtime-env-agent-port", str(runtime_env),
             "--min-worker-port", str(low), "--max-worker-port", str(high), "--num-cpus", str(num_cpus),
             "--disable-usage-stats"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + timeout
        while not _answers(address):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start; its log: {log_path}\n"
                                   f"{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(1)
        yield address
    finally:
        _stop_group(head)


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/api/version", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop_group(head: subprocess.Popen) -> None:
    try:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # whatever of the group outlived the head's own shutdown
    except ProcessLookupError:
        pass
