"""Ray Train training end to end on two CPU workers: checkpoints, resume, worker failure, NaN stop, artifacts.

Tests share one trained run (``first_run``) and one dataset; none of them changes the shared dataset, so
they pass in any order and alone.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import ray
import torch
from prefect.client.orchestration import get_client

from flows.failures import TrainingFailed
from flows.train import TrainParams, train_flow
from models.training import FaultInjection, TrainJob, run_training
from models.training.launch import read_metrics
from models.vid2vid import load_generator, load_model_config
from models.vid2vid.checkpoint import load_checkpoint
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.registry import sync
from storage.synthetic import write_synthetic_clip


pytestmark = pytest.mark.usefixtures("prefect_server")
STEPS = 4


@pytest.fixture(scope="module")
def shared_ray():
    """One local Ray instance for the module: each fit() then costs only the worker group's start."""
    ray.init(address="local", num_cpus=3, include_dashboard=False, object_store_memory=256 * 1024**2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> DatasetLayout:
    layout = DatasetLayout(tmp_path_factory.mktemp("data"), "street")
    write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", k, 64, 32, 10, split="train") for k in range(2)])
    return layout


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


def _job(street: DatasetLayout, run_dir: Path, **kw) -> TrainJob:
    return TrainJob(dataset="street", data_root=str(street.root), model=load_model_config("tiny").to_dict(),
                    run_dir=str(run_dir), workers=2, max_steps=STEPS, checkpoint_every=2, **kw)


def _attempts(run_dir: str | Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "attempts.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def first_run(shared_ray, street, runs):
    """The train flow as a user runs it: two workers, a few steps, artifacts published."""
    return train_flow(TrainParams(dataset="street", config="tiny", data_root=str(street.root), runs_root=str(runs),
                                  run_name="first", workers=2, max_steps=STEPS, checkpoint_every=2))


def test_two_workers_train_checkpoint_and_export(first_run, runs):
    assert first_run.status == "completed" and first_run.steps == STEPS
    run = runs / "first"
    state = load_checkpoint(first_run.model_path)
    assert state["step"] == STEPS
    generator, config = load_generator(first_run.model_path)
    assert config.name == "tiny" and sum(p.numel() for p in generator.parameters()) > 0
    assert _attempts(run) == [{"start_step": 0, "origin": "fresh", "workers": 2, "skipped_batches": 0}]
    assert [m["step"] for m in read_metrics(run)] == [1.0, 2.0, 3.0, 4.0]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "samples.png").stat().st_size > 1000 and (run / "loss_curve.png").stat().st_size > 1000
    registered = sync(runs).by_run_dir(str(run))  # every completed run is in the model registry
    assert registered.model_path == first_run.model_path and first_run.model == "street/tiny@first"
    assert registered.start == "fresh" and registered.parent_id is None and registered.steps == STEPS


def test_train_flow_publishes_its_artifacts(first_run):
    async def read(keys):
        async with get_client() as client:
            return {a.key: a for a in await client.read_latest_artifacts() if a.key in keys}

    artifacts = asyncio.run(read(set(first_run.artifacts.values())))
    assert set(artifacts) == {"train-street", "train-street-loss-curve", "train-street-samples"}
    summary = artifacts["train-street"].data
    assert "G_total" in summary and "### Hyper-parameters" in summary and first_run.model_path in summary
    assert "fingerprint" in summary and "samples_per_s" not in summary and "| step |" not in summary  # no raw rows
    assert "G_VGG" not in summary and "G_mask" not in summary  # tiny weighs them 0: not shown as achieved
    assert not any(cell.strip() == "-" for line in summary.splitlines() if line.startswith("|")
                   for cell in line.strip("|").split("|"))
    assert "data:image/png;base64," in artifacts["train-street-samples"].data
    assert "data:image/png;base64," in artifacts["train-street-loss-curve"].data


def test_train_run_is_named_and_tagged_and_its_progress_reached_100(first_run):
    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(sort="START_TIME_DESC", limit=50)
            progress = [a for a in await client.read_latest_artifacts() if a.key == "train-progress-street"]
            return runs, progress

    runs, progress = asyncio.run(read())
    named = [run for run in runs if run.name == "train street tiny-first"]
    assert named, [run.name for run in runs]
    assert {"dataset:street", "config:tiny", "run:first"} <= set(named[0].tags)
    assert progress and progress[0].data == 100.0 and "samples/s" in (progress[0].description or "")


def test_worker_failure_restarts_from_the_checkpoint_and_ends_like_an_unbroken_run(first_run, street, runs):
    outcome = run_training(_job(street, runs / "failure", faults=FaultInjection(failure_at_step=3)))
    assert outcome.status == "completed" and outcome.steps == STEPS
    assert (runs / "failure" / ".failure_injected").is_file()
    attempts = _attempts(runs / "failure")
    assert [a["origin"] for a in attempts] == ["fresh", "ray-checkpoint"]
    assert attempts[1]["start_step"] == 2  # the checkpoint taken before the worker died
    unbroken = load_checkpoint(first_run.model_path)["generator"]
    restarted = load_checkpoint(outcome.model_path)["generator"]
    assert all(torch.equal(unbroken[k], restarted[k]) for k in unbroken)  # deterministic resume


def test_resume_from_an_earlier_run_continues_the_step_count(first_run, street, runs):
    outcome = run_training(_job(street, runs / "resumed", resume_from=first_run.model_path).model_copy(
        update={"max_steps": STEPS + 2}))
    assert outcome.status == "completed" and outcome.steps == STEPS + 2
    assert _attempts(runs / "resumed")[0] == {"start_step": STEPS, "origin": f"resume-from:{first_run.model_path}",
                                              "workers": 2, "skipped_batches": 0}
    first_losses = read_metrics(runs / "first")[-1]
    resumed = read_metrics(runs / "resumed")
    assert [m["step"] for m in resumed] == [STEPS + 1.0, STEPS + 2.0]
    assert resumed[0]["G_total"] < 10 * first_losses["G_total"]  # continues from trained weights, not a blow-up


def _train_flow_run(run_name: str):
    """The flow run of the train flow that trained ``run_name``, as the Prefect API reports it."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def read():
        async with get_client() as client:
            found = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])),
                                                sort=FlowRunSort.START_TIME_DESC, limit=20)
            return [r for r in found if r.parameters["params"].get("run_name") == run_name]
    return asyncio.run(read())


def test_nan_loss_fails_the_flow_run_and_keeps_the_last_good_checkpoint(street, runs, shared_ray, monkeypatch):
    monkeypatch.setenv("VID2VID_FAULT_INJECTION", json.dumps({"nan_at_step": 3}))  # not a form field
    assert "faults" not in TrainParams.model_fields and "inject_nan_at_step" not in TrainParams.model_fields
    with pytest.raises(TrainingFailed) as failure:
        train_flow(TrainParams(dataset="street", data_root=str(street.root), runs_root=str(runs), run_name="nan",
                               workers=2, max_steps=STEPS, checkpoint_every=2))
    outcome = failure.value.detail
    assert outcome.status == "stopped_nan" and outcome.model_path is None
    assert "non-finite loss" in str(failure.value) and "step 2" in str(failure.value)
    assert outcome.checkpoint_path in str(failure.value)  # the message names the checkpoint it kept
    assert load_checkpoint(outcome.checkpoint_path)["step"] == 2  # intact, and from before the NaN
    assert not (runs / "nan" / "model.pt").exists()
    assert sync(runs).by_run_dir(str(runs / "nan")) is None  # a stopped run is not registered

    [flow_run] = _train_flow_run("nan")
    assert flow_run.state.is_failed(), flow_run.state
    assert "non-finite loss" in flow_run.state.message and outcome.checkpoint_path in flow_run.state.message


def test_scheduled_retraining_of_a_champion_on_unchanged_data_does_nothing(first_run, street, runs, vid2vid):
    """The whole retraining cycle (changed data, the gate, promotion, rejection) is tests/registry/."""
    promoted = vid2vid("models", "promote", "street/tiny@first", "--runs-root", str(runs))
    assert promoted.returncode == 0 and "promoted by hand: street/tiny@first" in promoted.stdout, promoted.stderr
    unchanged = vid2vid("--data-root", str(street.root), "train", "--dataset", "street", "--mode", "retrain",
                        "--runs-root", str(runs))
    assert unchanged.returncode == 0, unchanged.stderr
    assert "training unchanged" in unchanged.stdout and "nothing to retrain" in unchanged.stdout
    assert "street/tiny@first" in unchanged.stdout


def test_synthesize_cli_writes_videos_of_the_whole_clip_and_remaps_labels(first_run, street, tmp_path, vid2vid):
    from storage.video import VideoSource, decode

    plain = vid2vid("--data-root", str(street.root), "synthesize", "--checkpoint", first_run.model_path,
                    "--dataset", "street", "--clip", "c0", "--out", str(tmp_path / "plain.mp4"))
    assert plain.returncode == 0, plain.stderr
    remapped = vid2vid("--data-root", str(street.root), "synthesize", "--checkpoint", first_run.model_path,
                       "--dataset", "street", "--clip", "c0", "--out", str(tmp_path / "remap.mp4"),
                       "--remap", "tree=building", "--first-frame", "real")
    assert remapped.returncode == 0, remapped.stderr
    frames = {name: list(decode(VideoSource(name, tmp_path / f"{name}.mp4"))) for name in ("plain", "remap")}
    assert [len(v) for v in frames.values()] == [10, 10] and frames["plain"][0].shape == (32, 64, 3)
    review = list(decode(VideoSource("review", tmp_path / "plain.side_by_side.mp4")))
    assert len(review) == 10 and review[0].shape == (32, 192, 3)
    assert any(abs(a.astype(int) - b.astype(int)).mean() > 1 for a, b in zip(frames["plain"][1:], frames["remap"][1:]))
    bad = vid2vid("--data-root", str(street.root), "synthesize", "--checkpoint", first_run.model_path, "--dataset",
                  "street", "--clip", "c0", "--out", str(tmp_path / "x.mp4"), "--remap", "tree=spaceship")
    assert bad.returncode != 0 and "unknown label 'spaceship'" in bad.stderr


def test_a_dataset_without_training_clips_fails_before_any_worker_starts(tmp_path):
    from storage.errors import StorageError

    layout = DatasetLayout(tmp_path, "heldout")
    write_manifest(layout, [write_synthetic_clip(layout, "only_val", 1, 64, 32, 10, split="val")])
    with pytest.raises(StorageError, match="no usable train-split clips"):
        run_training(_job(layout, tmp_path / "run").model_copy(update={"dataset": "heldout"}))
    assert not (tmp_path / "run" / "ray").exists()


def test_prefect_ui_shows_the_named_run_and_the_training_progress(first_run, prefect_server, tmp_path):
    """What a reviewer sees in headless Chromium: the run list names the run, the progress artifact reads 100 %."""
    from playwright.sync_api import sync_playwright

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async def first_runs_progress() -> str:
        """The artifact version this run wrote (later runs of the module, e.g. the NaN stop, add newer ones)."""
        async with get_client() as client:
            [run] = [r for r in await client.read_flow_runs(limit=200) if r.name == "train street tiny-first"]
            [artifact] = await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["train-progress-street"]), flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            return str(artifact.id)

    ui = prefect_server.removesuffix("/api")
    artifact_id = asyncio.run(first_runs_progress())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{ui}/runs")
        page.get_by_text("train street tiny-first").first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "runs.png"))
        page.goto(f"{ui}/artifacts/artifact/{artifact_id}")
        page.get_by_text("100%").first.wait_for(timeout=30_000)
        assert "samples/s" in page.inner_text("body")  # the last progress line is the artifact's description
        page.screenshot(path=str(tmp_path / "progress.png"))
        browser.close()
    assert (tmp_path / "runs.png").stat().st_size > 10_000 and (tmp_path / "progress.png").stat().st_size > 10_000


def test_a_training_run_logs_from_its_first_seconds(street, tmp_path, caplog, monkeypatch):
    """Before Ray has a cluster, workers or data, the run already says what starts, and then where it is."""
    import logging
    import time

    from prefect import flow

    from tasks.train import TrainingProgress, following

    monkeypatch.setattr(TrainingProgress, "WAIT_LOG_EVERY", 0.5)
    job = _job(street, tmp_path / "quiet")

    @flow(name="start-up-logs")
    def starting() -> None:
        with following(job, "start-up", every=0.2):
            time.sleep(1.5)  # where Ray would be starting its cluster and workers

    with caplog.at_level(logging.INFO, logger="prefect"):
        started = time.monotonic()
        starting()
    lines = [(r.created, r.getMessage()) for r in caplog.records]
    first = next(created for created, text in lines if "starting 2 Ray Train worker(s)" in text)
    assert first - lines[0][0] < 5 and time.monotonic() - started < 60
    assert any("no training step yet" in text and "data loading" in text for _, text in lines)
