"""Future prediction as a user runs it: `vid2vid predict` end to end (videos, horizon table artifact, exit
codes for bad requests) and the predictor's training flow on Ray Train."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from prefect.client.orchestration import get_client

from flows.predict import TrainPredictorParams, train_predictor_flow
from models.prediction import PredictorTrainer, load_predictor, load_predictor_config
from models.vid2vid import Vid2VidTrainer, load_model_config, save_checkpoint
from storage.clip_reader import iter_clip_frames
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.synthetic import write_synthetic_clip
from storage.video import VideoSource, decode


pytestmark = pytest.mark.usefixtures("prefect_server")
FRAMES, OBSERVED, FUTURE = 8, 3, 5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    layout = DatasetLayout(root / "data", "street")
    records = [write_synthetic_clip(layout, f"t{k}", k, 64, 32, FRAMES, split="train") for k in range(2)]
    records += [write_synthetic_clip(layout, f"v{k}", 100 + k, 64, 32, FRAMES, split="val") for k in range(2)]
    write_manifest(layout, records)
    vid2vid = save_checkpoint(root / "vid2vid" / "model.pt", Vid2VidTrainer(load_model_config("tiny")))
    predictor = save_checkpoint(root / "predictor" / "model.pt", PredictorTrainer(load_predictor_config("tiny")).state_dict())
    return layout, vid2vid, predictor, root


def _video(path: Path) -> np.ndarray:
    return np.stack(list(decode(VideoSource(path.stem, path))))


def _artifact(key: str):
    async def read():
        async with get_client() as client:
            return await client.read_latest_artifacts(limit=200)

    return next((a for a in asyncio.run(read()) if a.key == key), None)


def test_predict_writes_side_by_side_and_the_horizon_table(setup, vid2vid):
    layout, model, predictor, root = setup
    out = root / "out" / "v0.mp4"
    result = vid2vid("--data-root", str(layout.root), "predict", "--checkpoint", str(model), "--predictor",
                     str(predictor), "--dataset", "street", "--clip", "v0", "--observed", str(OBSERVED), "--future",
                     str(FUTURE), "--out", str(out), "--weights-dir", str(root / "weights"))
    assert result.returncode == 0, result.stderr[-3000:]
    video, masks = _video(out), _video(out.with_name("v0.masks.mp4"))
    assert video.shape == (OBSERVED + FUTURE, 32, 3 * 64, 3) and masks.shape == (OBSERVED + FUTURE, 32, 2 * 64, 3)
    real = [f["rgb"].astype(int) for f in iter_clip_frames(layout, "v0", ("rgb",))]
    for t in range(OBSERVED + FUTURE):
        observed = real[min(t, OBSERVED - 1)]  # frozen at the last observed frame once prediction starts
        assert np.abs(video[t, :, :64].astype(int) - observed).mean() < 8
        assert np.abs(video[t, :, 128:].astype(int) - real[t]).mean() < 8
    for method in ("predictor + vid2vid", "copy last frame", "extrapolate last flow"):
        assert method in result.stdout
    artifact = _artifact("predict-street-horizon")
    assert artifact is not None and artifact.type == "table"
    rows = artifact.data if isinstance(artifact.data, list) else __import__("json").loads(artifact.data)
    assert len(rows) == 3 * FUTURE
    for row in rows:
        assert 0.0 <= float(row["mIoU"]) <= 1.0 and float(row["SSIM"]) <= 1.0
        assert str(row["FID (frame)"]).startswith("not computed: weights missing")  # never a number without weights
    copy_rows = [r for r in rows if r["method"] == "copy last frame"]
    assert [r["step"] for r in copy_rows] == list(range(1, FUTURE + 1))


@pytest.mark.parametrize("case", ["too_many_observed", "vid2vid_as_predictor", "predictor_as_checkpoint"])
def test_bad_requests_exit_2_with_a_clear_error(setup, case, vid2vid):  # the CLI in process: the refusal is the subject
    layout, model, predictor, root = setup
    observed, checkpoint, pred, message = {
        "too_many_observed": (FRAMES + 1, model, predictor, f"clip 'v1' has {FRAMES} frames; --observed {FRAMES + 1}"),
        "vid2vid_as_predictor": (OBSERVED, model, model, "is a vid2vid model, not a mask predictor"),
        "predictor_as_checkpoint": (OBSERVED, predictor, predictor, "is a mask predictor, not a vid2vid model"),
    }[case]
    out = root / "bad" / f"{case}.mp4"
    result = vid2vid("--data-root", str(layout.root), "predict", "--checkpoint", str(checkpoint), "--predictor",
                     str(pred), "--dataset", "street", "--clip", "v1", "--observed", str(observed), "--future", "2",
                     "--out", str(out), "--no-evaluate")
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not out.parent.exists() or not any(out.parent.iterdir())


def test_train_predictor_flow_on_ray(setup, ray_head, monkeypatch):
    """The flow on the session's Ray head, as a deployment on a cluster finds it (the local-start path is
    tests/training/test_train.py's): two workers, the one training loop."""
    layout, _, _, root = setup
    monkeypatch.setenv("VID2VID_RAY_ADDRESS", ray_head)
    result = train_predictor_flow(TrainPredictorParams(dataset="street", data_root=str(layout.root),
                                                       runs_root=str(root / "runs"), run_name="pred", workers=2,
                                                       max_steps=2, checkpoint_every=1))
    assert result.status == "completed", result.message
    model = load_predictor(result.model_path)
    assert model.config.name == "tiny"
    assert result.steps == 2 and (Path(result.run_dir) / "metrics.jsonl").is_file()
    assert _artifact(result.artifact_key) is not None


