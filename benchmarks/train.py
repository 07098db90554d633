"""Training benchmark: samples/s with 1 and 2 Ray Train workers on CPU, the scaling ratio, and how much of
a short run is Ray start-up and orchestration rather than training steps.

Run: .venv/bin/python benchmarks/train.py [--steps 12] [--config tiny] [--gpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.training import TrainJob, run_training  # noqa: E402
from models.training.launch import read_metrics  # noqa: E402
from models.vid2vid import load_model_config  # noqa: E402
from storage.layout import DatasetLayout  # noqa: E402
from storage.manifest import write_manifest  # noqa: E402
from storage.synthetic import write_synthetic_clip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--gpu", action="store_true", help="one GPU worker with bf16 autocast")
    args = parser.parse_args()
    config = load_model_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        layout = DatasetLayout(Path(tmp), "bench")
        width, height = config.input.width, config.input.height
        write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", k, width, height, 12, split="train")
                                for k in range(4)])
        rates: dict[int, float] = {}
        for workers in ([1] if args.gpu else [int(w) for w in args.workers.split(",")]):
            job = TrainJob(dataset="bench", data_root=tmp, model=config.to_dict(), run_dir=f"{tmp}/run{workers}",
                           workers=workers, max_steps=args.steps, checkpoint_every=args.steps, window_frames=8,
                           gpus_per_worker=1.0 if args.gpu else 0.0)
            started = time.perf_counter()
            outcome = run_training(job)
            wall = time.perf_counter() - started
            metrics = read_metrics(Path(outcome.run_dir))[1:]  # the first step pays for warm-up
            step_seconds = [m["seconds_per_step"] for m in metrics]
            rate = statistics.median(m["samples_per_s"] for m in metrics)
            rates[workers] = rate
            busy = sum(m["seconds_per_step"] for m in read_metrics(Path(outcome.run_dir)))
            print(f"{args.config} {width}x{height}, {'GPU bf16' if args.gpu else 'CPU'}, {workers} worker(s): "
                  f"{rate:.2f} samples/s (median of {len(metrics)} steps, {statistics.median(step_seconds):.3f} s/step) | "
                  f"run wall {wall:.1f} s, of which training steps {busy:.1f} s -> Ray start-up and orchestration "
                  f"{100 * (wall - busy) / wall:.0f}%")
        if 1 in rates and 2 in rates:
            print(f"scaling 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
