"""The temporary Prefect server of one CLI run, tied to the life of that run.

Prefect's own ephemeral mode starts a server subprocess that outlives a CLI killed with SIGKILL
(ENVIRONMENT.md: ~200 MB, RUNNING flow runs forever). Here, when no ``PREFECT_API_URL`` is set, the CLI
starts the same server (uvicorn on Prefect's app factory, loopback only, same database under
``PREFECT_HOME``) as a child that dies with its parent: ``PR_SET_PDEATHSIG`` makes the kernel send it
SIGTERM when the parent dies, and a watchdog thread that polls the parent covers systems without it.

Every flow run of a CLI run is tagged ``vid2vid-pid:<host>:<pid>:<start ticks>``; at the start of the
next run, RUNNING/PENDING flow runs whose process on this host is gone are marked Crashed (with their
running task runs), so the UI never shows a dead run as running.

Run as ``python -m flows.server --parent PID --port PORT`` only by ``cli_session``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from storage.atomic import pid_alive
from storage.loopback import answers, free_port

TAG_PREFIX = "vid2vid-pid:"
_PR_SET_PDEATHSIG = 1
_HOST = socket.gethostname()


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (tells a reused pid from the original)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def run_tag(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{TAG_PREFIX}{_HOST}:{pid}:{_start_ticks(pid)}"


def tag_is_dead(tag: str) -> bool:
    """True when ``tag`` names a process on this host that no longer runs (pid gone or reused)."""
    parts = tag[len(TAG_PREFIX):].rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False  # another host's process cannot be checked from here: leave it alone
    pid, ticks = int(parts[1]), parts[2]
    if not Path("/proc").is_dir():  # no start times to compare: the pid alone decides
        return not pid_alive(pid)
    current = _start_ticks(pid)
    return current == "" or (ticks != "" and current != ticks)


def start_server(timeout: float | None = None) -> tuple[subprocess.Popen, str]:
    """Start the loopback server child of this process; returns it and its API URL once healthy."""
    timeout = timeout or float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    env.pop("PREFECT_API_URL", None)
    child = subprocess.Popen([sys.executable, "-m", "flows.server", "--parent", str(os.getpid()), "--port", str(port)],
                             env=env, stdin=subprocess.DEVNULL, start_new_session=False)
    deadline = time.monotonic() + timeout
    while not answers(f"{url}/health"):
        if child.poll() is not None or time.monotonic() > deadline:
            stop_server(child)
            raise RuntimeError(f"the temporary Prefect server did not start within {timeout:.0f} s "
                               f"(exit status {child.returncode}); set PREFECT_API_URL to use a running server")
        time.sleep(0.3)
    return child, url


def stop_server(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def mark_dead_runs_crashed() -> list[str]:
    """Mark RUNNING/PENDING flow runs (and their running task runs) of dead CLI processes Crashed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId, FlowRunFilterState,
                                                FlowRunFilterStateType, TaskRunFilter, TaskRunFilterState,
                                                TaskRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    live = [StateType.RUNNING, StateType.PENDING]
    crashed: list[str] = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live))), limit=200)
        for run in runs:
            tags = [t for t in run.tags if t.startswith(TAG_PREFIX)]
            if not tags or not tag_is_dead(tags[0]):
                continue
            message = f"the vid2vid process that ran this ({tags[0][len(TAG_PREFIX):]}) died without finishing it"
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=live))))
            for task_run in tasks:
                client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
            crashed.append(str(run.id))
    return crashed


_temporary_api: str | None = None  # the API of the server this process started (it ends with the command)


def temporary_api() -> str | None:
    """The API URL of this command's own temporary server, or None when a configured server is used."""
    return _temporary_api


@contextlib.contextmanager
def cli_session() -> Iterator[str | None]:
    """What a CLI command that runs flows needs: an API (ours, tied to this process, unless one is
    configured), dead runs marked Crashed, and this process's tag on every flow run it starts."""
    global _temporary_api
    child = None
    if not os.environ.get("PREFECT_API_URL"):
        child, url = start_server()
        os.environ["PREFECT_API_URL"] = _temporary_api = url  # before Prefect reads its settings in this process
    try:
        from prefect import tags

        try:
            if answers(os.environ["PREFECT_API_URL"].rstrip("/") + "/health"):  # an unreachable API is the flow's error to report
                mark_dead_runs_crashed()
        except Exception as exc:  # noqa: BLE001 - housekeeping must never stop the user's command
            print(f"warning: could not check for crashed runs: {exc}", file=sys.stderr)
        with tags(run_tag()):
            yield os.environ.get("PREFECT_API_URL")
    finally:
        if child is not None:
            _drain_prefect()
            os.environ.pop("PREFECT_API_URL", None)
            _temporary_api = None
            stop_server(child)


def _drain_prefect() -> None:
    """Send the logs and events Prefect still holds while our server is there to take them."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=5)


# ---- the child side ----------------------------------------------------------------------------------

def _die_with_parent(parent: int) -> None:
    """Kernel-level (PR_SET_PDEATHSIG) and a polling watchdog: either ends this server with its parent."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down cleanly on SIGTERM ...
        time.sleep(10.0)
        os._exit(1)  # ... or is ended anyway

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _child_main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.server")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    import uvicorn

    uvicorn.run("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=args.port,
                log_level="error", lifespan="on")


if __name__ == "__main__":
    _child_main(sys.argv[1:])