def test_train_predictor_cli_refuses_a_vid2vid_checkpoint_to_resume_from(setup, vid2vid):
    layout, model, _, root = setup
    result = vid2vid("--data-root", str(layout.root), "train-predictor", "--dataset", "street", "--runs-root",
                     str(root / "runs"), "--resume-from", str(model), "--max-steps", "1")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"--resume-from {model} is a vid2vid model, not a mask predictor" in result.stderr


def test_a_nan_predictor_run_fails_the_command_and_a_resume_trains_no_step_twice(setup, ray_head, monkeypatch, vid2vid):
    """The predictor's training follows the vid2vid rules (one failure convention): a non-finite loss fails the
    command naming the step and the kept checkpoint; resuming from that checkpoint continues the step count."""
    layout, _, _, root = setup
    runs = root / "runs-nan"
    common = ("--data-root", str(layout.root), "train-predictor", "--dataset", "street", "--runs-root", str(runs),
              "--workers", "1", "--checkpoint-every", "2", "--ray-address", ray_head)
    monkeypatch.setenv("VID2VID_FAULT_INJECTION", json.dumps({"nan_at_step": 3}))
    failed = vid2vid(*common, "--run-name", "nan", "--max-steps", "6")
    monkeypatch.delenv("VID2VID_FAULT_INJECTION")
    assert failed.returncode == 1, failed.stdout[-2000:] + failed.stderr[-2000:]
    said = failed.stdout + failed.stderr
    assert "non-finite loss" in said and "predictor training of 'street' failed" in said, said[-3000:]
    assert not (runs / "nan" / "model.pt").exists()
    [checkpoint] = [p for p in (runs / "nan").rglob("checkpoint.pt")]
    assert str(checkpoint) in said  # the message names the checkpoint it kept
    kept = load_predictor_checkpoint_step(checkpoint)
    assert kept == 2

    resumed = vid2vid(*common, "--run-name", "resumed", "--max-steps", "4", "--resume-from", str(checkpoint))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    steps = [int(json.loads(line)["step"]) for line in (runs / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 4], steps


def load_predictor_checkpoint_step(path: Path) -> int:
    from models.prediction.checkpoint import read_state

    return int(read_state(path)["step"])
