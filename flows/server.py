"""The Prefect server of the CLI's commands: which one a command uses, and the embedded one's lifetime.

Which server (``cli_session``): ``PREFECT_API_URL`` when set; else the home is ``$PREFECT_HOME``, or the
project's ``.prefect`` when the command runs inside the project folder (what `make demo` / `make ui` use), and
a running `make ui` server over that home (``$VID2VID_PREFECT_UI_URL``, default 127.0.0.1:4200) is used when
it answers; else the home's embedded server.

The embedded server (uvicorn on Prefect's app factory, loopback only, the home's SQLite database) is shared by
every command of a home that runs at the same time: ``<home>/vid2vid-server/server.json`` names it and
``clients/`` holds one file per command using it, both changed only under one file lock, which also
serialises start-up and so Prefect's SQLite migration (two servers migrating one fresh database at once
fail). It ends when the last command leaves; a watchdog in the server ends it as well when every command
using it has died (SIGKILL included), so it never outlives them (Prefect's own ephemeral server does,
ENVIRONMENT.md). A server that fails to start is reported with its own first error line; one that dies
while a command runs is said at once and replaced on the same port and database, so the run goes on.

Every flow run a CLI command runs carries the label ``vid2vid.process = <host>:<pid>:<start ticks>`` (set by
its run-name hook, ``flows.naming``; a label, not a tag, so the UI's tag chips and filters stay the user's);
at the start of the next command, RUNNING/PENDING flow runs whose process on this host is gone are marked
Crashed (with their running task runs), so the UI never shows a dead run as running. Each command prints its
runs' UI URLs.

Run as ``python -m flows.server --registry DIR --port PORT`` only by ``EmbeddedServer``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from flows.failures import PipelineFailure
from storage.atomic import atomic_write_bytes, pid_alive
from storage.locks import file_lock
from storage.loopback import answers, free_port

OWNER_LABEL = "vid2vid.process"  #: the flow-run label naming the process that runs it
LEGACY_TAG_PREFIX = "vid2vid-pid:"  #: how earlier versions named it (a tag): still read, so their dead runs end
_HOST = socket.gethostname()


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (tells a reused pid from the original)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def process_ident(pid: int | None = None) -> str:
    """``<host>:<pid>:<start ticks>``: a process, told apart from a later one that reuses its pid."""
    pid = os.getpid() if pid is None else pid
    return f"{_HOST}:{pid}:{_start_ticks(pid)}"


def ident_is_dead(ident: str) -> bool:
    """True when ``ident`` names a process on this host that no longer runs (pid gone or reused)."""
    parts = ident.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False  # another host's process cannot be checked from here: leave it alone
    pid, ticks = int(parts[1]), parts[2]
    if not Path("/proc").is_dir():  # no start times to compare: the pid alone decides
        return not pid_alive(pid)
    current = _start_ticks(pid)
    return current == "" or (ticks != "" and current != ticks) or _state(pid) == "Z"  # a zombie has ended


REGISTRY = "vid2vid-server"  #: under PREFECT_HOME: the start lock, server.json and one file per command using it
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_UI_URL = "http://127.0.0.1:4200"  # what `make ui` serves (review/settings.py says the same)


class ServerStartError(PipelineFailure):
    """The embedded server could not start; the message is its own first error line."""


class ServerDied(PipelineFailure):
    """The embedded server died while the command ran and the command's work failed on it."""


_ident = process_ident
_is_dead = ident_is_dead


class _Claims:
    """The flow runs this process runs inside ``cli_session`` (their ids, in order), labelled as its own."""

    def __init__(self) -> None:
        self.owner: str | None = None
        self.run_ids: list[str] = []
        self._lock = threading.Lock()

    def claim(self, flow_run_id: object, client: object) -> None:
        if self.owner is None:
            return  # not a CLI command (a deployment's worker, a test calling a flow): Prefect's own bookkeeping
        with self._lock:
            if str(flow_run_id) in self.run_ids:
                return
            self.run_ids.append(str(flow_run_id))
        try:
            client.update_flow_run_labels(flow_run_id, {OWNER_LABEL: self.owner})
        except Exception as exc:  # noqa: BLE001 - bookkeeping must never fail the user's run
            print(f"warning: could not label flow run {flow_run_id} with its process: {exc}", file=sys.stderr)


