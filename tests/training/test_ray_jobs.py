"""Cluster training as a Ray Job against a real `ray start --head` on loopback.

The train flow submits a job named after the run; a flow process killed with SIGKILL is started again and
attaches to the same job (one job, one training, a continuous step count); cancelling the flow run stops the
job; a job that fails on its driver ends the flow Failed with the job's error line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from prefect.states import Cancelling

from models.training.launch import read_metrics
from models.training.local_head import local_ray_head
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.outputs import MANAGED_DIRS
from storage.synthetic import write_synthetic_clip
from tests.conftest import ROOT, VENV_BIN

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A real Ray head with its job endpoint on loopback (models.training.local_head)."""
    env = {"VID2VID_RAY_JOB_PYTHON": sys.executable, "PREFECT_LOGGING_LEVEL": "INFO",
           "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    with local_ray_head(tmp_path_factory.mktemp("ray") / "head.log", env=env) as address:
        yield address, {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> tuple[Path, Path]:
    data = tmp_path_factory.mktemp("data")
    layout = DatasetLayout(data, "street")
    write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", k, 64, 32, 10, split="train") for k in range(2)])
    broken = DatasetLayout(data, "nosplit")  # every clip held out: the job's driver finds no training window
    write_manifest(broken, [write_synthetic_clip(broken, "v0", 0, 64, 32, 10, split="val")])
    return data, tmp_path_factory.mktemp("runs")


def _train(ray_head, roots, run: str, dataset: str = "street", steps: int = 4) -> subprocess.Popen:
    address, env = ray_head
    data, runs = roots
    return subprocess.Popen(
        [str(VENV_BIN / "vid2vid"), "--data-root", str(data), "train", "--dataset", dataset, "--config", "tiny",
         "--workers", "1", "--max-steps", str(steps), "--checkpoint-every", "2", "--run-name", run,
         "--runs-root", str(runs), "--ray-address", address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT, start_new_session=True)


def _jobs(address: str, run: str) -> list:
    from ray.job_submission import JobSubmissionClient

    return [j for j in JobSubmissionClient(address).list_jobs() if j.submission_id == f"vid2vid-train-{run}"]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_killed_flow_reattaches_to_its_job(ray_head, roots):
    address, _ = ray_head
    run_dir = roots[1] / "attach"
    first = _train(ray_head, roots, "attach")
    _wait(lambda: len(read_metrics(run_dir)) >= 1, 240, "the first training step")
    os.killpg(first.pid, signal.SIGKILL)  # the Prefect worker's flow process dies without warning
    first.wait()
    assert str(_jobs(address, "attach")[0].status.value) == "RUNNING"  # the job outlives its follower

    second = _train(ray_head, roots, "attach")
    out, _ = second.communicate(timeout=400)
    assert second.returncode == 0, out
    assert "attached to the running Ray job vid2vid-train-attach" in out
    assert len(_jobs(address, "attach")) == 1
    assert str(_jobs(address, "attach")[0].status.value) == "SUCCEEDED"
    attempts = (run_dir / "attempts.jsonl").read_text().splitlines()
    assert len(attempts) == 1 and json.loads(attempts[0])["start_step"] == 0  # one training, never restarted
    assert [int(m["step"]) for m in read_metrics(run_dir)] == list(range(1, 5))
    assert (run_dir / "model.pt").is_file()
    run_folders = [p.name for p in roots[1].iterdir() if p.is_dir() and p.name not in MANAGED_DIRS]
    assert run_folders == ["attach"]  # one run folder (beside the runs root's own, e.g. the registry's review/)


def test_cancelling_the_flow_run_stops_the_job(ray_head, roots):
    address, _ = ray_head
    run_dir = roots[1] / "cancel"
    process = _train(ray_head, roots, "cancel", steps=200)
    _wait(lambda: len(read_metrics(run_dir)) >= 1, 240, "the first training step")
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter())
        flow_run = next(r for r in runs if (r.parameters.get("params") or {}).get("run_name") == "cancel")
        client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
    out, _ = process.communicate(timeout=120)
    assert process.returncode != 0, out
    assert str(_jobs(address, "cancel")[0].status.value) == "STOPPED"
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run.id).state.type.value in ("CANCELLED", "CANCELLING")
    steps = len(read_metrics(run_dir))
    time.sleep(3)
    assert len(read_metrics(run_dir)) == steps < 200  # nothing trains after the stop


def test_failed_job_fails_the_flow_with_its_error_line(ray_head, roots):
    address, _ = ray_head
    process = _train(ray_head, roots, "broken", dataset="nosplit")
    out, _ = process.communicate(timeout=240)
    assert process.returncode != 0
    assert str(_jobs(address, "broken")[0].status.value) == "FAILED"
    error_lines = [line for line in out.splitlines() if "Ray job vid2vid-train-broken failed" in line]
    assert error_lines and "train" in error_lines[-1]  # the driver's own reason, not a generic failure
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        flow_run = next(r for r in runs if (r.parameters.get("params") or {}).get("run_name") == "broken")
        assert flow_run.state.type.value == "FAILED"


def test_the_mask_predictor_trains_as_a_ray_job_through_the_one_loop(ray_head, roots):
    """The job file names the model kind; the same entrypoint and per-worker loop train the predictor, and the
    flow follows it with the same progress (its own loss names) and failure convention as vid2vid's."""
    address, env = ray_head
    data, runs = roots
    done = subprocess.run(
        [str(VENV_BIN / "vid2vid"), "--data-root", str(data), "train-predictor", "--dataset", "street", "--config",
         "tiny", "--workers", "1", "--max-steps", "2", "--checkpoint-every", "1", "--run-name", "predictor",
         "--runs-root", str(runs), "--ray-address", address],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [job] = _jobs(address, "predictor")
    assert job.metadata["kind"] == "mask-predictor-train" and str(job.status.value) == "SUCCEEDED"
    run_dir = runs / "predictor"
    assert [m["step"] for m in read_metrics(run_dir)] == [1.0, 2.0] and "P_total" in read_metrics(run_dir)[-1]
    [attempt] = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
    assert attempt == {"start_step": 0, "origin": "fresh", "workers": 1, "skipped_batches": 0}
    assert (run_dir / "model.pt").is_file()
    assert "P_total" in done.stdout + done.stderr  # the progress line names the predictor's own losses
