"""The demo preset learns the street, and learns it better than its frame-by-frame twin on the same budget.

A shorter budget than `make demo` (the presets at 64x32 on 12-frame clips, STEPS single-process steps instead of
128x64 on two Ray workers), in the precision the demo trains in (bf16 autocast where the CPU has it), scored
with the evaluation's protocol: real frame 0 given, frames 1..T-1 synthesized recursively and scored.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from models.metrics.fidelity import psnr_per_frame
from models.metrics.report import FIRST_FRAME, scored
from models.synthesis import synthesize_frames
from models.training.precision import autocast, prepare_modules, training_precision
from models.vid2vid import Vid2VidTrainer, load_model_config
from storage.clip_reader import iter_clip_frames
from storage.dataset import ClipWindowDataset
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.synthetic import write_synthetic_clip

STEPS = 30
SEEDS = (0, 1)
# Issue 23's goal, not yet a measurement at this size (the one run on the loaded 2-core machine timed out):
# whoever first runs it idle records the per-seed numbers here and keeps the margins below them.
MARGIN_MEAN_DB = 1.0  # vid2vid's held-out PSNR over the baseline's, mean over SEEDS
MARGIN_RISE_DB = 1.5  # vid2vid's held-out PSNR over its untrained self (measured 2026-11-26: +4.3 dB at 40 steps)


def _held_out_psnr(trainer: Vid2VidTrainer, layout: DatasetLayout, clips: list[str]) -> float:
    generator = trainer.G.generator if hasattr(trainer.G, "generator") else trainer.G
    generator.eval()
    size = (trainer.config.input.width, trainer.config.input.height)
    values = []
    with torch.inference_mode():
        for clip in clips:
            frames = list(iter_clip_frames(layout, clip, ("rgb", "semantic", "instance"), size, None))
            fake = np.stack(list(synthesize_frames(generator, frames, first_frame=FIRST_FRAME)))
            values.append(psnr_per_frame(scored(fake), scored(np.stack([f["rgb"] for f in frames]))).mean())
    generator.train()
    return float(np.mean(values))


def _tiny(name: str, seed: int):
    preset = load_model_config(name)
    data = preset.to_dict()
    return preset.model_validate({**data, "input": {**data["input"], "width": 64, "height": 32},
                                  "train": {**data["train"], "seed": seed}})


def _train(config, layout: DatasetLayout) -> tuple[float, float]:
    """(held-out PSNR before, after) STEPS steps of ``config`` on the training clips."""
    torch.manual_seed(config.train.seed)
    trainer = Vid2VidTrainer(config)
    device = torch.device("cpu")
    precision = training_precision(device, bf16=True)
    prepare_modules(device, precision, trainer.G, trainer.D)
    before = _held_out_psnr(trainer, layout, ["c4"])
    dataset = ClipWindowDataset(layout, config.train.max_seq_len, split="train", stride=3)
    step, epoch = 0, 0
    while step < STEPS:
        trainer.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=1, shuffle=True,
                            generator=torch.Generator().manual_seed(config.train.seed * 1000 + epoch))
        for batch in loader:
            with autocast(device, precision):
                trainer.train_step(batch)
            step += 1
            if step == STEPS:
                break
        epoch += 1
    return before, _held_out_psnr(trainer, layout, ["c4"])


def test_demo_preset_beats_its_frame_by_frame_twin_on_held_out_clips(tmp_path):
    layout = DatasetLayout(tmp_path, "street")
    splits = ["train"] * 4 + ["val"]
    write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", 300 + k, 64, 32, 12, split=s)
                            for k, s in enumerate(splits)])
    rows = []
    for seed in SEEDS:
        before, video = _train(_tiny("demo_street", seed), layout)
        _, frame = _train(_tiny("demo_street_frame", seed), layout)
        rows.append((seed, before, video, frame))
        print(f"seed {seed}: vid2vid {before:.2f} -> {video:.2f} dB, frame-by-frame baseline {frame:.2f} dB")
    gaps = [video - frame for _, _, video, frame in rows]
    for seed, before, video, frame in rows:
        assert video >= before + MARGIN_RISE_DB, f"seed {seed}: held-out PSNR {before:.2f} -> {video:.2f} dB"
        assert video > frame, f"seed {seed}: vid2vid {video:.2f} dB, baseline {frame:.2f} dB"
    assert sum(gaps) / len(gaps) >= MARGIN_MEAN_DB, f"vid2vid minus baseline per seed: {gaps} dB"
