"""Training benchmark: samples/s with 1 and 2 Ray Train workers on CPU, the scaling ratio, and how much of
a short run is Ray start-up and orchestration rather than training steps.

With ``--ray-jobs``: the same run in-process (embedded default) and as a Ray Job on a loopback Ray head (the
cluster path), one after the other on this machine: submission-to-first-step latency, steady samples/s and
the whole run's wall time, and the Ray Jobs overhead as a share of the in-process run.

Run: .venv/bin/python benchmarks/train.py [--steps 12] [--config tiny] [--gpu] [--ray-jobs --steps 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.training import TrainJob, run_training  # noqa: E402
from models.training import ray_jobs  # noqa: E402
from models.training.launch import read_metrics  # noqa: E402
from models.training.local_head import local_ray_head  # noqa: E402
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
    parser.add_argument("--ray-jobs", action="store_true", help="in-process vs Ray Job on a loopback head")
    args = parser.parse_args()
    if args.ray_jobs:
        compare_ray_jobs(args.config, args.steps, int(args.workers.split(",")[-1]))
        return
    config = load_model_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        layout = DatasetLayout(Path(tmp), "bench")
        width, height = config.input.width, config.input.height
        write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", k, width, height, 12, split="train")
                                for k in range(4)])
        rates: dict[int, float] = {}
        for workers in ([1] if args.gpu else [int(w) for w in args.workers.split(",")]):
            job = TrainJob(dataset="bench", data_root=tmp, model=config, run_dir=f"{tmp}/run{workers}",
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


def _first_step_seconds(run: Path, started: float, poll: float = 0.05, timeout: float = 600.0) -> float:
    """Seconds from ``started`` until the run's first step is on disk (metrics.jsonl), polled."""
    deadline = time.monotonic() + timeout
    while not read_metrics(run):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no training step in {run} after {timeout:.0f} s")
        time.sleep(poll)
    return time.perf_counter() - started


def _steady_rate(run: Path) -> float:
    return statistics.median(m["samples_per_s"] for m in read_metrics(run)[1:])


def compare_ray_jobs(config_name: str, steps: int, workers: int) -> None:
    import threading

    config = load_model_config(config_name)
    with tempfile.TemporaryDirectory() as tmp:
        layout = DatasetLayout(Path(tmp), "bench")
        write_manifest(layout, [write_synthetic_clip(layout, f"c{k}", k, config.input.width, config.input.height,
                                                     12, split="train") for k in range(4)])

        def job(name: str, address: str | None = None) -> TrainJob:
            return TrainJob(dataset="bench", data_root=tmp, model=config, run_dir=f"{tmp}/{name}",
                            workers=workers, max_steps=steps, checkpoint_every=max(10, steps // 4), window_frames=8,
                            ray_address=address)

        local = job("in-process")
        started = time.perf_counter()
        first: dict[str, float] = {}
        watcher = threading.Thread(target=lambda: first.update(local=_first_step_seconds(local.run_path, started)))
        watcher.start()
        run_training(local)
        local_wall = time.perf_counter() - started
        watcher.join()

        env = {"VID2VID_RAY_JOB_PYTHON": sys.executable, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        os.environ.update(env)
        with local_ray_head(Path(tmp) / "head.log", num_cpus=workers + 1, env=env) as address:
            remote = job("ray-job", address)
            started = time.perf_counter()
            ref = ray_jobs.submit_or_attach(remote, address)
            first["job"] = _first_step_seconds(remote.run_path, started)
            status = ray_jobs.follow(address, ref, on_log=lambda line: None, on_poll=lambda: None,
                                     should_cancel=lambda: False, poll_seconds=0.5)
            job_wall = time.perf_counter() - started
            ray_jobs.outcome_of(address, ref, status, remote)
        local_rate, job_rate = _steady_rate(local.run_path), _steady_rate(remote.run_path)
    print(f"{config_name}, {workers} CPU worker(s), {steps} steps:")
    print(f"  in-process: first step after {first['local']:.1f} s, steady {local_rate:.2f} samples/s, "
          f"run {local_wall:.1f} s")
    print(f"  Ray Job:    first step after {first['job']:.1f} s (submission to first step), steady "
          f"{job_rate:.2f} samples/s, run {job_wall:.1f} s (job {status})")
    print(f"  Ray Jobs overhead: {job_wall - local_wall:+.1f} s = {100 * (job_wall - local_wall) / local_wall:+.1f}% "
          f"of the in-process run (head start-up not counted: a cluster's head is already up)")


if __name__ == "__main__":
    main()
