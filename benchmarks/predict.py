"""Future prediction benchmark: mask-predictor training samples/s and recursive prediction frames/s at
256×128 (the `demo` predictor preset's network at that size), then the horizon table (Table 3 form) on the
demo's data with the `demo` preset.

The demo's data is what `make demo` synthesizes (the street: 4 clips × 24 frames at 128×64, seed 0).
The vid2vid model that turns predicted maps into frames is `--checkpoint`, else the demo's latest model
(`<runs>/latest-street.json`), else an untrained stand-in — the output says which, and frame scores of a
stand-in say nothing about vid2vid's quality (the mIoU columns do not depend on it).

Run: .venv/bin/python benchmarks/predict.py [--steps 20] [--table-steps 60] [--checkpoint RUN/model.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.prediction import (History, PredictorConfig, PredictorForecaster, PredictorTrainer,  # noqa: E402
                               load_predictor_config, observed_frames, predict_future)
from models.prediction.horizon import evaluate_horizon  # noqa: E402
from models.vid2vid import Vid2VidTrainer, load_model_config, save_checkpoint  # noqa: E402
from storage.clip_reader import iter_clip_frames  # noqa: E402
from storage.dataset import ClipWindowDataset  # noqa: E402
from storage.layout import DatasetLayout  # noqa: E402
from storage.manifest import read_manifest, write_manifest  # noqa: E402
from storage.synthetic import clip_seed, synthetic_splits, write_synthetic_clip  # noqa: E402

STAGES = ("semantic", "instance", "flow")


def _street(root: Path, width: int, height: int, clips: int, frames: int) -> DatasetLayout:
    layout = DatasetLayout(root, "street")
    splits = synthetic_splits(clips, 0.25)
    write_manifest(layout, [write_synthetic_clip(layout, f"street_0000_{k:03d}", clip_seed(0, k), width, height, frames,
                                                 split=s) for k, s in enumerate(splits)])  # as `vid2vid synth` names them
    return layout


def _train(trainer: PredictorTrainer, layout: DatasetLayout, steps: int, cpu: list[float] | None = None) -> list[float]:
    """Wall seconds per step (batch of config.train.batch_size samples); process CPU seconds go to ``cpu``."""
    dataset = ClipWindowDataset(layout, trainer.config.window, stages=STAGES, stride=trainer.config.train.stride)
    seconds = []
    while len(seconds) < steps:
        for batch in DataLoader(dataset, batch_size=trainer.config.train.batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(len(seconds))):
            started, cpu_started = time.perf_counter(), time.process_time()
            trainer.train_step(batch)
            seconds.append(time.perf_counter() - started)
            if cpu is not None:
                cpu.append(time.process_time() - cpu_started)
            if len(seconds) >= steps:
                break
    return seconds


def speed(args: argparse.Namespace, tmp: Path) -> None:
    demo = load_predictor_config("demo").to_dict()
    config = PredictorConfig.model_validate({**demo, "input": {**demo["input"], "width": 256, "height": 128}})
    layout = _street(tmp / "speed", config.input.width, config.input.height, 3, 12)
    trainer = PredictorTrainer(config)
    cpu: list[float] = []
    seconds = _train(trainer, layout, args.steps, cpu)[1:]  # the first step pays for warm-up
    cpu = cpu[1:]
    batch, threads = config.train.batch_size, torch.get_num_threads()
    print(f"predictor training, demo network at {config.input.width}x{config.input.height}, batch {batch}, rollout "
          f"{config.train.rollout}, {threads} threads: {batch / statistics.median(seconds):.2f} samples/s wall "
          f"(median of {len(seconds)} steps, {statistics.median(seconds):.3f} s/step); "
          f"{batch * threads / statistics.median(cpu):.2f} samples/s from CPU time ({statistics.median(cpu):.3f} "
          f"CPU s/step: what {threads} idle cores would give; load average {os.getloadavg()[0]:.1f})")
    history = History(config)
    clip = read_manifest(layout)[0].clip_id
    for frame in observed_frames(iter_clip_frames(layout, clip, STAGES, config.size, config.history)):
        history.push(frame)
    forecaster = PredictorForecaster(trainer.model)
    list(predict_future(forecaster, history, 2))  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    n = sum(1 for _ in predict_future(forecaster, history, args.frames))
    wall, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"recursive prediction at {config.input.width}x{config.input.height}: {n / wall:.1f} frames/s wall, "
          f"{n * threads / cpu_seconds:.1f} frames/s from CPU time ({n} frames, history {config.history})")


def _vid2vid(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    if args.checkpoint:
        return Path(args.checkpoint), f"given model {args.checkpoint}"
    pointer = Path(os.environ.get("VID2VID_RUNS_ROOT") or "runs") / "latest-street.json"
    if pointer.is_file():
        model = json.loads(pointer.read_text())["model_path"]
        return Path(model), f"the demo's latest model {model}"
    path = save_checkpoint(tmp / "standin" / "model.pt", Vid2VidTrainer(load_model_config("tiny")))
    return path, "an UNTRAINED tiny stand-in (no demo model found): frame scores measure nothing about vid2vid"


def table(args: argparse.Namespace, tmp: Path) -> None:
    layout = _street(tmp / "demo", 128, 64, 4, 24)  # what `make demo` synthesizes
    config = load_predictor_config(args.table_config)
    trainer = PredictorTrainer(config)
    started = time.perf_counter()
    _train(trainer, layout, args.table_steps)
    trained = time.perf_counter() - started
    predictor = save_checkpoint(tmp / "predictor" / "model.pt", trainer.state_dict())
    vid2vid, which = _vid2vid(args, tmp)
    clips = [r.clip_id for r in read_manifest(layout) if r.split == "val"]
    report = evaluate_horizon(predictor, vid2vid, layout, clips, args.observed, args.future, fid=True,
                              weights_dir=args.weights_dir)
    print(f"\nhorizon table on the demo's data (val clips {report.clips}), predictor `{args.table_config}` trained "
          f"{args.table_steps} steps ({trained:.0f} s), {args.observed} observed frames; vid2vid: {which}")
    columns = list(report.rows[0])
    print(" | ".join(columns))
    for row in report.rows:
        print(" | ".join(str(row[c]) for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps at 256x128")
    parser.add_argument("--frames", type=int, default=50, help="timed recursive predictions at 256x128")
    parser.add_argument("--table-config", default="demo")
    parser.add_argument("--table-steps", type=int, default=60, help="predictor training steps for the table")
    parser.add_argument("--observed", type=int, default=4)
    parser.add_argument("--future", type=int, default=8)
    parser.add_argument("--checkpoint", default=None, help="vid2vid model.pt for the table")
    parser.add_argument("--weights-dir", default=None)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            speed(args, Path(tmp))
        table(args, Path(tmp))


if __name__ == "__main__":
    main()
