"""`train --resume-from` after a SIGKILL: the named (older) checkpoint wins over the one Ray registered in the
run folder, the run continues at the named step, and metrics.jsonl holds every step once. Real CLI processes,
real Ray; the stop reason of a run that ends before --max-steps is checked on the real TrainJob."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from models.training.job import TrainJob
from models.training.launch import stop_reason
from models.vid2vid import load_model_config
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.synthetic import write_synthetic_clip
from tests.conftest import ROOT, VENV_BIN

pytestmark = pytest.mark.usefixtures("prefect_server")


def _steps(path: Path) -> list[int]:
    return [int(json.loads(line)["step"]) for line in path.read_text().splitlines()] if path.is_file() else []


def _checkpoints(run: Path) -> dict[int, Path]:
    found = {}
    for path in (run / "ray").glob("*/checkpoint_*/checkpoint.pt"):
        try:
            found[int(torch.load(path, map_location="cpu", weights_only=True)["step"])] = path
        except Exception:  # noqa: BLE001 - one being written right now
            continue
    return found


@pytest.mark.timeout(900)
def test_sigkill_then_resume_from_an_older_checkpoint_trains_every_step_once(tmp_path, ray_head):
    layout = DatasetLayout(tmp_path / "data", "street")
    write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", k, 64, 32, 10, split="train") for k in range(2)])
    runs = tmp_path / "runs"
    cli = [str(VENV_BIN / "vid2vid"), "--data-root", str(layout.root), "train", "--dataset", "street", "--config",
           "tiny", "--runs-root", str(runs), "--run-name", "K", "--workers", "1", "--epochs", "50",
           "--checkpoint-every", "2", "--ray-address", ray_head]  # the session's Ray: no Ray start per command
    run = runs / "K"
    first = subprocess.Popen([*cli, "--max-steps", "40"], cwd=ROOT, env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and first.poll() is None:
            if max(_steps(run / "metrics.jsonl"), default=0) >= 5 and {2, 4} <= set(_checkpoints(run)):
                break
            time.sleep(0.2)
        assert first.poll() is None, "the first run ended before step 5"
        os.killpg(first.pid, signal.SIGKILL)  # the CLI and everything it started, as a lost terminal would
        first.wait()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    time.sleep(3)  # let Ray's fate-shared processes notice their driver is gone
    killed_steps = _steps(run / "metrics.jsonl")
    assert killed_steps[:5] == [1, 2, 3, 4, 5]
    older = _checkpoints(run)[2]

    resumed = subprocess.run([*cli, "--max-steps", "8", "--resume-from", str(older)], cwd=ROOT, env=os.environ.copy(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "wins over Ray's own checkpoint" in resumed.stdout + resumed.stderr
    assert "stopped at --max-steps 8" in resumed.stdout
    attempts = [json.loads(line) for line in (run / "attempts.jsonl").read_text().splitlines()]
    assert attempts[-1]["start_step"] == 2 and attempts[-1]["origin"].startswith("resume-from:")
    assert _steps(run / "metrics.jsonl") == list(range(1, 9))  # every step once, continuous
    (moved,) = (run / "superseded").glob("metrics-*.jsonl")
    assert _steps(moved) == killed_steps[2:]  # the killed run's later rows are kept aside, not lost
    assert (run / "model.pt").is_file()
    assert torch.load(run / "model.pt", map_location="cpu", weights_only=True)["step"] == 8


def test_a_run_ended_by_its_epoch_limit_says_so():
    model = load_model_config("tiny").to_dict()
    job = TrainJob(dataset="d", data_root="/x", model=model, run_dir="/x/r", max_steps=50)
    assert stop_reason(job, 18, 6) == ("stopped at step 18 before --max-steps 50: the epoch limit ended it (6 epoch(s), "
                                       "the model config's train.epochs; raise it with --epochs to train longer)")
    assert "(2 epoch(s), --epochs;" in stop_reason(job.model_copy(update={"epochs": 2}), 5, 2)
    assert stop_reason(job, 50, 3) == "stopped at --max-steps 50"
    assert stop_reason(job.model_copy(update={"max_steps": None}), 18, 6).startswith("stopped after the epoch limit")
