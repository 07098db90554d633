"""Shared fixtures: the session's services and the two ways to call the CLI. Reuse them in new tests.

Services (each starts once per session, on first request, and is stopped at the end):
- ``prefect_server``: a real Prefect server (SQLite). Prefect reads its settings when it is first imported, so
  the API address and a private PREFECT_HOME are set here, before any test module imports Prefect.
- ``dask_scheduler``: a Dask scheduler with two warm worker processes (one thread each); its address.
- ``ray_head``: a Ray head on loopback (``ray start --head``, no dashboard); its GCS address.
- ``shared_services`` (per test; ``shared_dask`` for the scheduler alone): exports both addresses as ``VID2VID_DASK_ADDRESS`` / ``VID2VID_RAY_ADDRESS``
  for the test's duration, so flows, and CLI calls of either kind, find them through ``storage.locations``
  as a deployment on a cluster would: no Dask cluster or Ray instance is started per flow. The local-start
  paths keep their own tests (tests/preprocess/test_preprocess_flow.py starts local Dask clusters,
  tests/training/test_train.py a local Ray), so use this wherever starting the service is not the subject.

CLI calls:
- ``vid2vid`` (fixture): ``main([...])`` in this process, stdout/stderr captured: commands end to end,
  refusals, exit codes and messages without an 8 s interpreter start (torch, Prefect, Ray imports) per call.
  ``cli_in_process(...)`` is the same for fixtures wider than a test. Use one of these by default.
- ``run_cli(...)``: the installed console script in a subprocess, for where the process is the subject
  (its lifetime, signals, everything it prints including other libraries' console lines).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from models.training.local_head import forget_head_address
from storage.loopback import free_port, stop_process_groups

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
    deadline = time.monotonic() + 300  # a machine shared with other test runs has taken over 180 s
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
    # flows run in this process leave log lines and events queued: send them while the server is up, or the
    # interpreter's exit retries a dead address for over a minute ("Error logging to API")
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=15)
    EventsWorker.drain_all(timeout=15)
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


def cli_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``main(args)`` in this process with its output captured, returning what ``run_cli`` returns: for fixtures
    wider than a test (the ``vid2vid`` fixture is this, per test). A process of its own costs about 8 s of CPU
    before any work (torch, Prefect, Ray imports): tests whose subject is not the process use this."""
    import io

    from flows.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _console_handlers_to(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(["vid2vid", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def vid2vid(capsys) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``vid2vid(*args)``: the CLI's ``main(args)`` in this process (``cli_in_process``); returns what ``run_cli``
    returns (exit code, stdout, stderr). Argument errors exit through argparse's SystemExit, caught as the exit
    code. What the console shows is captured as a user would see it: our lines, Prefect's console log lines and
    Ray's worker lines; only C-level writes to fd 2 are not."""

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()  # what the test printed before is not the command's
        return cli_in_process(*args)

    return call


@contextlib.contextmanager
def _console_handlers_to(stream) -> Iterator[None]:  # noqa: ANN001 - a text stream
    """Point the console log handlers (Prefect's, and plain stream handlers on the terminal) at ``stream``; a
    handler made by an earlier test still holds that test's captured stream."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    moved = []
    for handler in {id(h): h for lg in loggers for h in lg.handlers}.values():
        console = isinstance(handler, PrefectConsoleHandler) or (
            type(handler) is logging.StreamHandler and handler.stream in (sys.__stderr__, sys.__stdout__))
        if console:
            moved.append((handler, handler.stream, getattr(getattr(handler, "console", None), "file", None)))
            handler.stream = stream
            if hasattr(handler, "console"):
                handler.console.file = stream
    try:
        yield
    finally:
        for handler, old, old_file in moved:
            handler.stream = old
            if old_file is not None:
                handler.console.file = old_file


@pytest.fixture(scope="session")
def dask_scheduler(tmp_path_factory) -> Iterator[str]:
    """A Dask scheduler and two warm worker processes (1 thread each, the flow's malloc settings) on loopback."""
    from flows.dask_cluster import WORKER_MALLOC_ENV

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path_factory.mktemp("dask") / "dask.log", "wb")
    env = {**os.environ, **WORKER_MALLOC_ENV, "PYTHONPATH": _pythonpath()}
    started = [subprocess.Popen([str(VENV_BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=ROOT, start_new_session=True)
               for args in (["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                            ["worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard",
                             "--host", "127.0.0.1"])]
    try:
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        stop_process_groups(started, timeout=10)  # nothing of a test's is left in them: no need to wait 30 s
        log.close()


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory) -> Iterator[str]:
    """A Ray head on loopback in its own process group (stopped through it: `ray stop` would stop every Ray on
    the machine); 4 CPUs, so two single-worker trainings fit side by side."""
    port = free_port()
    low = 20000 + (os.getpid() % 90) * 100  # its workers' ports: heads of parallel sessions never share one
    log_path = tmp_path_factory.mktemp("ray") / "head.log"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": _pythonpath(),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log_path, "wb") as log:
        head = subprocess.Popen([str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                                 "--port", str(port), "--num-cpus", "4", "--include-dashboard", "false",
                                 "--min-worker-port", str(low), "--max-worker-port", str(low + 99),
                                 "--disable-usage-stats"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not _port_open(port):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process_groups([head], timeout=10)
        forget_head_address(port)  # as `ray stop` would: no stale "current cluster" for a later local Ray


@pytest.fixture
def shared_services(dask_scheduler, ray_head, monkeypatch) -> dict[str, str]:
    """The session's Dask scheduler and Ray head, named in the environment for this test (see the docstring).
    Train through them in a subprocess (``run_cli``): a test process stays a driver of at most one Ray session
    (a second ``ray.init`` to the head from a process that had been its driver was seen to hang)."""
    monkeypatch.setenv("VID2VID_DASK_ADDRESS", dask_scheduler)
    monkeypatch.setenv("VID2VID_RAY_ADDRESS", ray_head)
    return {"VID2VID_DASK_ADDRESS": dask_scheduler, "VID2VID_RAY_ADDRESS": ray_head}


@pytest.fixture
def shared_dask(dask_scheduler, monkeypatch) -> str:
    """Only the session's Dask scheduler in the environment (flows run in this process keep a local Ray)."""
    monkeypatch.setenv("VID2VID_DASK_ADDRESS", dask_scheduler)
    return dask_scheduler


def _pythonpath() -> str:
    """This checkout first, so service processes unpickle our tasks from the code under test."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