_claims = _Claims()


def claim_flow_run(flow_run_id: object, client: object) -> None:
    """Record a flow run (called by every flow's run-name hook as it starts) as this CLI command's."""
    _claims.claim(flow_run_id, client)


def run_owner(run: object) -> str | None:
    """The process ident a flow run was labelled with (or tagged with, by earlier versions), else None."""
    owner = (getattr(run, "labels", None) or {}).get(OWNER_LABEL)
    if isinstance(owner, str) and owner:
        return owner
    legacy = [t for t in (getattr(run, "tags", None) or []) if t.startswith(LEGACY_TAG_PREFIX)]
    return legacy[0][len(LEGACY_TAG_PREFIX):] if legacy else None


def choose_home() -> Path:
    """The Prefect home of this command: ``$PREFECT_HOME``; else the project's ``.prefect`` when the command runs
    inside the project folder (what `make demo` / `make ui` use), set for Prefect too; else Prefect's default."""
    if os.environ.get("PREFECT_HOME"):
        return Path(os.environ["PREFECT_HOME"]).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if (PROJECT_ROOT / "Makefile").is_file() and (cwd == PROJECT_ROOT or PROJECT_ROOT in cwd.parents):
        os.environ["PREFECT_HOME"] = str(PROJECT_ROOT / ".prefect")
        return PROJECT_ROOT / ".prefect"
    return Path("~/.prefect").expanduser().resolve()


def ui_url() -> str:
    return (os.environ.get("VID2VID_PREFECT_UI_URL") or DEFAULT_UI_URL).rstrip("/")


def running_server_api(home: Path) -> str | None:
    """The API of a running server (`make ui`'s, at ``$VID2VID_PREFECT_UI_URL``) over the same home, else None.

    A server of another home on that port (another checkout, a test) is left alone: its database is not ours."""
    api = ui_url() + "/api"
    if not answers(api + "/health", timeout=1.0):
        return None
    try:
        with urllib.request.urlopen(api + "/admin/settings", timeout=3.0) as response:
            served = json.loads(response.read()).get("home")
    except (OSError, ValueError, AttributeError):
        return None
    return api if served and Path(served).expanduser().resolve() == home else None


