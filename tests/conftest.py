"""Shared fixtures: a real Prefect server (SQLite) for the tests that run flows.

Prefect reads its settings when it is first imported, so the API address and a private PREFECT_HOME are
set here, before any test module imports Prefect; the server itself starts only when a test asks for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from storage.loopback import free_port

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="vid2vid-prefect-"))
_PORT = free_port()
os.environ.update({
    "PREFECT_HOME": str(_PREFECT_HOME),
    "PREFECT_API_URL": f"http://127.0.0.1:{_PORT}/api",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "RAY_AUTH_MODE": "disabled",
    # tests choose their frame-FID weights; only tests/metrics/test_fid_inception_import.py converts the real file
    "VID2VID_FID_AUTO_IMPORT": "0",
})


@pytest.fixture(scope="session")
def prefect_server():
    """A real `prefect server start` on a free loopback port, shared by the whole session."""
    log = open(_PREFECT_HOME / "server.log", "wb")
    process = subprocess.Popen([str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(_PORT)],
                               stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = os.environ["PREFECT_API_URL"] + "/health"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise RuntimeError(f"prefect server did not start: {(_PREFECT_HOME / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield os.environ["PREFECT_API_URL"]
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed `vid2vid` console script as a user would."""
    return subprocess.run([str(VENV_BIN / "vid2vid"), *args], capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy(), cwd=ROOT)
