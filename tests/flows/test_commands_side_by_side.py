"""CLI commands side by side on one Prefect home, and which Prefect home/server a command uses.

Real `vid2vid` processes on fresh homes (no PREFECT_API_URL: each command finds or starts the home's embedded
server), a real `prefect server start` as `make ui` runs it, and the real SQLite database read afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from flows.server import PROJECT_ROOT, REGISTRY, choose_home, first_error_line
from storage.layout import DatasetLayout
from storage.loopback import free_port
from storage.manifest import read_manifest
from tests.conftest import ROOT, VENV_BIN
from tests.storage.videos import write_mp4

CLI = str(VENV_BIN / "vid2vid")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    return {**env, "PREFECT_HOME": str(home), "VID2VID_PREFECT_UI_URL": f"http://127.0.0.1:{free_port()}", **extra}


def _flow_runs(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "prefect.db") as db:
        return db.execute("SELECT name, state_type FROM flow_run").fetchall()


def _server_processes(home: Path) -> list[int]:
    needle = f"PREFECT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"flows.server" in (entry / "cmdline").read_bytes() and needle in (entry / "environ").read_bytes():
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.timeout(1800)  # 20 CLI processes: ~100 s per repetition on 2 busy cores, ~25 s on idle ones
def test_four_commands_started_together_on_a_fresh_home_all_succeed(tmp_path):
    """The failure this replaces: two servers migrating one fresh SQLite database at once (2 of 6 tries failed)."""
    videos = [write_mp4(tmp_path / f"clip{k}.mp4", n=3, width=32, height=24) for k in range(4)]
    for repetition in range(5):
        home, data = tmp_path / f"home{repetition}", tmp_path / f"data{repetition}"
        # the subject is correctness side by side, not start-up speed: a loaded machine may take minutes
        env = _env(home, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="900")
        procs = [subprocess.Popen([CLI, "--data-root", str(data), "ingest", str(video), "--dataset", "d"],
                                  env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for video in videos]
        outputs = [proc.communicate(timeout=400) for proc in procs]
        for proc, (out, err) in zip(procs, outputs):
            assert proc.returncode == 0, f"repetition {repetition}: {err[-1500:]}"
            assert "1 clip(s) ingested" in out
        records = read_manifest(DatasetLayout(data, "d"))
        assert sorted(r.clip_id for r in records) == [f"clip{k}" for k in range(4)]
        assert all(r.status == "ok" and r.n_frames == 3 for r in records)
        runs = _flow_runs(home)
        assert len(runs) == 4 and {state for _, state in runs} == {"COMPLETED"}, runs
        assert not list((home / REGISTRY / "clients").iterdir())  # every command left
        deadline = time.monotonic() + 20
        while _server_processes(home) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _server_processes(home) == [], "the shared server outlived its last command"


def test_a_server_that_fails_at_start_says_its_own_error_at_once(tmp_path):
    env = _env(tmp_path / "home", PREFECT_SERVER_DATABASE_CONNECTION_URL="sqlite+aiosqlite:////nonexistent/dir/x.db")
    started = time.monotonic()
    result = subprocess.run([CLI, "--data-root", str(tmp_path / "data"), "synth", "--clips", "1", "--frames", "2",
                             "--size", "32x16"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=200)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the temporary Prefect server") and "failed at start" in line
    assert "unable to open database file" in line and "within" not in line
    assert time.monotonic() - started < 100  # not the 120 s start-up timeout
    assert not (tmp_path / "data" / "street").exists()


def test_first_error_line_picks_the_exception_not_the_traceback_header():
    log = "INFO started\nTraceback (most recent call last):\n  File x\nValueError: bad thing\nERROR later\n"
    assert first_error_line(log) == "ValueError: bad thing"
    assert first_error_line("ok\nsomething error happened\n") == "something error happened"
    assert first_error_line("") == "(it printed nothing)"


def test_home_is_the_projects_own_inside_it_and_prefects_default_outside(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.chdir(PROJECT_ROOT / "flows")
    assert choose_home() == PROJECT_ROOT / ".prefect" and os.environ["PREFECT_HOME"] == str(PROJECT_ROOT / ".prefect")
    monkeypatch.delenv("PREFECT_HOME")
    monkeypatch.chdir(tmp_path)
    assert choose_home() == Path("~/.prefect").expanduser().resolve() and "PREFECT_HOME" not in os.environ
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "mine"))
    monkeypatch.chdir(PROJECT_ROOT)
    assert choose_home() == tmp_path / "mine"


def _api(url: str, path: str, body: dict | None = None) -> object:
    request = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_plain_shell_command_lands_in_make_uis_server(tmp_path):
    """`make ui` runs `prefect server start` over the project's home; a command typed in another shell (no
    PREFECT_API_URL) must show its run and artifact there, and print the run's URL on that server."""
    home, port = tmp_path / "home", free_port()
    ui = f"http://127.0.0.1:{port}"
    env = _env(home, VID2VID_PREFECT_UI_URL=ui)
    server = subprocess.Popen([str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env={**env, "PREFECT_SERVER_UI_API_URL": ui + "/api"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _api(ui, "/api/health")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "prefect server start did not come up"
                time.sleep(0.5)
        result = subprocess.run([CLI, "--data-root", str(tmp_path / "data"), "synth", "--dataset", "plain",
                                 "--clips", "1", "--frames", "2", "--size", "32x16"],
                                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert not (home / REGISTRY / "server.json").exists()  # no embedded server beside `make ui`'s
        runs = _api(ui, "/api/flow_runs/filter", {})
        (run,) = [r for r in runs if r["name"].startswith("synth plain")]
        assert f"{ui}/runs/flow-run/{run['id']}" in result.stdout
        assert run["state_type"] == "COMPLETED"
        artifacts = _api(ui, "/api/artifacts/filter", {"artifacts": {"key": {"any_": ["synth-plain"]}}})
        assert artifacts and artifacts[0]["flow_run_id"] == run["id"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_killed_embedded_server_is_said_and_replaced_and_the_work_goes_on(tmp_path):
    home, data, videos = tmp_path / "home", tmp_path / "data", tmp_path / "videos"
    videos.mkdir()
    for k in range(4):
        write_mp4(videos / f"long{k}.mp4", n=120, width=160, height=120)
    proc = subprocess.Popen([CLI, "--data-root", str(data), "ingest", str(videos), "--dataset", "d"], env=_env(home),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        record, deadline = home / REGISTRY / "server.json", time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if record.is_file() and _flow_runs_running(home):
                break
            time.sleep(0.3)
        assert proc.poll() is None, "the command ended before its run was seen running"
        first = json.loads(record.read_text())
        os.kill(first["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    died = [line for line in err.splitlines() if f"pid {first['pid']}) was killed by signal 9" in line]
    assert died and died[0].startswith("warning:") and "the run goes on" in died[0]
    ok = sorted(r.clip_id for r in read_manifest(DatasetLayout(data, "d")) if r.status == "ok")
    if proc.returncode == 0:  # every call after the death reached the new server
        assert "4 clip(s) ingested" in out and ok == [f"long{k}" for k in range(4)]
        assert [state for name, state in _flow_runs(home)] == ["COMPLETED"]
    else:  # a call in flight at the death failed the run: the one error line says so, and what was kept
        assert proc.returncode == 1
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"error: the Prefect server of this command (http://127.0.0.1:{first['port']}/api, "
                               f"pid {first['pid']}) was killed by signal 9 at "), line
        assert "a new server took its place" in line and "rerun" in line
        for clip in ok:  # every clip the manifest has is said to be kept
            assert f"ingest {clip}" in line or "..." in line
    assert time.monotonic() - killed_at < 200


def _flow_runs_running(home: Path) -> bool:
    try:
        return any(state == "RUNNING" for _, state in _flow_runs(home))
    except sqlite3.Error:
        return False


@pytest.fixture(autouse=True)
def _no_server_left(tmp_path):
    yield
    homes = [p for p in tmp_path.iterdir() if p.name.startswith("home")]
    deadline = time.monotonic() + 30
    while any(_server_processes(h) for h in homes) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not any(_server_processes(h) for h in homes)