def first_error_line(text: str) -> str:
    """The line of a server's output that says why it failed: the first exception line (``X.YError: ...``),
    else the first line that says error, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for pattern in (r"^[\w.]*(Error|Exception|Exit)\b.*:", r"(?i)\berror\b"):
        for line in lines:
            if re.search(pattern, line) and not line.startswith("Traceback"):
                return line[:500]
    return lines[-1][:500] if lines else "(it printed nothing)"


class Registry:
    """The embedded server shared by a home's commands: ``server.json`` names it, ``clients/`` holds one file
    per command using it; both change only under ``lock``, which also serialises start-up (and so Prefect's
    SQLite migration: two servers migrating one database at once is what failed)."""

    def __init__(self, home: Path) -> None:
        self.folder = home / REGISTRY
        self.lock = self.folder / "lock"
        self.record = self.folder / "server.json"
        self.clients = self.folder / "clients"

    def read(self) -> dict | None:
        try:
            return json.loads(self.record.read_text())
        except (OSError, ValueError):
            return None

    def write(self, info: dict) -> None:
        atomic_write_bytes(self.record, json.dumps(info).encode())

    def live_clients(self) -> list[str]:
        """The commands still using the server; files of dead ones are removed."""
        live = []
        for entry in self.clients.iterdir() if self.clients.is_dir() else []:
            if _is_dead(entry.name):
                entry.unlink(missing_ok=True)
            else:
                live.append(entry.name)
        return live

    def log(self, port: int) -> Path:
        return self.folder / f"server-{port}.log"


def start_server(registry: Registry, port: int | None = None,
                 timeout: float | None = None) -> tuple[subprocess.Popen, dict]:
    """Start the loopback server (under the registry's lock); returns it and its record once healthy."""
    timeout = timeout or float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    env.pop("PREFECT_API_URL", None)
    registry.folder.mkdir(parents=True, exist_ok=True)
    with open(registry.log(port), "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "flows.server", "--registry", str(registry.folder),
                                  "--port", str(port)], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 cwd=PROJECT_ROOT)
    deadline = time.monotonic() + timeout
    while not answers(f"{url}/health", timeout=1.0):
        if child.poll() is not None:
            raise ServerStartError(f"the temporary Prefect server (home {registry.folder.parent}) failed at start "
                                   f"(exit status {child.returncode}): {first_error_line(_read(registry.log(port)))}")
        if time.monotonic() > deadline:
            stop_server(child)
            raise ServerStartError(f"the temporary Prefect server did not answer within {timeout:.0f} s; its last "
                                   f"line: {first_error_line(_read(registry.log(port)))}; set PREFECT_API_URL to "
                                   f"use a running server")
        time.sleep(0.2)
    return child, {"id": _ident(child.pid), "pid": child.pid, "port": port, "url": url}


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def stop_server(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _stop_pid(ident: str, pid: int, timeout: float = 15.0) -> None:
    """SIGTERM a server this process did not start (it is no child to wait for), SIGKILL it after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if _is_dead(ident):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while not _is_dead(ident) and time.monotonic() < deadline:
            time.sleep(0.1)


class EmbeddedServer:
    """This command's use of its home's shared embedded server: joined at start (started if none runs),
    watched while the command runs (a dead server is said at once and replaced on the same port, so the
    run goes on), left at the end (the last command to leave stops it)."""

    def __init__(self, home: Path) -> None:
        self.registry = Registry(home)
        self.me = _ident()
        self.child: subprocess.Popen | None = None
        self.info: dict = {}
        self._leaving = threading.Event()
        self.deaths: list[str] = []  # "<url>, pid N) was killed by signal 9 at HH:MM:SS" per death seen
        self._watch: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.info["url"]

    def join(self) -> str:
        registry = self.registry
        registry.clients.mkdir(parents=True, exist_ok=True)
        with file_lock(registry.lock):
            (registry.clients / self.me).touch()  # before any start: a server never sees zero users at birth
            info = registry.read()
            if info and not self._gone(info) and answers(info["url"] + "/health"):
                self.info = info
            else:
                try:
                    self.child, self.info = start_server(registry)
                except BaseException:
                    (registry.clients / self.me).unlink(missing_ok=True)
                    raise
                registry.write(self.info)
        self._watch = threading.Thread(target=self._watch_server, name="prefect-server-watch", daemon=True)
        self._watch.start()
        return self.url

    def _gone(self, info: dict) -> bool:
        if self.child is not None and self.child.pid == info.get("pid"):
            return self.child.poll() is not None  # our child: poll also reaps it (a zombie still has its pid)
        return _is_dead(info["id"])

    def _how(self, info: dict) -> str:
        code = self.child.poll() if self.child is not None and self.child.pid == info.get("pid") else None
        if code is None:
            return "is gone"
        return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"

    def _watch_server(self) -> None:
        while not self._leaving.wait(0.5):
            info = self.registry.read() or self.info
            if not self._gone(info):
                self.info = info
                continue
            with file_lock(self.registry.lock):
                if self._leaving.is_set():
                    return
                current = self.registry.read()
                if current and current["id"] != info["id"] and not self._gone(current):
                    self.info = current  # another command of this home replaced it already
                    continue
                self.deaths.append(f"({info['url']}, pid {info['pid']}) {self._how(info)} at {time.strftime('%H:%M:%S')}")
                print(f"warning: the Prefect server of this command ({info['url']}, pid {info['pid']}) {self._how(info)}; "
                      f"starting a new one on the same port and database, the run goes on", file=sys.stderr, flush=True)
                try:
                    self.child, self.info = start_server(self.registry, port=info["port"])
                except ServerStartError as exc:
                    print(f"error: {exc}. The work this command finished before the server died is kept on disk "
                          f"(outputs are written whole); rerun the command to do the rest", file=sys.stderr, flush=True)
                    os._exit(1)
                self.registry.write(self.info)
            print(f"note: a new Prefect server answers at {self.url} (pid {self.info['pid']}); nothing done so far "
                  f"was lost", file=sys.stderr, flush=True)

    def death_report(self, exc: BaseException, run_ids: list[str]) -> str:
        """One line: the server's death, what failed on it, and the work of this command that was done."""
        done = completed_tasks(run_ids)
        kept = (f"{len(done)} finished task run(s) kept ({', '.join(done[:8])}{', ...' if len(done) > 8 else ''})"
                if done else "no task run had finished")
        return (f"the Prefect server of this command {self.deaths[0]} and the run failed on it "
                f"({type(exc).__name__}: {str(exc)[:200]}); a new server took its place; {kept}; outputs are written "
                f"whole, so a rerun of the command skips what is done")

    def leave(self) -> None:
        self._leaving.set()
        registry = self.registry
        with file_lock(registry.lock):
            (registry.clients / self.me).unlink(missing_ok=True)
            info = registry.read()
            last = not registry.live_clients()
            if last and info:
                registry.record.unlink(missing_ok=True)
        if last and info:
            if self.child is not None and self.child.pid == info["pid"]:
                stop_server(self.child)
            else:
                _stop_pid(info["id"], info["pid"])
            registry.log(info["port"]).unlink(missing_ok=True)  # a clean stop: its log says nothing new
        elif self.child is not None and self.child.poll() is not None:
            self.child.wait()


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
            owner = run_owner(run)
            if owner is None or not ident_is_dead(owner):
                continue
            message = f"the vid2vid process that ran this ({owner}) died without finishing it"
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=live))))
            for task_run in tasks:
                client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
            crashed.append(str(run.id))
    return crashed


