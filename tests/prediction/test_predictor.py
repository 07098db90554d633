"""The mask predictor on the synthetic street (exact labels and flow): learning, bounded recursion, errors."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from models.prediction import (CopyLastForecaster, ExtrapolateFlowForecaster, PredictorForecaster, PredictorTrainer,
                               load_predictor, load_predictor_config, require_vid2vid)
from models.prediction.checkpoint import checkpoint_kind
from models.prediction.horizon import mask_miou
from models.prediction.pipeline import check_request, clip_record, forecast_clip
from models.prediction.scores import IoUAccumulator, miou, psnr, ssim
from models.vid2vid import Vid2VidTrainer, load_model_config, save_checkpoint
from storage.dataset import ClipWindowDataset
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.synthetic import write_synthetic_clip

TRAIN_STEPS = 24
# mIoU (absolute) by which the trained predictor beats copy-last-frame over steps 1..4. Measured on
# this data (128x64, 3 held-out clips): copy 0.793/0.669/0.619/0.594, extrapolate-last-flow
# 0.830/0.696/0.652/0.629, the predictor after 24 steps 0.829/0.697/0.664/0.642.
# Measured again on another machine (another torch build, same data and seed): the predictor gave
# 0.828/0.689/0.641/0.611 — the same copy baseline, gains 0.034/0.019/0.021/0.017. Training numerics move the
# per-step gain by ~0.03 between platforms, so the stated margin is on the mean over the horizon, and every
# step must still beat copying.
MARGIN = 0.015  # mean mIoU over steps 1..HORIZON above copy-last's mean
STEP_MARGIN = 0.005  # every step above copy-last
OBSERVED, HORIZON = 3, 4
SIZE = (128, 64)  # the demo's street size; at 64x32 the street moves < 1 px per frame in most rows


def _street(root: Path, size: tuple[int, int]) -> DatasetLayout:
    layout = DatasetLayout(root, "street")
    records = [write_synthetic_clip(layout, f"t{k}", k, *size, 12, split="train") for k in range(3)]
    records += [write_synthetic_clip(layout, f"v{k}", 100 + k, *size, OBSERVED + HORIZON, split="val") for k in range(3)]
    write_manifest(layout, records)
    return layout


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> DatasetLayout:
    return _street(tmp_path_factory.mktemp("data"), SIZE)


@pytest.fixture(scope="module")
def small_street(tmp_path_factory) -> DatasetLayout:
    return _street(tmp_path_factory.mktemp("small"), (64, 32))


@pytest.fixture(scope="module")
def trained(street):
    config = load_predictor_config("demo")
    assert config.size == SIZE
    trainer = PredictorTrainer(config)
    dataset = ClipWindowDataset(street, config.window, stages=("semantic", "instance", "flow"), stride=1)
    losses = []
    while trainer.step < TRAIN_STEPS:
        for batch in DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(trainer.step)):
            losses.append(trainer.train_step(batch)["P_total"])
            if trainer.step >= TRAIN_STEPS:
                break
    return trainer, losses


def test_trained_predictor_beats_copying_the_last_frame(street, trained):
    trainer, losses = trained
    assert np.mean(losses[-6:]) < np.mean(losses[:6])  # it learned something
    clips = ["v0", "v1", "v2"]
    config = trainer.config
    predicted = mask_miou(PredictorForecaster(trainer.model), config, street, clips, OBSERVED, HORIZON)
    copied = mask_miou(CopyLastForecaster(), config, street, clips, OBSERVED, HORIZON)
    extrapolated = mask_miou(ExtrapolateFlowForecaster(), config, street, clips, OBSERVED, HORIZON)
    print({"predictor": predicted, "copy": copied, "extrapolate": extrapolated})
    steps = range(1, HORIZON + 1)
    for step in steps:
        assert predicted[step] >= copied[step] + STEP_MARGIN, (step, predicted, copied)
    assert np.mean([predicted[s] for s in steps]) >= np.mean([copied[s] for s in steps]) + MARGIN, (predicted, copied)
    assert copied[HORIZON] < copied[1]  # the street moves: the future drifts away from the last frame


def _live_tensor_bytes() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on some deprecated torch objects warns
        warnings.simplefilter("ignore")
        return sum(o.untyped_storage().nbytes() for o in gc.get_objects() if isinstance(o, torch.Tensor))


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def test_predicting_100_frames_keeps_memory_bounded(small_street):
    """A 7-frame clip, 100 predicted frames: what is alive after 100 is what was alive after 20."""
    config = load_predictor_config("tiny")
    forecaster = PredictorForecaster(PredictorTrainer(config).model)
    steps = forecast_clip(forecaster, config, small_street, "v0", OBSERVED, 100, config.size)
    live, rss = {}, {}
    horizon = 0
    for step in steps:
        horizon = step.horizon
        if horizon in (20, 100):
            live[horizon], rss[horizon] = _live_tensor_bytes(), _rss_bytes()
    assert horizon == 100 and step.real_rgb is None  # past the clip's end the real column is absent
    frame_bytes = 19 * 64 * 32 * 4  # one frame's class probabilities
    assert live[100] - live[20] < frame_bytes, live  # nothing per frame is kept
    assert rss[100] - rss[20] < 16 * 1024**2, rss  # a leak of one frame per step would be > 20 MB here


def test_bad_requests_get_clear_errors(small_street, tmp_path):
    record = clip_record(small_street, "v0")
    with pytest.raises(ValueError, match=r"clip 'v0' has 7 frames; --observed 8 asks for more"):
        check_request(record, 8, 4)
    with pytest.raises(ValueError, match="no clip 'nope'"):
        clip_record(small_street, "nope")
    vid2vid = save_checkpoint(tmp_path / "vid2vid.pt", Vid2VidTrainer(load_model_config("tiny")))
    trainer = PredictorTrainer(load_predictor_config("tiny"))
    predictor = save_checkpoint(tmp_path / "predictor.pt", trainer.state_dict())
    assert checkpoint_kind(vid2vid) == "vid2vid model" and checkpoint_kind(predictor) == "mask predictor"
    with pytest.raises(ValueError, match=r"is a vid2vid model, not a mask predictor; pass it as --checkpoint"):
        load_predictor(vid2vid)
    with pytest.raises(ValueError, match=r"is a mask predictor, not a vid2vid model; pass it as --predictor"):
        require_vid2vid(predictor)
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        load_predictor(tmp_path / "missing.pt")
    model = load_predictor(predictor)  # the round trip gives the same network
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_scores():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (16, 16))
    assert miou(a, a, 19) == 1.0
    b = a.copy()
    b[:8] = (b[:8] + 1) % 4
    acc = IoUAccumulator(19)
    acc.update(b, a)
    manual = []
    for c in range(4):
        inter = np.sum((a == c) & (b == c))
        union = np.sum((a == c) | (b == c))
        manual.append(inter / union)
    assert acc.miou == pytest.approx(np.mean(manual))
    ignore = a.copy()
    ignore[0] = 255
    assert miou(ignore, ignore, 19) == 1.0
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr(image, image) == float("inf") and ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image.astype(int) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    mse = np.mean((noisy.astype(float) - image) ** 2)
    assert psnr(noisy, image) == pytest.approx(10 * np.log10(255**2 / mse))
    assert 0 < ssim(noisy, image) < 1 and ssim(noisy, image) > ssim(255 - image, image)
