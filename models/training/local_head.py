"""A Ray head with its job endpoint on loopback, for the benchmark and the tests of the Ray Jobs path.

It runs in its own process group and is stopped through that group: `ray stop` would stop every Ray
instance on the machine, other users' included. Every port is chosen free, so heads can run side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.loopback import answers, free_port, stop_process_groups


def forget_head_address(gcs_port: int) -> None:
    """Remove Ray's "current cluster" pointer when it names this stopped head, as `ray stop` does.

    Stopping the head through its process group (not `ray stop`) left the file behind; a later local Ray then
    had Ray Train's placement-group cleaner actor look up the dead head, and its thread printed
    "Timed out while waiting for GCS" tracebacks into the console of a healthy training run."""
    from ray._common.utils import get_ray_address_file

    path = Path(get_ray_address_file(None))
    try:
        if path.read_text().strip().rsplit(":", 1)[-1] == str(gcs_port):
            path.unlink()
    except (OSError, ValueError):
        pass  # absent, or another head's: not ours to touch


def _worker_port_range() -> tuple[int, int]:
    """A 100-port range for this head's workers, above the ranges other Ray defaults use."""
    low = 30000 + (os.getpid() % 300) * 100
    return low, low + 99


@contextmanager
def local_ray_head(log_path: Path, num_cpus: int = 3, env: dict[str, str] | None = None,
                   timeout: float = 120.0) -> Iterator[str]:
    """Start ``ray start --head --block`` on 127.0.0.1; yields the job endpoint ``http://127.0.0.1:PORT``."""
    bin_dir = Path(sys.executable).parent
    gcs, dashboard, client, agent, runtime_env = (free_port() for _ in range(5))
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
        while not answers(f"{address}/api/version"):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start; its log: {log_path}\n"
                                   f"{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(1)
        yield address
    finally:
        stop_process_groups([head])
        forget_head_address(gcs)
