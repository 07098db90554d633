"""kill -9 of a CLI run: its temporary Prefect server goes with it, and the next run marks its flow run
Crashed (found by its process label; no process tag on any run). Real CLI processes, a real server, the real
SQLite database checked afterwards."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import importlib
import pkgutil

from prefect import Flow

import flows
from flows.server import OWNER_LABEL, ident_is_dead, process_ident
from tests.conftest import ROOT, VENV_BIN
from tests.storage.videos import write_mp4


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _processes_of(home: Path) -> list[int]:
    """Live processes (other than this one) whose environment names ``home`` as PREFECT_HOME: the CLI's servers."""
    needle = f"PREFECT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0") and _alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _running_flow_runs(port: str) -> list[dict]:
    body = json.dumps({"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/flow_runs/filter", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return []


def test_killed_cli_leaves_no_server_and_its_run_is_marked_crashed(tmp_path):
    home, data, videos = tmp_path / "prefect", tmp_path / "data", tmp_path / "videos"
    videos.mkdir()
    for k in range(6):  # long enough that the flow is still RUNNING when it is killed
        write_mp4(videos / f"long{k}.mp4", n=150, width=160, height=120)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # no server: the CLI starts its own
    env["PREFECT_HOME"] = str(home)
    cli = [str(VENV_BIN / "vid2vid"), "--data-root", str(data), "ingest"]
    first = subprocess.Popen([*cli, str(videos), "--dataset", "d"], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server, port, deadline = None, None, time.monotonic() + 240
    try:
        while time.monotonic() < deadline and first.poll() is None:
            for child in _children(first.pid):
                args = _cmdline(child)
                if "flows.server" in args:
                    server, port = child, args[args.index("--port") + 1]
            if port and _running_flow_runs(port):
                break
            time.sleep(0.5)
        assert first.poll() is None and server is not None, "the CLI ended before its flow run was seen RUNNING"
        (run,) = _running_flow_runs(port)
        assert run["labels"].get(OWNER_LABEL) == process_ident(first.pid), run["labels"]
        assert not [t for t in run["tags"] if "pid" in t], run["tags"]  # the UI's tags stay the user's
        first.send_signal(signal.SIGKILL)
        first.wait()
        gone_by = time.monotonic() + 30
        while _alive(server) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert not _alive(server), "the temporary Prefect server outlived its killed CLI"
        while _processes_of(home) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert _processes_of(home) == [], "a server process of the killed CLI lingers"
    finally:
        if first.poll() is None:
            first.kill()

    write_mp4(tmp_path / "small.mp4", n=3)
    second = subprocess.run([*cli, str(tmp_path / "small.mp4"), "--dataset", "e"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "temporary server" not in second.stdout + second.stderr  # ours only, never Prefect's own beside it
    with sqlite3.connect(home / "prefect.db") as db:
        state = db.execute("SELECT state_type, state_name FROM flow_run WHERE id = ?", (run["id"],)).fetchone()
        tasks = db.execute("SELECT DISTINCT state_type FROM task_run WHERE flow_run_id = ?", (run["id"],)).fetchall()
    assert state == ("CRASHED", "Crashed")
    with sqlite3.connect(home / "prefect.db") as db:
        tags = [json.loads(t) for (t,) in db.execute("SELECT tags FROM flow_run")] + \
            [json.loads(t) for (t,) in db.execute("SELECT tags FROM task_run")]
    assert not [t for run_tags in tags for t in run_tags if "pid" in t]
    assert ("RUNNING",) not in tasks
    assert not [c for c in _children(os.getpid()) if "flows.server" in _cmdline(c)]


def test_process_idents_tell_live_dead_reused_and_foreign_processes():
    ended = subprocess.Popen(["true"])
    ended.wait()
    me = process_ident()
    host, pid, ticks = me.rsplit(":", 2)
    assert not ident_is_dead(me) and int(pid) == os.getpid() and ticks
    assert ident_is_dead(process_ident(ended.pid)) and ident_is_dead(f"{host}:{ended.pid}:{ticks}")
    assert ident_is_dead(f"{host}:{pid}:{int(ticks) + 1}")  # same pid, another process: reused
    assert not ident_is_dead(f"another-host:{ended.pid}:1")  # cannot be checked from here


def test_every_flow_names_its_runs_through_the_hook_that_claims_them():
    """A flow whose runs are not claimed would stay RUNNING in the UI after its command was killed."""
    found = {}
    for info in pkgutil.iter_modules(flows.__path__):
        module = importlib.import_module(f"flows.{info.name}")
        found.update({obj.name: obj for obj in vars(module).values() if isinstance(obj, Flow)})
    assert len(found) >= 15, sorted(found)
    unclaimed = sorted(name for name, f in found.items() if not getattr(f.flow_run_name, "claims_run", False))
    assert unclaimed == [], f"flows whose run names do not claim their runs: {unclaimed}"