def completed_tasks(run_ids: list[str]) -> list[str]:
    """Names of the completed task runs of the flow runs ``run_ids`` (this command's), oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterState,
                                                TaskRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    if not run_ids:
        return []
    try:
        with get_client(sync_client=True) as client:
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(run_ids))),
                task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED]))))
    except Exception:  # noqa: BLE001 - the report says what it can
        return []
    return [t.name for t in sorted(tasks, key=lambda t: t.start_time or t.created or 0)]


_temporary_api: str | None = None  # the API of the embedded server this process uses (it ends with the commands)


def temporary_api() -> str | None:
    """The API URL of this command's embedded server, or None when a configured or `make ui` server is used."""
    return _temporary_api


def run_url(flow_run_id: object) -> str:
    return f"{ui_url()}/runs/flow-run/{flow_run_id}"


class RunAnnouncer:
    """Prints ``run <name>: <UI URL>`` for each top-level flow run this process starts, as soon as the server
    has it (a thread polls every second) and, for any still unsaid, when the command ends."""

    def __init__(self, run_ids: Callable[[], list[str]], note: str = "") -> None:
        self.run_ids, self.note = run_ids, note
        self.said: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="run-announcer", daemon=True)

    def start(self) -> RunAnnouncer:
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            self.announce()

    def announce(self) -> None:
        unsaid = [run_id for run_id in self.run_ids() if run_id not in self.said]
        if not unsaid:  # nothing claimed yet: and Prefect is not imported here before the command's own thread
            return      # has (a second thread importing it at once deadlocks on the module lock)
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentTaskRunId

        if not answers(os.environ.get("PREFECT_API_URL", "").rstrip("/") + "/health", timeout=1.0):
            return  # no server to ask (a refused request never reached one); the client would retry for minutes
        try:
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=unsaid), parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True)))
        except Exception:  # noqa: BLE001 - a link is a courtesy; the command's own work decides its outcome
            return
        self.said.update(set(unsaid) - {str(run.id) for run in runs})  # sub-runs: their parent's link says them
        for run in sorted(runs, key=lambda r: r.created or 0):
            if str(run.id) not in self.said:
                self.said.add(str(run.id))
                print(f"Prefect run {run.name!r}: {run_url(run.id)}{self.note}", flush=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.announce()


@contextlib.contextmanager
def cli_session() -> Iterator[str | None]:
    """What a CLI command that runs flows needs: an API (``PREFECT_API_URL``; else `make ui`'s server over the
    same home; else the home's shared embedded server), dead runs marked Crashed, this process's label on every
    flow run it runs, and each run's URL printed."""
    global _temporary_api
    server: EmbeddedServer | None = None
    set_api: bool | str = False
    note = ""
    if not os.environ.get("PREFECT_API_URL"):
        home = choose_home()
        api = running_server_api(home)
        if api is None:
            server = EmbeddedServer(home)
            api = _temporary_api = server.join()
            note = f"  (recorded in {home}; `make ui` shows it)" if home == PROJECT_ROOT / ".prefect" else \
                f"  (recorded in {home}; `PREFECT_HOME={home} prefect server start` shows it)"
        os.environ["PREFECT_API_URL"] = api  # before Prefect reads its settings in this process
        set_api = True
        if server is not None and not os.environ.get("PREFECT_UI_URL"):  # Prefect's own "View at" links too
            os.environ["PREFECT_UI_URL"] = ui_url()
            set_api = "ui"
    announcer = None
    owner_before = _claims.owner
    first_claim = len(_claims.run_ids)
    try:
        try:
            if answers(os.environ["PREFECT_API_URL"].rstrip("/") + "/health"):  # an unreachable API is the flow's error to report
                mark_dead_runs_crashed()
        except Exception as exc:  # noqa: BLE001 - housekeeping must never stop the user's command
            print(f"warning: could not check for crashed runs: {exc}", file=sys.stderr)
        _claims.owner = process_ident()
        announcer = RunAnnouncer(lambda: _claims.run_ids[first_claim:], note).start()
        try:
            yield os.environ.get("PREFECT_API_URL")
        except Exception as exc:
            if server is not None and server.deaths:  # the failure is the server's death: say that
                raise ServerDied(server.death_report(exc, _claims.run_ids[first_claim:])) from exc
            raise
    finally:
        _claims.owner = owner_before
        if announcer is not None:
            announcer.stop()
        if server is not None:
            _drain_prefect()
            _temporary_api = None
            server.leave()
        if set_api:
            os.environ.pop("PREFECT_API_URL", None)
        if set_api == "ui":
            os.environ.pop("PREFECT_UI_URL", None)


def _drain_prefect() -> None:
    """Send the logs and events Prefect still holds while our server is there to take them."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=5)


# ---- the child side ----------------------------------------------------------------------------------

def _watch_users(registry: Registry) -> None:
    """End this server when no command uses it any more (the last one left, or every user died, SIGKILL
    included: their files name processes that are gone)."""
    me = _ident()
    while True:
        time.sleep(0.5)
        if registry.live_clients():
            continue
        with file_lock(registry.lock):
            if registry.live_clients():
                continue
            info = registry.read()
            if info and info.get("id") == me:
                registry.record.unlink(missing_ok=True)
        break
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down cleanly on SIGTERM ...
    time.sleep(10.0)
    os._exit(1)  # ... or is ended anyway


def _child_main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.server")
    parser.add_argument("--registry", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    registry = Registry(Path(args.registry).parent)
    threading.Thread(target=_watch_users, args=(registry,), name="users-watchdog", daemon=True).start()
    import uvicorn

    uvicorn.run("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=args.port,
                log_level="error", lifespan="on")


if __name__ == "__main__":
    _child_main(sys.argv[1:])
